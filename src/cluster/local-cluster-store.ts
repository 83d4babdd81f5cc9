/**
 * ClusterStore for a single node, over any durable Store (the embedded one): one process owns
 * the store (the embedded store's lock), so revisions, conditional transactions, watches and
 * leases can live in that process's memory.
 *
 * Revisions count from the opening: revision 1 is the state found at opening (every key found
 * then has modRevision 1), and watches can start from revision 1 on. Keys put with a lease are
 * held in memory only, never written to disk: a lease cannot outlive the process that holds
 * it, so after a restart such keys are gone, as they would be once the lease expired. A key
 * taken over by a lease is deleted on disk for the same reason.
 */
import { randomUUID } from 'node:crypto';
import { SlicedError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { ClusterOp, ClusterStore, Store, StoreCompare, StoreEvent, StoreLease, StoreOp, StoreWatch, Versioned } from './store.js';

export interface LocalClusterStoreOptions {
  /** Events kept for watches that start in the past; older ones are refused as compacted. */
  historyLimit?: number;
}

interface Watcher {
  prefix: string;
  onEvent: (event: StoreEvent) => void;
}

interface LeaseState {
  ttlMs: number;
  timer: NodeJS.Timeout;
  keys: Set<string>;
}

/** Revision of the state found at opening. */
const OPENING = 1;

export class LocalClusterStore implements ClusterStore {
  private current = OPENING;
  /** Keys written since opening; a key found at opening and not written since has OPENING. */
  private readonly modRevisions = new Map<string, number>();
  /** Values of keys put with a lease (memory only). */
  private readonly leased = new Map<string, { value: string; lease: string }>();
  private readonly leases = new Map<string, LeaseState>();
  private readonly history: StoreEvent[] = [];
  /** Every event from this revision on is in `history` (the state at opening is not an event). */
  private oldestKept = OPENING + 1;
  private readonly historyLimit: number;
  private readonly watchers = new Set<Watcher>();
  private readonly writes = new SerialQueue();
  private closed = false;

  constructor(
    private readonly durable: Store,
    options: LocalClusterStoreOptions = {},
  ) {
    this.historyLimit = options.historyLimit ?? 10_000;
  }

  async revision(): Promise<number> {
    return this.current;
  }

  async get(key: string): Promise<string | undefined> {
    return this.leased.get(key)?.value ?? (await this.durable.get(key));
  }

  async range(prefix: string): Promise<Map<string, string>> {
    const found = await this.durable.range(prefix);
    for (const [key, { value }] of this.leased) if (key.startsWith(prefix)) found.set(key, value);
    return found;
  }

  async rangeVersioned(prefix: string): Promise<{ revision: number; entries: Map<string, Versioned> }> {
    // Behind the writes queued so far, so that values and revision belong together.
    return this.writes.run(async () => {
      const entries = new Map<string, Versioned>();
      for (const [key, value] of await this.range(prefix)) entries.set(key, { value, modRevision: this.modRevisions.get(key) ?? OPENING });
      return { revision: this.current, entries };
    });
  }

  txn(ops: readonly StoreOp[]): Promise<void> {
    return this.txnIf([], ops).then(() => undefined);
  }

  txnIf(compares: readonly StoreCompare[], ops: readonly ClusterOp[]): Promise<{ succeeded: boolean; revision: number }> {
    if (this.closed) return Promise.reject(new SlicedError('EIO', 'store is closed'));
    return this.writes.run(async () => {
      for (const op of ops) {
        if ('lease' in op && !this.leases.has(op.lease)) {
          throw new SlicedError('ENOENT', `put of ${op.key}: lease ${op.lease} does not exist (expired or revoked)`);
        }
      }
      for (const compare of compares) {
        if ((await this.modRevision(compare.key)) !== compare.modRevision) return { succeeded: false, revision: this.current };
      }
      await this.write(ops);
      return { succeeded: true, revision: this.current };
    });
  }

  watch(prefix: string, after: number, onEvent: (event: StoreEvent) => void, onError: (err: SlicedError) => void): StoreWatch {
    if (!Number.isInteger(after) || after < 0)
      throw new SlicedError('EINVAL', `watch of ${prefix} after revision ${after}: a whole number >= 0`);
    if (after < this.oldestKept - 1 && after < this.current) {
      const err = new SlicedError(
        'EINVAL',
        `watch of ${prefix} after revision ${after}: that history is not kept (revisions ${this.oldestKept - 1} to ` +
          `${this.current} are); range again and watch from its revision`,
      );
      // Reported the way a remote store reports it: after watch() has returned.
      queueMicrotask(() => onError(err));
      return { close: () => undefined };
    }
    const watcher: Watcher = { prefix, onEvent };
    for (const event of this.history) if (event.revision > after && event.key.startsWith(prefix)) onEvent(event);
    this.watchers.add(watcher);
    return { close: () => this.watchers.delete(watcher) };
  }

  async compact(revision: number): Promise<void> {
    if (!Number.isInteger(revision) || revision < OPENING || revision > this.current) {
      throw new SlicedError('EINVAL', `compact to revision ${revision}: a revision from ${OPENING} to the current ${this.current}`);
    }
    this.forget(revision - 1);
  }

  async grantLease(ttlMs: number): Promise<StoreLease> {
    if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new SlicedError('EINVAL', `lease time to live ${ttlMs} ms: a whole number of ms >= 1`);
    const id = randomUUID();
    const state: LeaseState = { ttlMs, timer: this.expiry(id, ttlMs), keys: new Set() };
    this.leases.set(id, state);
    let expiresAt = Date.now() + ttlMs;
    const leases = this.leases;
    return {
      id,
      ttlMs,
      get expiresAt() {
        return leases.has(id) ? expiresAt : 0;
      },
      keepAlive: () => {
        const live = this.leases.get(id);
        if (!live) throw new SlicedError('ENOENT', `lease ${id} has ended; grant a new one`);
        clearTimeout(live.timer);
        live.timer = this.expiry(id, ttlMs);
        expiresAt = Date.now() + ttlMs;
      },
      revoke: () => this.endLease(id),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const lease of this.leases.values()) clearTimeout(lease.timer);
    this.leases.clear();
    this.watchers.clear();
    await this.writes.run(() => this.durable.close());
  }

  private async modRevision(key: string): Promise<number> {
    const written = this.modRevisions.get(key);
    if (written !== undefined) return (await this.get(key)) === undefined ? 0 : written;
    return (await this.durable.get(key)) === undefined ? 0 : OPENING;
  }

  /** Apply ops (in the write queue): disk first, then memory, then the events. */
  private async write(ops: readonly ClusterOp[]): Promise<void> {
    const onDisk: StoreOp[] = [];
    for (const op of ops) {
      // A leased key must not come back from disk after a restart; one held in memory only
      // has nothing on disk to delete.
      if ('lease' in op) onDisk.push({ type: 'delete', key: op.key });
      else if (op.type === 'put' || !this.leased.has(op.key)) onDisk.push(op);
    }
    if (onDisk.length > 0) await this.durable.txn(onDisk);
    const revision = ++this.current;
    const events: StoreEvent[] = [];
    for (const op of ops) {
      const held = this.leased.get(op.key);
      if (held) {
        this.leases.get(held.lease)?.keys.delete(op.key);
        this.leased.delete(op.key);
      }
      if ('lease' in op) {
        this.leased.set(op.key, { value: op.value, lease: op.lease });
        this.leases.get(op.lease)!.keys.add(op.key);
      }
      this.modRevisions.set(op.key, revision);
      events.push({ type: op.type, key: op.key, value: op.type === 'put' ? op.value : null, revision });
    }
    this.history.push(...events);
    const excess = this.history.length - this.historyLimit;
    // Whole revisions only: a watch after a revision gets all of the next one's events.
    if (excess > 0) this.forget(this.history[excess - 1]!.revision);
    for (const event of events) for (const w of this.watchers) if (event.key.startsWith(w.prefix)) w.onEvent(event);
  }

  /** Drop the events up to and including `revision`. */
  private forget(revision: number): void {
    if (revision < this.oldestKept) return;
    const kept = this.history.findIndex((event) => event.revision > revision);
    this.history.splice(0, kept === -1 ? this.history.length : kept);
    this.oldestKept = revision + 1;
  }

  private expiry(id: string, ttlMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => void this.endLease(id).catch(() => undefined), ttlMs);
    timer.unref();
    return timer;
  }

  private async endLease(id: string): Promise<void> {
    const lease = this.leases.get(id);
    if (!lease) return;
    clearTimeout(lease.timer);
    this.leases.delete(id);
    if (lease.keys.size === 0 || this.closed) return;
    await this.writes.run(async () => {
      const keys = [...lease.keys].filter((key) => this.leased.get(key)?.lease === id);
      if (keys.length > 0) await this.write(keys.map((key) => ({ type: 'delete', key })));
    });
  }
}
