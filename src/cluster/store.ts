/**
 * The key-value store behind sliced's desired state (and, later, the config tree). A single
 * node uses the embedded store; a cluster uses etcd behind this same interface. Keys are
 * slash-separated paths; values are strings (JSON documents in practice).
 */
export type StoreOp = { type: 'put'; key: string; value: string } | { type: 'delete'; key: string };

export interface Store {
  /** Every key that starts with `prefix`, with its value. */
  range(prefix: string): Promise<Map<string, string>>;
  get(key: string): Promise<string | undefined>;
  /** Apply all operations atomically; resolves once they are durable. */
  txn(ops: readonly StoreOp[]): Promise<void>;
  close(): Promise<void>;
}
