/**
 * The config tree as a service: every front end (CLI over the API, HTTP, FUSE) goes through
 * here. Operations are serialised, checked against the caller's rights, applied to the live
 * tree and then made durable through the store (the key layout: tree-keys.ts). At start the
 * tree is rebuilt from those keys in creation order; on the very first start (no
 * `tree/initialized` key) the default tree document is applied instead.
 *
 * In a cluster the tree is the cluster's (tree-sync.ts): shared keys in the cluster store,
 * changes committed there and applied on every node in the same order; a node's own
 * process-set members stay in its own store.
 */
import { SlicedError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { ClusterStore, Store, StoreEvent, StoreOp } from '../cluster/store.js';
import { ConfigTree, splitPath, type Mutation } from './tree.js';
import type { Entry } from '../wire/tree.js';
import { describeStep, dumpTree, executePlan, parseTreeYaml, planApply, treeToYaml, type PlanStep, type TreeDocument } from './document.js';
import { checkPlan, describeProblems, type PlanProblem } from './plan-check.js';
import type { TypeRegistry } from './registry.js';
import type { Logger } from './types.js';
import { ATTR, DIR, INITIALIZED, isNodeLocal, opsOf, pathOfKey } from './tree-keys.js';
import { replayEvents, replayKeys, treeDifferences } from './tree-replay.js';
import { TreeConflict, TreeSync } from './tree-sync.js';

/** Who is asking: administrators change the tree; a slice's user reads only its own slice's view. */
export type Caller = { admin: true } | { admin: false; slice: string | null };

export const ADMIN: Caller = { admin: true };

/** What apply did, or with dryRun would do: the plan, the problems that stop it, what to know. */
export interface ApplyResult {
  steps: PlanStep[];
  /** Only in a dry run: apply refuses a plan with problems. */
  problems: PlanProblem[];
  /** Includes what needs `force` (a plan that stops the daemon's CPU control loop). */
  warnings: string[];
}

export interface TreeStores {
  /** This node's own store: the whole tree on a node alone; in a cluster its own process-set members. */
  local: Store;
  /** In a cluster: where the shared tree lives. */
  cluster?: {
    store: ClusterStore;
    nodeName: string;
    /** When this node's own tree differs from the cluster's: replace it (true) or refuse to start (false). */
    takeClusterTree: boolean;
  };
}

/** Rounds of a change lost against other nodes' changes before the caller is asked to try again. */
const CHANGE_ROUNDS = 3;

export class TreeService {
  private readonly queue = new SerialQueue();
  private pending: Mutation[] = [];
  /** While set, the tree's mutations are not stored (restoring, undoing, applying other nodes' changes). */
  private restoring = false;
  private readonly sync: TreeSync | null;

  constructor(
    readonly tree: ConfigTree,
    private readonly registry: TypeRegistry,
    private readonly stores: TreeStores,
    private readonly log: Logger,
  ) {
    tree.onMutation((m) => {
      if (!this.restoring) this.pending.push(m);
    });
    const cluster = stores.cluster;
    this.sync = cluster
      ? new TreeSync(
          cluster.store,
          cluster.nodeName,
          (events) => this.applyRemote(events),
          (work) =>
            void this.serialise(work).catch((err: Error) => this.log.error({ err: err.message }, 'config tree: applying changes failed')),
          log,
        )
      : null;
  }

  /** The store of shared keys: the cluster's, or this node's own. */
  private get shared(): Store {
    return this.stores.cluster?.store ?? this.stores.local;
  }

  /** Rebuild the tree from the store, or apply the default document on the first start. */
  async restore(defaultDocument: () => string): Promise<void> {
    if (this.sync) return this.restoreCluster(defaultDocument);
    const keys = await this.stores.local.range('tree/');
    if (!keys.has(INITIALIZED)) {
      await this.initialize(defaultDocument, () =>
        this.stores.local.txn([{ type: 'put', key: INITIALIZED, value: new Date().toISOString() }]),
      );
      return;
    }
    const stale = await this.rebuild(keys);
    if (stale.length > 0) await this.stores.local.txn(stale);
    this.log.info({ directories: [...keys.keys()].filter((k) => k.startsWith(DIR)).length }, 'config tree restored');
  }

  close(): void {
    this.sync?.close();
  }

  private async initialize(defaultDocument: () => string, mark: () => Promise<void>): Promise<void> {
    const doc = parseTreeYaml(defaultDocument(), 'the default tree');
    await this.apply(ADMIN, doc, false);
    await mark();
    this.log.info({}, 'config tree: default tree applied');
  }

  /**
   * Joining: the cluster's tree is taken; a cluster without one takes this node's (or the
   * default); this node's own tree, if it differs from the cluster's, refuses the start unless
   * `takeClusterTree`. Nothing is dropped silently.
   */
  private async restoreCluster(defaultDocument: () => string): Promise<void> {
    const sync = this.sync!;
    const { keys: shared, revision } = await sync.load();
    const localKeys = await this.stores.local.range('tree/');
    const ownShared = new Map([...localKeys].filter(([k]) => pathOfKey(k) !== null && !isNodeLocal(k)));
    const nodeLocal = new Map([...localKeys].filter(([k]) => isNodeLocal(k)));
    const forget: StoreOp[] = [...ownShared.keys(), ...(localKeys.has(INITIALIZED) ? [INITIALIZED] : [])].map((key) => ({
      type: 'delete',
      key,
    }));
    if (!shared.has(INITIALIZED)) {
      // The first node of the cluster: its own tree (or the default one) becomes the cluster's.
      if (localKeys.has(INITIALIZED)) {
        await this.rebuild(new Map([...ownShared, ...nodeLocal]));
        const ops: StoreOp[] = [...ownShared].map(([key, value]) => ({ type: 'put', key, value }));
        await this.commitInitial(ops);
        this.log.info({ keys: ops.length }, "config tree: this node's tree became the cluster's");
      } else {
        const doc = parseTreeYaml(defaultDocument(), 'the default tree');
        this.pending = [];
        await executePlan(this.tree, await planApply(this.tree, this.registry, doc));
        await this.commitInitial(await opsOf(this.pending.splice(0), async () => []));
        this.log.info({}, "config tree: default tree applied as the cluster's");
      }
    } else {
      const conflicts = treeDifferences(ownShared, shared);
      if (localKeys.has(INITIALIZED) && conflicts.length > 0 && !this.stores.cluster!.takeClusterTree) {
        throw new SlicedError(
          'EEXIST',
          `this node's config tree differs from the cluster's at ${conflicts.slice(0, 5).join(', ')}` +
            `${conflicts.length > 5 ? ` and ${conflicts.length - 5} more` : ''}; save it (slicectl dump, without --cluster) and ` +
            `start with --cluster-take-tree to replace it with the cluster's, or make the cluster's equal first`,
        );
      }
      await this.rebuild(new Map([...shared, ...nodeLocal]));
      this.log.info(
        { directories: [...shared.keys()].filter((k) => k.startsWith(DIR)).length },
        "config tree: the cluster's tree restored",
      );
    }
    // The tree's shared part now lives in the cluster store only.
    if (forget.length > 0) await this.stores.local.txn(forget);
    sync.follow(revision);
  }

  /** The cluster's first tree, committed only if no node set one up meanwhile. */
  private async commitInitial(ops: StoreOp[]): Promise<void> {
    const marked: StoreOp = { type: 'put', key: INITIALIZED, value: new Date().toISOString() };
    try {
      await this.sync!.commit([...ops.filter((o) => !isNodeLocal(o.key)), marked], [{ key: INITIALIZED, modRevision: 0 }]);
    } catch (err) {
      if (!(err instanceof TreeConflict)) throw err;
      throw new SlicedError('EBUSY', "another node set up the cluster's config tree at the same moment; start this node again to take it");
    }
  }

  /** Build the tree from stored keys (restore); returns the keys that could not be restored. */
  private rebuild(keys: ReadonlyMap<string, string>): Promise<StoreOp[]> {
    return this.quietly(() => replayKeys(this.tree, keys, this.log));
  }

  /** Other nodes' changes, in the order committed; they are stored already. */
  private applyRemote(events: readonly StoreEvent[]): Promise<void> {
    return this.quietly(() => replayEvents(this.tree, events, this.log));
  }

  /** Run `work` without storing the mutations it makes. */
  private async quietly<T>(work: () => Promise<T>): Promise<T> {
    this.restoring = true;
    try {
      return await work();
    } finally {
      this.restoring = false;
    }
  }

  // ---- operations ---------------------------------------------------------------------------

  mkdir(caller: Caller, path: string): Promise<void> {
    return this.change(caller, () => this.tree.mkdir(path));
  }

  rmdir(caller: Caller, path: string): Promise<void> {
    return this.change(caller, () => this.tree.rmdir(path));
  }

  write(caller: Caller, path: string, value: string): Promise<void> {
    return this.change(caller, () => this.tree.write(path, value));
  }

  symlink(caller: Caller, target: string, path: string): Promise<void> {
    return this.change(caller, () => this.tree.symlink(target, path));
  }

  unlink(caller: Caller, path: string): Promise<void> {
    return this.change(caller, () => this.tree.unlink(path));
  }

  read(caller: Caller, path: string): string {
    this.assertCanRead(caller, path);
    return this.tree.read(path);
  }

  readdir(caller: Caller, path: string): Entry[] {
    this.assertCanRead(caller, path);
    const entries = this.tree.readdir(path);
    // A slice's user sees the way to its own view and nothing else.
    if (!caller.admin) {
      const parts = splitPath(path);
      if (parts.length === 0) return entries.filter((e) => e.name === 'slices');
      if (parts.length === 1 && parts[0] === 'slices') return entries.filter((e) => e.name === caller.slice);
    }
    return entries;
  }

  stat(caller: Caller, path: string): Entry {
    this.assertCanRead(caller, path);
    return this.tree.stat(path);
  }

  readlink(caller: Caller, path: string): string {
    this.assertCanRead(caller, path);
    return this.tree.readlink(path);
  }

  dump(caller: Caller): string {
    this.assertAdmin(caller, 'read the whole tree');
    return treeToYaml(this.tree);
  }

  /**
   * Make the tree equal to `doc`; with dryRun only return the plan and what apply would
   * find wrong. Every step is checked before the first runs: a plan with problems changes
   * nothing, and one that stops the daemon's CPU control loop needs `force`.
   */
  apply(caller: Caller, doc: TreeDocument | string, dryRun: boolean, options: { force?: boolean } = {}): Promise<ApplyResult> {
    this.assertAdmin(caller, 'change the tree');
    const parsed = typeof doc === 'string' ? parseTreeYaml(doc, 'the document') : doc;
    return this.serialise(() =>
      this.inRounds(async () => {
        const plan = await planApply(this.tree, this.registry, parsed);
        const check = await checkPlan(this.tree, this.registry, plan);
        const warnings = [...check.confirm, ...check.warnings];
        if (dryRun) return { steps: plan, problems: check.problems, warnings };
        if (check.problems.length > 0)
          throw new SlicedError(check.problems[0]!.code, `${describeProblems(plan, check.problems)}; nothing was changed`);
        if (check.confirm.length > 0 && !options.force) {
          throw new SlicedError(
            'EBUSY',
            `${check.confirm.join('; ')}; nothing was changed (confirm with slicectl apply --force, or "force": true over HTTP)`,
          );
        }
        await executePlan(this.tree, plan);
        this.log.info({ steps: plan.map(describeStep), warnings }, 'config tree: document applied');
        return { steps: plan, problems: [], warnings };
      }),
    );
  }

  // ---- internals ----------------------------------------------------------------------------

  private change(caller: Caller, op: () => unknown): Promise<void> {
    this.assertAdmin(caller, 'change the tree');
    return this.serialise(() =>
      this.inRounds(async () => {
        await op();
      }),
    );
  }

  /**
   * Run `work` on the live tree and store what it changed, also when it failed halfway. In a
   * cluster: after catching up with the other nodes' changes; a commit that lost against
   * another node's is undone and the work runs again on the newer tree.
   */
  private async inRounds<T>(work: () => Promise<T>): Promise<T> {
    for (let round = 1; ; round++) {
      await this.sync?.catchUp();
      const before = this.sync ? dumpTree(this.tree) : null;
      this.pending = [];
      let result: T | undefined;
      let failure: { err: unknown } | null = null;
      try {
        result = await work();
      } catch (err) {
        failure = { err };
      }
      try {
        await this.persistPending();
      } catch (err) {
        if (!(err instanceof TreeConflict)) throw err;
        await this.undo(before!);
        if (round < CHANGE_ROUNDS) continue;
        throw new SlicedError(
          'EBUSY',
          `the config tree was changed on other nodes at the same time ${CHANGE_ROUNDS} times over; nothing was changed; try again`,
        );
      }
      if (failure) throw failure.err;
      return result as T;
    }
  }

  /** Put the tree back as `before` was, without storing anything (the change lost in the cluster). */
  private async undo(before: TreeDocument): Promise<void> {
    this.restoring = true;
    try {
      await executePlan(this.tree, await planApply(this.tree, this.registry, before));
    } catch (err) {
      this.log.error(
        { err: (err as Error).message },
        'config tree: cannot undo a change that lost against another node; restart sliced to take the cluster tree',
      );
    } finally {
      this.restoring = false;
      this.pending = [];
    }
  }

  private async persistPending(): Promise<void> {
    const mutations = this.pending;
    this.pending = [];
    if (mutations.length === 0) return;
    const ops = await opsOf(mutations, async (path) => [...(await this.shared.range(`${ATTR}${path}/`)).keys()]);
    const own = (op: StoreOp): boolean => this.sync !== null && isNodeLocal(op.key);
    const shared = ops.filter((op) => !own(op));
    const local = ops.filter(own);
    try {
      if (shared.length > 0) await (this.sync ? this.sync.commit(shared) : this.stores.local.txn(shared));
      if (local.length > 0) await this.stores.local.txn(local);
    } catch (err) {
      if (err instanceof TreeConflict) throw err;
      // The live tree already changed; say so loudly rather than pretend it is durable.
      this.log.error({ err: (err as Error).message, mutations }, 'config tree: change applied but NOT saved; it will be lost at restart');
      throw new SlicedError('EIO', `the change was applied but could not be saved: ${(err as Error).message}`);
    }
  }

  private serialise<T>(work: () => Promise<T>): Promise<T> {
    return this.queue.run(work);
  }

  private assertAdmin(caller: Caller, what: string): void {
    if (!caller.admin) throw new SlicedError('EPERM', `only root or the admin group may ${what}`);
  }

  private assertCanRead(caller: Caller, path: string): void {
    if (caller.admin) return;
    const parts = splitPath(path);
    const own = caller.slice !== null && parts[0] === 'slices' && (parts.length === 1 || parts[1] === caller.slice);
    if (parts.length === 0 || own) return;
    throw new SlicedError('EPERM', `${path}: a slice's user may read only /slices/${caller.slice ?? '<its slice>'}`);
  }
}
