/**
 * Values shared between nodes, for the remote_cache filter: each node publishes its latest
 * value of a tree path under `values/<node><path>`, put with the node's membership lease, so
 * a dead node's values vanish with it and, on a node alone, they never reach the disk (its
 * store keeps leased keys in memory). Publications made in the same turn of the event loop go
 * out as one transaction. The other nodes' values are followed by a watch of `values/` into a
 * local cache that fetch() reads without a call.
 */
import { SerialQueue } from '../core/serial-queue.js';
import type { ClusterOp, ClusterStore, StoreEvent, StoreWatch } from './store.js';

export interface RemoteRow {
  node: string;
  labels: string[];
  /** Row-major cells, `labels.length` rows (or one unlabelled row). */
  data: number[];
}

export interface RemoteValues {
  readonly nodeName: string;
  /** Publish this node's value of `key` (not on the update path: callers batch it on a timer). */
  publish(key: string, labels: readonly string[], data: ArrayLike<number>): Promise<void>;
  /** The other nodes' values of `key`, as last seen. */
  fetch(key: string): Promise<RemoteRow[]>;
}

const PREFIX = 'values/';

export interface RemoteValuesLog {
  warn(details: object, message: string): void;
}

export class ClusterRemoteValues implements RemoteValues {
  /** Latest value of every node's keys: node -> key -> row. */
  private readonly seen = new Map<string, Map<string, RemoteRow>>();
  private readonly pending = new Map<string, string>();
  private flushing: Promise<void> | null = null;
  private readonly writes = new SerialQueue();
  private watcher: StoreWatch | null = null;
  private following: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly store: ClusterStore,
    readonly nodeName: string,
    /** The lease this node's values are put with; null while the node is not registered. */
    private readonly lease: () => string | null,
    private readonly log?: RemoteValuesLog,
  ) {}

  publish(key: string, labels: readonly string[], data: ArrayLike<number>): Promise<void> {
    this.pending.set(`${PREFIX}${this.nodeName}${key}`, JSON.stringify({ labels, data: Array.from(data), at: Date.now() }));
    // Everything published in this turn goes in one transaction.
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.flushing = null;
      return this.flush();
    });
    return this.flushing;
  }

  async fetch(key: string): Promise<RemoteRow[]> {
    this.following ??= this.follow();
    await this.following;
    const rows: RemoteRow[] = [];
    for (const [node, keys] of this.seen) {
      const row = keys.get(key);
      if (node !== this.nodeName && row) rows.push(row);
    }
    return rows.sort((a, b) => a.node.localeCompare(b.node));
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
  }

  private flush(): Promise<void> {
    const entries = [...this.pending];
    this.pending.clear();
    const lease = this.lease();
    // Not registered right now (the lease ended, a new one is on its way): the next period publishes.
    if (lease === null || entries.length === 0) return Promise.resolve();
    const ops: ClusterOp[] = entries.map(([key, value]) => ({ type: 'put', key, value, lease }));
    return this.writes.run(async () => {
      await this.store.txnIf([], ops);
    });
  }

  private async follow(): Promise<void> {
    const { revision, entries } = await this.store.rangeVersioned(PREFIX);
    this.seen.clear();
    for (const [key, { value }] of entries) this.apply(key, value);
    this.watcher?.close();
    this.watcher = this.store.watch(
      PREFIX,
      revision,
      (event: StoreEvent) => this.apply(event.key, event.value),
      (err) => {
        if (this.closed) return;
        this.log?.warn({ err: err.message }, 'remote values: the watch ended; reading them again');
        this.following = this.follow().catch((e: unknown) => {
          this.following = null; // the next fetch tries again
          this.log?.warn({ err: String(e) }, 'remote values: reading them failed');
        });
      },
    );
  }

  private apply(key: string, value: string | null): void {
    const rest = key.slice(PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return;
    const node = rest.slice(0, slash);
    const path = rest.slice(slash);
    if (value === null) {
      this.seen.get(node)?.delete(path);
      return;
    }
    try {
      const parsed = JSON.parse(value) as { labels?: unknown; data?: unknown };
      if (!Array.isArray(parsed.labels) || !Array.isArray(parsed.data)) return;
      let keys = this.seen.get(node);
      if (!keys) this.seen.set(node, (keys = new Map()));
      keys.set(path, { node, labels: parsed.labels.map(String), data: parsed.data.map(Number) });
    } catch {
      // A torn or foreign entry is skipped; the next publication replaces it.
    }
  }
}
