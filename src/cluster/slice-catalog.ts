/**
 * The slice catalogue of a cluster, in etcd: every node's desired state, the catalogue of
 * slices and domains (which nodes hold each), and what each node has realised.
 *
 *   state/<node>/slices/<name>, /domains/<name>, /net/reservations/<key>   the node's desired state
 *   state/<node>/alloc      the node's allocation record: its capacity and a summary of its state
 *   catalog/slices/<name>, catalog/domains/<name>   placement, nodes, where and when created
 *   realised/<node>         (under the node's lease) the revision the node last realised, or its error
 *
 * A change is planned on every node it concerns with the same pure admission a single node
 * uses (src/core/slivers.ts), and committed in one transaction that holds only if none of
 * those nodes' allocation records changed since they were read (compare on mod revision):
 * every change of a node's state rewrites its record, so two changes made on different
 * nodes at once can never both commit against the same capacity. The loser plans again on
 * what the winner left and is then admitted or refused with the numbers. Retried calls
 * cannot apply a change twice: a create compares its name's absence, every other change the
 * records it read.
 */
import type { Logger } from 'pino';
import { assertAdmissible, capacityFromRecord, capacityRecord, type CapacityRecord, type NodeCapacity } from '../core/admission.js';
import type { ChangeKind, ChangeResults, StateChange } from '../core/change-kinds.js';
import { SlicedError } from '../core/errors.js';
import type { DesiredState } from '../core/model.js';
import type { NodeView } from '../core/membership.js';
import {
  allocationSummary,
  changeSubject,
  planOnNodes,
  resolvePlacement,
  type AllocationSummary,
  type NodePlanInput,
  type Placement,
  type SliverView,
} from '../core/slivers.js';
import { parseState, stateEntries, stateOps } from './state-repository.js';
import { liveKey } from './membership.js';
import type { ClusterOp, ClusterStore, StoreCompare } from './store.js';

export const stateScope = (node: string): string => `state/${node}`;
export const allocationKey = (node: string): string => `state/${node}/alloc`;
export const catalogKey = (kind: 'slice' | 'domain', name: string): string => `catalog/${kind}s/${name}`;
export const realisedKey = (node: string): string => `realised/${node}`;

export interface AllocationRecord {
  capacity: CapacityRecord;
  summary: AllocationSummary;
}

export interface CatalogEntry {
  name: string;
  /** As asked for; null: the node it was created on. */
  placement: Placement | null;
  /** The nodes that hold a sliver. */
  nodes: string[];
  createdOn: string;
  createdAt: number;
}

export interface RealisedRecord {
  /** The store revision the node's kernel matches (its state as of that revision). */
  revision: number;
  /** Why the node could not realise its state at `revision`, or null. */
  error: string | null;
  /** Slices the node left out of its state (it cannot run them: e.g. their user is missing there), with the reason. */
  failed: Record<string, string>;
  at: number;
}

export interface CommitResult<K extends ChangeKind> {
  result: ChangeResults[K];
  /** The nodes whose state the change wrote. */
  nodes: string[];
  /** The store revision of the commit: a node has realised the change once its realised revision reaches it. */
  revision: number;
}

/** How long a change may keep losing races before it is refused (it plans again after each loss). */
const COMMIT_DEADLINE_MS = 30_000;

export class SliceCatalog {
  constructor(
    private readonly store: ClusterStore,
    private readonly self: string,
    private readonly members: () => NodeView[],
    private readonly log: Logger,
  ) {}

  /**
   * Plan `change` on the nodes it concerns and commit it: new slices and domains go where
   * `placement` says (slices: this node by default; domains: every node up); anything else
   * goes to the nodes that hold what it names.
   */
  async commit<K extends ChangeKind>(change: StateChange<K>, placement: Placement | null): Promise<CommitResult<K>> {
    const deadline = Date.now() + COMMIT_DEADLINE_MS;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.tryCommit(change, placement);
      if (outcome !== null) {
        if (attempt > 1) this.log.debug({ change: change.kind, attempt }, 'change committed after losing races');
        return outcome;
      }
      if (Date.now() > deadline) {
        throw new SlicedError(
          'EBUSY',
          `the nodes of this change kept changing for ${COMMIT_DEADLINE_MS / 1000} s (${attempt} attempts); try again`,
        );
      }
      // Random and growing: losers of a crowded race spread out instead of colliding again.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(200, 4 * 2 ** Math.min(attempt, 6))));
    }
  }

  /** One attempt: the commit's result, or null when another change got in between. */
  private async tryCommit<K extends ChangeKind>(change: StateChange<K>, placement: Placement | null): Promise<CommitResult<K> | null> {
    const subject = changeSubject(change as StateChange);
    const compares: StoreCompare[] = [];
    const ops: ClusterOp[] = [];
    let targets: string[];
    const creates = change.kind === 'slice.create' || change.kind === 'domain.create';
    if (creates) {
      const kind = change.kind === 'slice.create' ? 'slice' : 'domain';
      const key = catalogKey(kind, subject.name);
      const existing = await this.entryVersioned(key);
      if (existing)
        throw new SlicedError('EEXIST', `${kind} ${subject.name} already exists in the cluster (on ${existing.entry.nodes.join(', ')})`);
      targets = resolvePlacement(placement ?? (kind === 'domain' ? { all: true } : null), this.members(), this.self);
      compares.push({ key, modRevision: 0 });
      ops.push({ type: 'put', key, value: this.newEntry(subject.name, placement, targets) });
    } else {
      if (placement !== null)
        throw new SlicedError('EINVAL', `a placement is given only when a slice or domain is created, not to ${change.kind}`);
      targets = await this.nodesOf(change as StateChange, compares, ops);
    }
    const inputs = new Map<string, NodePlanInput & { record: AllocationRecord }>();
    // Read side by side; each node's state comes with its record in one read, so the compare covers what was planned on.
    const read = await Promise.all(targets.map(async (node) => [node, await this.readNode(node)] as const));
    for (const [node, { state, alloc }] of read) {
      if (!alloc) throw new SlicedError('ENOENT', `node ${node} has no allocation record: its agent has not started since it joined`);
      compares.push({ key: allocationKey(node), modRevision: alloc.modRevision });
      inputs.set(node, { state, capacity: capacityFromRecord(alloc.record.capacity, allocationKey(node)), record: alloc.record });
    }
    const planned = planOnNodes(inputs, targets, change);
    for (const [node, next] of planned.next) {
      const input = inputs.get(node)!;
      ops.push(...stateOps(stateScope(node), input.state, next));
      const record: AllocationRecord = { capacity: input.record.capacity, summary: allocationSummary(next) };
      ops.push({ type: 'put', key: allocationKey(node), value: JSON.stringify(record) });
    }
    const { succeeded, revision } = await this.store.txnIf(compares, ops);
    return succeeded ? { result: planned.result, nodes: [...planned.next.keys()], revision } : null;
  }

  /** The nodes an existing object's change goes to, with the compares and catalogue writes it needs. */
  private async nodesOf(change: StateChange, compares: StoreCompare[], ops: ClusterOp[]): Promise<string[]> {
    const subject = changeSubject(change);
    if (subject.kind === 'reservation') return this.members().map((m) => m.name);
    const kinds: Array<'slice' | 'domain'> = subject.kind === 'member' ? ['slice', 'domain'] : [subject.kind];
    for (const kind of kinds) {
      const key = catalogKey(kind, subject.name);
      const found = await this.entryVersioned(key);
      if (!found) continue;
      compares.push({ key, modRevision: found.modRevision });
      if (change.kind === 'slice.delete' || change.kind === 'domain.delete') ops.push({ type: 'delete', key });
      return found.entry.nodes;
    }
    throw new SlicedError(
      'ENOENT',
      `no ${subject.kind === 'member' ? 'slice or domain' : subject.kind} named ${subject.name} in the cluster`,
    );
  }

  /** A new catalogue entry, made here now, as stored. */
  private newEntry(name: string, placement: Placement | null, nodes: string[]): string {
    const entry: CatalogEntry = { name, placement, nodes, createdOn: this.self, createdAt: Date.now() };
    return JSON.stringify(entry);
  }

  private async entryVersioned(key: string): Promise<{ entry: CatalogEntry; modRevision: number } | null> {
    const found = (await this.store.rangeVersioned(key)).entries.get(key);
    return found ? { entry: JSON.parse(found.value) as CatalogEntry, modRevision: found.modRevision } : null;
  }

  /** The catalogue entry of a slice or domain, or null. */
  async entry(kind: 'slice' | 'domain', name: string): Promise<CatalogEntry | null> {
    return (await this.entryVersioned(catalogKey(kind, name)))?.entry ?? null;
  }

  /** Every slice (or domain) of the cluster, by name. */
  async list(kind: 'slice' | 'domain'): Promise<CatalogEntry[]> {
    const entries = await this.store.range(`catalog/${kind}s/`);
    return [...entries.values()].map((v) => JSON.parse(v) as CatalogEntry).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A node's desired state as the cluster holds it (empty for a node that holds nothing). */
  async nodeState(node: string): Promise<{ state: DesiredState; revision: number }> {
    const { state, revision } = await this.readNode(node);
    return { state, revision };
  }

  /** A node's state and its allocation record (absent before its agent first started), in one read. */
  private async readNode(
    node: string,
  ): Promise<{ state: DesiredState; revision: number; alloc: { record: AllocationRecord; modRevision: number } | null }> {
    const { revision, entries } = await this.store.rangeVersioned(`${stateScope(node)}/`);
    const alloc = entries.get(allocationKey(node));
    return {
      state: parseState(stateScope(node), new Map([...entries].map(([k, v]) => [k, v.value]))),
      revision,
      alloc: alloc ? { record: JSON.parse(alloc.value) as AllocationRecord, modRevision: alloc.modRevision } : null,
    };
  }

  /** Each node's sliver of a slice (or domain) and how far that node has got with it. */
  async slivers(kind: 'slice' | 'domain', name: string): Promise<{ entry: CatalogEntry; slivers: SliverView[] } | null> {
    const entry = await this.entry(kind, name);
    if (!entry) return null;
    const up = new Set(
      this.members()
        .filter((m) => m.status === 'up')
        .map((m) => m.name),
    );
    const sliverOf = async (node: string): Promise<SliverView> => {
      if (!up.has(node)) return { node, state: 'down' };
      const key = `${stateScope(node)}/${kind}s/${name}`;
      // Written first, then realised: a node that realises in between only looks further along.
      const written = (await this.store.rangeVersioned(key)).entries.get(key)?.modRevision ?? 0;
      const realisedText = await this.store.get(realisedKey(node));
      const realised = realisedText === undefined ? null : (JSON.parse(realisedText) as RealisedRecord);
      if (realised === null || realised.revision < written) return { node, state: 'pending' };
      if (realised.error !== null) return { node, state: 'failed', error: realised.error };
      const leftOut = kind === 'slice' ? realised.failed[name] : undefined;
      return leftOut !== undefined ? { node, state: 'failed', error: leftOut } : { node, state: 'ready' };
    };
    const slivers = await Promise.all(entry.nodes.map(sliverOf));
    return { entry, slivers };
  }

  /**
   * Forget a node that was removed: its state, its allocation record, and its place in every
   * slice's and domain's nodes (an entry left without nodes goes). Only while the node is
   * down: compared on its live record's absence. Resolves to the slivers it held.
   */
  async forgetNode(node: string): Promise<string[]> {
    for (let attempt = 1; ; attempt++) {
      const { entries: state } = await this.store.rangeVersioned(`${stateScope(node)}/`);
      const { entries: catalog } = await this.store.rangeVersioned('catalog/');
      const compares: StoreCompare[] = [{ key: liveKey(node), modRevision: 0 }];
      const ops: ClusterOp[] = [];
      for (const [key, { modRevision }] of state) {
        compares.push({ key, modRevision });
        ops.push({ type: 'delete', key });
      }
      const held: string[] = [];
      for (const [key, { value, modRevision }] of catalog) {
        const entry = JSON.parse(value) as CatalogEntry;
        if (!entry.nodes.includes(node)) continue;
        held.push(key.slice('catalog/'.length));
        compares.push({ key, modRevision });
        const nodes = entry.nodes.filter((n) => n !== node);
        ops.push(nodes.length === 0 ? { type: 'delete', key } : { type: 'put', key, value: JSON.stringify({ ...entry, nodes }) });
      }
      if (ops.length === 0) return [];
      if ((await this.store.txnIf(compares, ops)).succeeded) {
        this.log.info({ node, slivers: held }, "a removed node's slivers forgotten");
        return held;
      }
      if (attempt >= 20)
        throw new SlicedError('EBUSY', `node ${node}: the catalogue kept changing while its slivers were forgotten; try again`);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
    }
  }

  /**
   * Bring the state of a node that ran alone into the cluster: every slice and domain the
   * cluster does not hold for this node becomes the cluster's, placed on this node alone.
   * Refused, naming each, when a name is elsewhere in the cluster or held differently for this
   * node, or when the merged state would over-commit the node. Resolves to what it brought.
   */
  async bringIn(local: DesiredState, capacity: NodeCapacity): Promise<{ slices: number; domains: number }> {
    if (local.slices.size + local.domains.size + local.reservations.size === 0) return { slices: 0, domains: 0 };
    const { state: held, alloc } = await this.readNode(this.self);
    const conflicts: string[] = [];
    const compares: StoreCompare[] = [{ key: allocationKey(this.self), modRevision: alloc?.modRevision ?? 0 }];
    const ops: ClusterOp[] = [];
    // Users are named by each node: they do not make two specs differ.
    const json = (v: unknown): string => JSON.stringify(v, (k, x: unknown) => (k === 'user' ? undefined : x));
    const count = { slices: 0, domains: 0 };
    for (const [kind, mine, theirs] of [
      ['domain', local.domains, held.domains],
      ['slice', local.slices, held.slices],
    ] as const) {
      for (const [name, spec] of mine as ReadonlyMap<string, unknown>) {
        if ((theirs as ReadonlyMap<string, unknown>).has(name)) {
          if (json(theirs.get(name)) !== json(spec))
            conflicts.push(`${kind} ${name} differs from the cluster's ${kind} of that name on this node`);
          continue;
        }
        const entry = await this.entry(kind, name);
        if (entry) {
          conflicts.push(`${kind} ${name} exists in the cluster on ${entry.nodes.join(', ')}`);
          continue;
        }
        compares.push({ key: catalogKey(kind, name), modRevision: 0 });
        ops.push({ type: 'put', key: catalogKey(kind, name), value: this.newEntry(name, null, [this.self]) });
        count[kind === 'slice' ? 'slices' : 'domains']++;
      }
    }
    const merged: DesiredState = {
      slices: new Map([...held.slices, ...local.slices]),
      domains: new Map([...held.domains, ...local.domains]),
      reservations: new Map([...held.reservations, ...local.reservations]),
    };
    try {
      if (conflicts.length === 0) assertAdmissible(merged, capacity);
    } catch (err) {
      conflicts.push(`with the cluster's slices for this node it would be over-committed: ${(err as Error).message}`);
    }
    if (conflicts.length > 0) {
      throw new SlicedError(
        'EEXIST',
        `this node cannot join the cluster: its own state conflicts with the cluster's: ${conflicts.join('; ')}. ` +
          'Run it without --cluster and rename or delete these, or delete them in the cluster, then join again',
      );
    }
    if (ops.length === 0) return count;
    const heldKeys = stateEntries(stateScope(this.self), held);
    for (const [key, value] of stateEntries(stateScope(this.self), merged))
      if (heldKeys.get(key) !== value) ops.push({ type: 'put', key, value });
    const record: AllocationRecord = { capacity: capacityRecord(capacity), summary: allocationSummary(merged) };
    ops.push({ type: 'put', key: allocationKey(this.self), value: JSON.stringify(record) });
    const { succeeded } = await this.store.txnIf(compares, ops);
    if (!succeeded) throw new SlicedError('EBUSY', "the cluster's catalogue changed while this node brought its state in; start it again");
    return count;
  }

  /**
   * Record this node's capacity in its allocation record (at every start: the node may have
   * changed), keeping the summary of the state the cluster holds for it.
   */
  async registerCapacity(capacity: NodeCapacity): Promise<void> {
    for (;;) {
      const { state, alloc } = await this.readNode(this.self);
      const value: AllocationRecord = { capacity: capacityRecord(capacity), summary: allocationSummary(state) };
      const { succeeded } = await this.store.txnIf(
        [{ key: allocationKey(this.self), modRevision: alloc?.modRevision ?? 0 }],
        [{ type: 'put', key: allocationKey(this.self), value: JSON.stringify(value) }],
      );
      if (succeeded) return;
    }
  }
}
