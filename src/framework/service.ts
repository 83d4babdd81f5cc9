/**
 * The config tree as a service: every front end (CLI over the API, HTTP, FUSE) goes through
 * here. Operations are serialised, checked against the caller's rights, applied to the live
 * tree and then made durable through the store:
 *
 *   tree/d<path>  a directory made with mkdir   {"seq": n}
 *   tree/a<path>  a configuration attribute     {"value": "<text>", "seq": n}
 *   tree/l<path>  a link                         {"target": "...", "seq": n}
 *
 * At start the tree is rebuilt from those keys in creation order. On the very first start
 * (no `tree/initialized` key) the default tree document is applied instead. A cluster store
 * (etcd) holds the same keys, which is how the tree will be shared between nodes.
 */
import { SlicedError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { Store, StoreOp } from '../cluster/store.js';
import { ConfigTree, splitPath, type Mutation } from './tree.js';
import type { Entry } from '../wire/tree.js';
import { describeStep, executePlan, parseTreeYaml, planApply, treeToYaml, type PlanStep, type TreeDocument } from './document.js';
import { checkPlan, describeProblems, type PlanProblem } from './plan-check.js';
import type { TypeRegistry } from './registry.js';
import type { Logger } from './types.js';

const DIR = 'tree/d';
const ATTR = 'tree/a';
const LINK = 'tree/l';
const INITIALIZED = 'tree/initialized';

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

export class TreeService {
  private readonly queue = new SerialQueue();
  private pending: Mutation[] = [];
  private restoring = false;

  constructor(
    readonly tree: ConfigTree,
    private readonly registry: TypeRegistry,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    tree.onMutation((m) => {
      if (!this.restoring) this.pending.push(m);
    });
  }

  /** Rebuild the tree from the store, or apply the default document on the first start. */
  async restore(defaultDocument: () => string): Promise<void> {
    const keys = await this.store.range('tree/');
    if (!keys.has(INITIALIZED)) {
      const doc = parseTreeYaml(defaultDocument(), 'the default tree');
      await this.apply(ADMIN, doc, false);
      await this.store.txn([{ type: 'put', key: INITIALIZED, value: new Date().toISOString() }]);
      this.log.info({}, 'config tree: default tree applied');
      return;
    }
    this.restoring = true;
    const stale: StoreOp[] = [];
    try {
      const dirs = [...keys]
        .filter(([k]) => k.startsWith(DIR))
        .map(([k, v]) => ({ path: k.slice(DIR.length), seq: (JSON.parse(v) as { seq: number }).seq }));
      dirs.sort((a, b) => a.seq - b.seq);
      for (const { path, seq } of dirs) {
        try {
          await this.tree.mkdir(path, { seq });
        } catch (err) {
          this.log.warn({ path, err: (err as Error).message }, 'config tree: cannot restore a directory; dropped');
          stale.push({ type: 'delete', key: `${DIR}${path}` });
        }
      }
      // Two passes: an attribute checked against another (hysteresis low <= high) may need
      // the other one restored first.
      // In the order they were written (handle_all's attach order is stacking precedence).
      let attrs = [...keys]
        .filter(([key]) => key.startsWith(ATTR))
        .map(([key, stored]) => [key, parseAttribute(stored)] as const)
        .sort((a, b) => a[1].seq - b[1].seq)
        .map(([key, attr]) => [key, attr.value] as [string, string]);
      for (const pass of [1, 2]) {
        const refused: typeof attrs = [];
        for (const [key, value] of attrs) {
          const path = key.slice(ATTR.length);
          try {
            this.tree.write(path, value);
          } catch (err) {
            if (pass === 1) {
              refused.push([key, value]);
              continue;
            }
            this.log.warn({ path, err: (err as Error).message }, 'config tree: cannot restore an attribute; dropped');
            stale.push({ type: 'delete', key });
          }
        }
        attrs = refused;
      }
      const links = [...keys]
        .filter(([k]) => k.startsWith(LINK))
        .map(([k, v]) => ({ path: k.slice(LINK.length), ...(JSON.parse(v) as { target: string; seq: number }) }));
      links.sort((a, b) => a.seq - b.seq);
      for (const { path, target, seq } of links) {
        try {
          this.tree.symlink(target, path, { seq });
        } catch (err) {
          this.log.warn({ path, target, err: (err as Error).message }, 'config tree: cannot restore a link; dropped');
          stale.push({ type: 'delete', key: `${LINK}${path}` });
        }
      }
    } finally {
      this.restoring = false;
    }
    if (stale.length > 0) await this.store.txn(stale);
    this.log.info({ directories: [...keys.keys()].filter((k) => k.startsWith(DIR)).length }, 'config tree restored');
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
    return this.serialise(async () => {
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
      this.pending = [];
      try {
        await executePlan(this.tree, plan);
      } finally {
        await this.persistPending();
      }
      this.log.info({ steps: plan.map(describeStep), warnings }, 'config tree: document applied');
      return { steps: plan, problems: [], warnings };
    });
  }

  // ---- internals ----------------------------------------------------------------------------

  private change(caller: Caller, op: () => unknown): Promise<void> {
    this.assertAdmin(caller, 'change the tree');
    return this.serialise(async () => {
      this.pending = [];
      try {
        await op();
      } finally {
        await this.persistPending();
      }
    });
  }

  private async persistPending(): Promise<void> {
    const mutations = this.pending;
    this.pending = [];
    if (mutations.length === 0) return;
    const ops: StoreOp[] = [];
    for (const m of mutations) {
      switch (m.op) {
        case 'mkdir':
          ops.push({ type: 'put', key: `${DIR}${m.path}`, value: JSON.stringify({ seq: m.seq }) });
          break;
        case 'rmdir': {
          ops.push({ type: 'delete', key: `${DIR}${m.path}` });
          for (const key of (await this.store.range(`${ATTR}${m.path}/`)).keys()) ops.push({ type: 'delete', key });
          break;
        }
        case 'write':
          ops.push({ type: 'put', key: `${ATTR}${m.path}`, value: JSON.stringify({ value: m.value, seq: m.seq }) });
          break;
        case 'ln':
          ops.push({ type: 'put', key: `${LINK}${m.path}`, value: JSON.stringify({ target: m.target, seq: m.seq }) });
          break;
        case 'rm':
          ops.push({ type: 'delete', key: `${LINK}${m.path}` });
          break;
      }
    }
    try {
      await this.store.txn(ops);
    } catch (err) {
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

function parseAttribute(stored: string): { value: string; seq: number } {
  try {
    const parsed = JSON.parse(stored) as { value?: unknown; seq?: unknown };
    if (typeof parsed.value === 'string' && typeof parsed.seq === 'number') return { value: parsed.value, seq: parsed.seq };
  } catch {
    // not JSON: fall through
  }
  return { value: stored, seq: 0 };
}
