/**
 * The config tree shared by a cluster (Kerrighed's global_config): every change on any node
 * commits to the cluster store, and every node applies every change in the store's revision
 * order. A change is made on the local tree first (which checks it), then committed as one
 * transaction that also rewrites `tree/head`, conditional on `tree/head` being what this node
 * last applied: if another node changed the tree meanwhile, the commit fails (TreeConflict),
 * the service undoes the local change, catches up and tries again, and after a few lost rounds
 * answers EBUSY ("try again"), as Kerrighed answered EAGAIN. Changes of other nodes arrive by
 * a watch of `tree/` and are applied in revision order; this node's own commits are skipped
 * there. If the store no longer has the history the watch needs (compaction), the keys are
 * read again and the difference applied.
 */
import { SlicedError } from '../core/errors.js';
import type { ClusterStore, StoreCompare, StoreEvent, StoreOp, StoreWatch } from '../cluster/store.js';
import { DIR, HEAD, LINK, storedTree } from './tree-keys.js';
import type { Logger } from './types.js';

/** The commit lost against another node's change: nothing of it was written. */
export class TreeConflict extends Error {
  constructor() {
    super('the config tree was changed on another node meanwhile');
  }
}

/** How long catchUp waits for the changes it knows of to arrive. */
const CATCH_UP_MS = 5000;
const PREFIX = 'tree/';

export class TreeSync {
  /** Mod revision of tree/head as applied here: what the next commit compares. */
  private head = 0;
  /** The shared keys as applied here. */
  private readonly known = new Map<string, string>();
  /** Revisions this node committed itself (applied already). */
  private readonly own = new Set<number>();
  private buffer: StoreEvent[] = [];
  private watcher: StoreWatch | null = null;
  private arrived: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly store: ClusterStore,
    private readonly nodeName: string,
    /** Apply other nodes' changes to the live tree, in order, without storing them again. */
    private readonly apply: (events: readonly StoreEvent[]) => Promise<void>,
    /** Run work in the tree service's order (after the operation in progress, if any). */
    private readonly schedule: (work: () => Promise<void>) => void,
    private readonly log: Logger,
  ) {}

  /** The shared keys now, and the revision they were read at. */
  async load(): Promise<{ keys: Map<string, string>; revision: number }> {
    const { revision, entries } = await this.store.rangeVersioned(PREFIX);
    this.known.clear();
    for (const [key, { value }] of entries) this.known.set(key, value);
    this.head = entries.get(HEAD)?.modRevision ?? 0;
    return { keys: new Map(this.known), revision };
  }

  /** Follow the changes after `revision` (that of load()). */
  follow(revision: number): void {
    this.watcher?.close();
    this.watcher = this.store.watch(
      PREFIX,
      revision,
      (event) => {
        this.buffer.push(event);
        for (const wake of this.arrived.splice(0)) wake();
        this.schedule(() => this.drain());
      },
      (err) => {
        if (this.closed) return;
        this.log.warn({ err: err.message }, 'config tree: the watch of the cluster tree ended; reading it again');
        this.schedule(() => this.resync());
      },
    );
  }

  /** Commit shared operations; TreeConflict if another node committed since this one last applied (or a further compare fails). */
  async commit(ops: readonly StoreOp[], compares: readonly StoreCompare[] = []): Promise<void> {
    const result = await this.store.txnIf(
      [{ key: HEAD, modRevision: this.head }, ...compares],
      [...ops, { type: 'put', key: HEAD, value: JSON.stringify({ node: this.nodeName, at: Date.now() }) }],
    );
    if (!result.succeeded) throw new TreeConflict();
    this.own.add(result.revision);
    this.head = result.revision;
    for (const op of ops) {
      if (op.type === 'put') this.known.set(op.key, op.value);
      else this.known.delete(op.key);
    }
  }

  /** Apply every change committed before now (call inside the service's order). */
  async catchUp(): Promise<void> {
    const { entries } = await this.store.rangeVersioned(HEAD);
    const target = entries.get(HEAD)?.modRevision ?? 0;
    const deadline = Date.now() + CATCH_UP_MS;
    while (this.head < target) {
      await this.drain();
      if (this.head >= target) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new SlicedError(
          'EIO',
          `the cluster's tree changes up to revision ${target} did not arrive within ${CATCH_UP_MS} ms; try again`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.arrived.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
  }

  /** Apply the buffered events, one revision (one commit) at a time. */
  private async drain(): Promise<void> {
    while (this.buffer.length > 0) {
      const revision = this.buffer[0]!.revision;
      let end = 1;
      while (end < this.buffer.length && this.buffer[end]!.revision === revision) end++;
      const group = this.buffer.splice(0, end);
      if (this.own.delete(revision)) continue;
      for (const e of group) {
        if (e.value === null) this.known.delete(e.key);
        else this.known.set(e.key, e.value);
        if (e.key === HEAD) this.head = Math.max(this.head, e.revision);
      }
      await this.apply(group);
    }
  }

  /** After the history was lost: read the keys again and apply the difference. */
  private async resync(): Promise<void> {
    const before = new Map(this.known);
    this.buffer = [];
    const { keys, revision } = await this.load();
    await this.apply(difference(before, keys, revision));
    this.follow(revision);
  }
}

/** Events that turn the tree of `before` into that of `after`: removals deepest first, then additions in their order. */
export function difference(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>, revision: number): StoreEvent[] {
  const events: StoreEvent[] = [];
  const gone = [...before.keys()].filter((k) => !after.has(k));
  for (const prefix of [LINK, DIR]) {
    const keys = gone.filter((k) => k.startsWith(prefix)).sort((a, b) => b.length - a.length);
    for (const key of keys) events.push({ type: 'delete', key, value: null, revision });
  }
  const changed = new Map([...after].filter(([k, v]) => before.get(k) !== v));
  const { dirs, attrs, links } = storedTree(changed);
  for (const d of dirs) events.push({ type: 'put', key: `${DIR}${d.path}`, value: changed.get(`${DIR}${d.path}`)!, revision });
  for (const a of attrs) events.push({ type: 'put', key: a.key, value: changed.get(a.key)!, revision });
  for (const l of links) events.push({ type: 'put', key: `${LINK}${l.path}`, value: changed.get(`${LINK}${l.path}`)!, revision });
  return events;
}
