/**
 * Values shared between nodes, for the remote_cache filter: each node publishes its latest
 * value of a tree path under `values/<node>/<path>`, and prefetches the other nodes' values
 * into a local cache that the update path reads without waiting. On a single node there is
 * nobody else and the cache stays empty; a cluster store (etcd) plugs in behind the same
 * Store interface.
 */
import type { Store } from './store.js';

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
  /** Fetch the other nodes' values of `key`. */
  fetch(key: string): Promise<RemoteRow[]>;
}

const PREFIX = 'values/';

export class StoreRemoteValues implements RemoteValues {
  constructor(
    private readonly store: Store,
    readonly nodeName: string,
  ) {}

  async publish(key: string, labels: readonly string[], data: ArrayLike<number>): Promise<void> {
    await this.store.txn([
      { type: 'put', key: `${PREFIX}${this.nodeName}${key}`, value: JSON.stringify({ labels, data: Array.from(data), at: Date.now() }) },
    ]);
  }

  async fetch(key: string): Promise<RemoteRow[]> {
    const rows: RemoteRow[] = [];
    for (const [k, v] of await this.store.range(PREFIX)) {
      const rest = k.slice(PREFIX.length);
      const slash = rest.indexOf('/');
      const node = rest.slice(0, slash);
      if (node === this.nodeName || rest.slice(slash) !== key) continue;
      try {
        const parsed = JSON.parse(v) as { labels: string[]; data: number[] };
        rows.push({ node, labels: parsed.labels, data: parsed.data });
      } catch {
        // A torn or foreign entry is skipped; the next publish replaces it.
      }
    }
    return rows.sort((a, b) => a.node.localeCompare(b.node));
  }
}
