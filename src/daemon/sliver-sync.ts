/**
 * A cluster node's slivers: the agent follows the state the cluster holds for this node
 * (state/<node>/ in etcd, src/cluster/slice-catalog.ts) and makes the kernel match it, in
 * etcd's revision order; after each pass it records the revision it realised (or why it
 * could not) under its lease, which is what `slicectl slice show` reports per node.
 *
 * While etcd cannot be reached, the node keeps enforcing what it realised last (its own
 * store holds it, so a restart does too), and catches up from the last revision it saw.
 *
 * Joining (SliceCatalog.bringIn): a node whose state the cluster already holds takes the cluster's (its own store
 * is a copy of what it realised). A node that ran on its own before brings its slices and
 * domains into the cluster when none of them conflicts, and otherwise refuses to join,
 * naming each conflict; nothing is dropped.
 */
import type { Logger } from 'pino';
import type { NodeCapacity } from '../core/admission.js';
import { SlicedError } from '../core/errors.js';
import type { DesiredState } from '../core/model.js';
import { realisedKey, stateScope, type RealisedRecord, type SliceCatalog } from '../cluster/slice-catalog.js';
import type { ClusterStore, Store, StoreWatch } from '../cluster/store.js';
import type { SliceAgent } from './agent.js';

/** In the node's own store: present while the node's state is a copy of the cluster's (see join). */
export const MEMBER_MARKER = 'cluster/member';

/** After a failed read of the cluster's state, the next try comes this much later. */
const RETRY_MS = 1000;
/** After a failed realisation, the next try comes this much later (or with the next change). */
export const FAILED_RETRY_MS = 5000;

interface Waiter {
  revision: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface SliverSyncOptions {
  store: ClusterStore;
  catalog: SliceCatalog;
  agent: SliceAgent;
  /** The node's own (embedded) store. */
  localStore: Store;
  node: string;
  capacity: NodeCapacity;
  /** The node's membership lease, under which its realised record is written (null while it registers again). */
  leaseId: () => string | null;
  log: Logger;
}

export class SliverSync {
  private watch: StoreWatch | null = null;
  private realised: RealisedRecord = { revision: 0, error: null, failed: {}, at: 0 };
  private writtenUnder: string | null = null;
  private running: Promise<void> = Promise.resolve();
  private queued = false;
  private marked = false;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  private readonly leaseCheck: NodeJS.Timeout;
  private readonly waiters: Waiter[] = [];

  private constructor(private readonly opts: SliverSyncOptions) {
    // A new lease (the node registered again) lost the realised record: write it again.
    this.leaseCheck = setInterval(() => {
      if (this.opts.leaseId() !== this.writtenUnder && this.realised.at > 0) void this.writeRealised();
    }, 1000);
    this.leaseCheck.unref();
  }

  /** Join (import or refuse, see the file comment), record the capacity, realise and follow. */
  static async start(options: SliverSyncOptions): Promise<SliverSync> {
    const sync = new SliverSync(options);
    try {
      await sync.join();
      await options.catalog.registerCapacity(options.capacity);
      await sync.pass();
    } catch (err) {
      sync.close();
      throw err;
    }
    return sync;
  }

  /**
   * Resolve once this node has realised the cluster's state as of `revision`; reject with the
   * node's reason when that realisation failed, or after `timeoutMs`.
   */
  waitRealised(revision: number, timeoutMs: number): Promise<void> {
    if (this.realised.revision >= revision) return this.realised.error === null ? Promise.resolve() : Promise.reject(this.failure());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { revision, resolve, reject };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(
          new SlicedError('EIO', `stored in the cluster, but this node has not applied it after ${timeoutMs / 1000} s; it goes on trying`),
        );
      }, timeoutMs);
      waiter.resolve = () => (clearTimeout(timer), resolve());
      waiter.reject = (err) => (clearTimeout(timer), reject(err));
      this.waiters.push(waiter);
    });
  }

  /** Why this node left `slice` out of its state at its last realisation, or null. */
  leftOut(slice: string): string | null {
    return this.realised.failed[slice] ?? null;
  }

  close(): void {
    this.closed = true;
    this.watch?.close();
    clearInterval(this.leaseCheck);
    if (this.retry) clearTimeout(this.retry);
    for (const w of this.waiters.splice(0)) w.reject(new SlicedError('EIO', 'the daemon is stopping'));
  }

  private failure(): SlicedError {
    return new SlicedError(
      'EIO',
      `stored in the cluster, but this node could not apply it: ${this.realised.error}; it tries again every ${FAILED_RETRY_MS / 1000} s and with the next change`,
    );
  }

  /** One pass: read the node's state, realise it, record it, and watch from there (once). */
  private pass(): Promise<void> {
    this.queued = false;
    this.running = this.running.then(async () => {
      if (this.closed) return;
      const { store, catalog, agent, node, log } = this.opts;
      let revision: number;
      let state: DesiredState;
      try {
        ({ state, revision } = await catalog.nodeState(node));
      } catch (err) {
        log.warn({ err: (err as Error).message }, "cannot read the cluster's state for this node; enforcing the last one realised");
        this.passAgainIn(RETRY_MS);
        return;
      }
      let error: string | null = null;
      let failed: Record<string, string> = {};
      try {
        failed = Object.fromEntries(await agent.realise(state));
      } catch (err) {
        error = (err as Error).message;
        log.error({ err: error, revision, retryMs: FAILED_RETRY_MS }, "this node could not realise the cluster's state for it");
        // The kernel may refuse for a while (a busy device, a user being removed): try again by itself.
        this.passAgainIn(FAILED_RETRY_MS);
      }
      this.realised = { revision, error, failed, at: Date.now() };
      // A slice left out (its user missing here) is tried again too: the user may be made meanwhile.
      if (error === null && Object.keys(failed).length > 0) this.passAgainIn(FAILED_RETRY_MS);
      if (!this.marked) {
        // Once per run: from now on this node's own store holds a copy of the cluster's state for it.
        await this.opts.localStore.txn([{ type: 'put', key: MEMBER_MARKER, value: JSON.stringify({ node }) }]);
        this.marked = true;
      }
      // The callers waiting here learn first; the record is for the other nodes.
      for (const w of this.waiters.filter((w) => w.revision <= revision)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        if (error === null) w.resolve();
        else w.reject(this.failure());
      }
      await this.writeRealised();
      if (this.watch === null && !this.closed) {
        this.watch = store.watch(
          `${stateScope(node)}/`,
          revision,
          () => this.schedule(),
          (err) => {
            log.warn({ err: err.message }, "the watch of this node's state ended; reading it again");
            this.watch = null;
            this.schedule();
          },
        );
      }
    });
    // A pass that failed (its own store could not write) must not stop the passes after it.
    this.running = this.running.catch((err: Error) => {
      this.opts.log.error({ err: err.message }, 'a pass over the cluster state for this node failed; trying again');
      this.passAgainIn(FAILED_RETRY_MS);
    });
    return this.running;
  }

  /** One more pass after `ms` (once, however many ask before it runs). */
  private passAgainIn(ms: number): void {
    this.retry ??= setTimeout(() => ((this.retry = null), void this.pass()), ms);
  }

  /** Events come in bursts (one transaction = several keys): one pass after the burst. */
  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(() => void this.pass());
  }

  private async writeRealised(): Promise<void> {
    const lease = this.opts.leaseId();
    if (lease === null) return;
    try {
      await this.opts.store.txnIf([], [{ type: 'put', key: realisedKey(this.opts.node), value: JSON.stringify(this.realised), lease }]);
      this.writtenUnder = lease;
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cannot record the state this node realised');
    }
  }

  /**
   * A node whose own store does not say it is a copy of the cluster's (it ran alone since, or
   * never joined) brings what it has: every slice and domain the cluster does not have for
   * it goes in; one it has differently, or that is elsewhere in the cluster, is a conflict.
   */
  private async join(): Promise<void> {
    const { catalog, agent, localStore, capacity, log } = this.opts;
    if ((await localStore.get(MEMBER_MARKER)) !== undefined) return;
    const brought = await catalog.bringIn(agent.state, capacity);
    if (brought.slices + brought.domains > 0) log.info(brought, "this node's own slices and domains are now the cluster's");
  }
}
