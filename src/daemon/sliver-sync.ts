/**
 * A cluster node's slivers: the agent follows the state the cluster holds for this node
 * (state/<node>/ in etcd, src/cluster/slice-catalog.ts) and makes the kernel match it, in
 * etcd's revision order; after each pass it records the revision it realised (or why it
 * could not) under its lease, which is what `slicectl slice show` reports per node.
 *
 * While etcd cannot be reached, the node keeps enforcing what it realised last (its own
 * store holds it, so a restart does too), and catches up from the last revision it saw.
 *
 * Joining: a node whose state the cluster already holds takes the cluster's (its own store
 * is a copy of what it realised). A node that ran on its own before brings its slices and
 * domains into the cluster when none of them conflicts, and otherwise refuses to join,
 * naming each conflict; nothing is dropped.
 */
import type { Logger } from 'pino';
import type { NodeCapacity } from '../core/admission.js';
import { SlicedError } from '../core/errors.js';
import type { DesiredState } from '../core/model.js';
import { allocationSummary } from '../core/slivers.js';
import {
  allocationKey,
  catalogKey,
  realisedKey,
  stateScope,
  type AllocationRecord,
  type CatalogEntry,
  type RealisedRecord,
  type SliceCatalog,
} from '../cluster/slice-catalog.js';
import { stateEntries } from '../cluster/state-repository.js';
import type { ClusterOp, ClusterStore, Store, StoreCompare, StoreWatch } from '../cluster/store.js';
import { capacityRecord } from '../core/admission.js';
import type { SliceAgent } from './agent.js';

/** In the node's own store: present while the node's state is a copy of the cluster's (see join). */
export const MEMBER_MARKER = 'cluster/member';

/** After a failed read of the cluster's state, the next try comes this much later. */
const RETRY_MS = 1000;
/** After a failed realisation, the next try comes this much later (or with the next change). */
const FAILED_RETRY_MS = 5000;

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

  /** The revision this node has realised. */
  get realisedRevision(): number {
    return this.realised.revision;
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
        this.retry ??= setTimeout(() => ((this.retry = null), void this.pass()), RETRY_MS);
        return;
      }
      let error: string | null = null;
      let failed: Record<string, string> = {};
      try {
        failed = Object.fromEntries((await agent.realise(state)).failed);
      } catch (err) {
        error = (err as Error).message;
        log.error({ err: error, revision, retryMs: FAILED_RETRY_MS }, "this node could not realise the cluster's state for it");
        // The kernel may refuse for a while (a busy device, a user being removed): try again by itself.
        this.retry ??= setTimeout(() => ((this.retry = null), void this.pass()), FAILED_RETRY_MS);
      }
      this.realised = { revision, error, failed, at: Date.now() };
      // A slice left out (its user missing here) is tried again too: the user may be made meanwhile.
      if (error === null && Object.keys(failed).length > 0)
        this.retry ??= setTimeout(() => ((this.retry = null), void this.pass()), FAILED_RETRY_MS);
      await this.opts.localStore
        .txn([{ type: 'put', key: MEMBER_MARKER, value: JSON.stringify({ node, revision }) }])
        .catch(() => undefined);
      await this.writeRealised();
      for (const w of this.waiters.filter((w) => w.revision <= revision)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        if (error === null) w.resolve();
        else w.reject(this.failure());
      }
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
    return this.running;
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
    const { store, catalog, agent, node, localStore, log } = this.opts;
    if ((await localStore.get(MEMBER_MARKER)) !== undefined) return;
    const local = agent.state;
    if (local.slices.size === 0 && local.domains.size === 0 && local.reservations.size === 0) return;
    const { state: held } = await catalog.nodeState(node);
    const conflicts: string[] = [];
    const compares: StoreCompare[] = [];
    const ops: ClusterOp[] = [];
    const bring = async (
      kind: 'slice' | 'domain',
      names: Iterable<string>,
      heldHas: (name: string) => boolean,
      same: (name: string) => boolean,
    ): Promise<void> => {
      for (const name of names) {
        if (heldHas(name)) {
          if (!same(name)) conflicts.push(`${kind} ${name} differs from the cluster's ${kind} of that name on this node`);
          continue;
        }
        const entry = await catalog.entry(kind, name);
        if (entry) {
          conflicts.push(`${kind} ${name} exists in the cluster on ${entry.nodes.join(', ')}`);
          continue;
        }
        const value: CatalogEntry = { name, placement: null, nodes: [node], createdOn: node, createdAt: Date.now() };
        compares.push({ key: catalogKey(kind, name), modRevision: 0 });
        ops.push({ type: 'put', key: catalogKey(kind, name), value: JSON.stringify(value) });
      }
    };
    const json = (v: unknown): string => JSON.stringify(v, (k, x: unknown) => (k === 'user' ? undefined : x));
    await bring(
      'domain',
      local.domains.keys(),
      (n) => held.domains.has(n),
      (n) => json(held.domains.get(n)) === json(local.domains.get(n)),
    );
    await bring(
      'slice',
      local.slices.keys(),
      (n) => held.slices.has(n),
      (n) => json(held.slices.get(n)) === json(local.slices.get(n)),
    );
    if (conflicts.length > 0) {
      throw new SlicedError(
        'EEXIST',
        `this node cannot join the cluster: its own state conflicts with the cluster's: ${conflicts.join('; ')}. ` +
          'Run it without --cluster and rename or delete these, or delete them in the cluster, then join again',
      );
    }
    if (ops.length === 0) return;
    // The node's state in the cluster becomes what it runs, merged with what the cluster had for it.
    const merged: DesiredState = {
      slices: new Map([...held.slices, ...local.slices]),
      domains: new Map([...held.domains, ...local.domains]),
      reservations: new Map([...held.reservations, ...local.reservations]),
    };
    const heldKeys = stateEntries(stateScope(node), held);
    for (const [key, value] of stateEntries(stateScope(node), merged))
      if (heldKeys.get(key) !== value) ops.push({ type: 'put', key, value });
    const found = (await store.rangeVersioned(allocationKey(node))).entries.get(allocationKey(node));
    compares.push({ key: allocationKey(node), modRevision: found?.modRevision ?? 0 });
    const record: AllocationRecord = { capacity: capacityRecord(this.opts.capacity), summary: allocationSummary(merged) };
    ops.push({ type: 'put', key: allocationKey(node), value: JSON.stringify(record) });
    const { succeeded } = await store.txnIf(compares, ops);
    if (!succeeded) throw new SlicedError('EBUSY', "the cluster's catalogue changed while this node brought its state in; start it again");
    log.info({ slices: local.slices.size, domains: local.domains.size }, "this node's own slices and domains are now the cluster's");
  }
}
