/**
 * The key-value store behind sliced's desired state and config tree. A single node uses the
 * embedded store; a cluster uses etcd behind the same interfaces. Keys are slash-separated
 * paths; values are strings (JSON documents in practice).
 */
import type { SlicedError } from '../core/errors.js';

export type StoreOp = { type: 'put'; key: string; value: string } | { type: 'delete'; key: string };

export interface Store {
  /** Every key that starts with `prefix`, with its value. */
  range(prefix: string): Promise<Map<string, string>>;
  get(key: string): Promise<string | undefined>;
  /** Apply all operations atomically; resolves once they are durable. */
  txn(ops: readonly StoreOp[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * What a cluster needs beyond Store, in etcd's terms: every write gets the next revision; a
 * transaction can be made conditional on the revisions of keys (compare-and-put, which is how
 * two agents agree without a lock); a watch delivers the changes under a prefix after a
 * revision, so a reader that ranged at revision R misses nothing; a lease ties keys to the
 * liveness of their writer (a node's membership key vanishes when the node stops renewing it).
 */
export interface ClusterStore extends Store {
  /** The revision of the last write. */
  revision(): Promise<number>;
  /** The keys under `prefix` with their values and the revision they were read at. */
  rangeVersioned(prefix: string): Promise<{ revision: number; entries: Map<string, Versioned> }>;
  /**
   * Apply `ops` atomically if every compare holds; otherwise write nothing. Puts may carry a
   * lease (the id of a grantLease result): the key is deleted when the lease ends.
   */
  txnIf(compares: readonly StoreCompare[], ops: readonly ClusterOp[]): Promise<{ succeeded: boolean; revision: number }>;
  /**
   * Call `onEvent` for every change of a key under `prefix` after revision `after`, in
   * revision order, first those already made, then each new one, each exactly once (a store
   * that loses its connection resumes after the last revision delivered). `onError` is called
   * at most once, when the watch ends without being closed: chiefly when `after` is older than
   * the history the store keeps (etcd: "compacted"; the message says "history is not kept"):
   * range again and watch from there. A malformed revision throws at once.
   */
  watch(prefix: string, after: number, onEvent: (event: StoreEvent) => void, onError: (err: SlicedError) => void): StoreWatch;
  /** Forget the history before `revision`: watches can then start after revision - 1 at the earliest. */
  compact(revision: number): Promise<void>;
  /** A lease that ends `ttlMs` after it was granted or last kept alive, or when revoked. */
  grantLease(ttlMs: number): Promise<StoreLease>;
}

export interface Versioned {
  value: string;
  /** The revision of the last write of this key. */
  modRevision: number;
}

/** Holds when the key's last write was at `modRevision`; 0 means the key must not exist. */
export interface StoreCompare {
  key: string;
  modRevision: number;
}

export type ClusterOp = StoreOp | { type: 'put'; key: string; value: string; lease: string };

export interface StoreEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value; null for a delete. */
  value: string | null;
  revision: number;
}

export interface StoreWatch {
  close(): void;
}

export interface StoreLease {
  readonly id: string;
  readonly ttlMs: number;
  /**
   * When the store may end the lease at the earliest, by this process's clock (ms since the
   * epoch): a renewal counts from when it was sent, not from when the store got it, so the
   * store ends the lease no earlier than this. What fencing waits for.
   */
  readonly expiresAt: number;
  /** Restart the lease's time to live. */
  keepAlive(): void;
  /** End the lease now: its keys are deleted. */
  revoke(): Promise<void>;
}
