/**
 * One leader among the agents, for the work only one may do at a time (placing the tasks of
 * a node that went down). The leader holds the key `leader` under its membership lease, so
 * leadership ends when the lease does (its time to live is the cluster's lease TTL): the
 * others watch the key and campaign when it goes. A leader's writes compare the key's
 * revision (`fence()`), so one that lost leadership while paused cannot act on stale belief.
 */
import type { Logger } from 'pino';
import type { ClusterStore, StoreCompare, StoreWatch } from './store.js';

export const LEADER_KEY = 'leader';

/** How often an agent looks whether the key is free, besides watching it. */
const CAMPAIGN_EVERY_MS = 1000;

export interface LeaderRecord {
  node: string;
  since: number;
}

export class Leadership {
  private held: { modRevision: number; leaseId: string } | null = null;
  private current: LeaderRecord | null = null;
  private watcher: StoreWatch | null = null;
  private timer: NodeJS.Timeout | null = null;
  private campaigning = false;
  private closed = false;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly store: ClusterStore,
    private readonly node: string,
    /** The lease leadership lives under (the node's membership lease); null while it has none. */
    private readonly leaseId: () => string | null,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.follow();
    this.timer = setInterval(() => void this.campaign(), CAMPAIGN_EVERY_MS);
    this.timer.unref();
    await this.campaign();
  }

  /** Whether this agent leads now, by what it has seen (its writes still compare on the key). */
  isLeader(): boolean {
    return this.held !== null && this.held.leaseId === this.leaseId();
  }

  /** The compare a leader's write carries: it holds only while this agent still holds the key. */
  fence(): StoreCompare {
    return { key: LEADER_KEY, modRevision: this.held?.modRevision ?? -1 };
  }

  /** Call `listener` when leadership may have changed hands. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    // The key goes with the lease, which membership revokes when the agent leaves.
  }

  private async follow(): Promise<void> {
    const { revision, entries } = await this.store.rangeVersioned(LEADER_KEY);
    const entry = entries.get(LEADER_KEY);
    this.current = entry ? (JSON.parse(entry.value) as LeaderRecord) : null;
    this.watcher = this.store.watch(
      LEADER_KEY,
      revision,
      (event) => {
        if (event.key !== LEADER_KEY) return;
        this.current = event.value === null ? null : (JSON.parse(event.value) as LeaderRecord);
        if (this.held && (event.value === null || this.current?.node !== this.node)) this.held = null;
        this.changed();
        if (event.value === null) void this.campaign();
      },
      () => {
        if (this.closed) return;
        // History gone: read the key again and go on watching from there.
        this.follow().catch((err: Error) => this.log.warn({ err: err.message }, 'leadership: reading the leader failed'));
      },
    );
  }

  private async campaign(): Promise<void> {
    if (this.closed || this.campaigning) return;
    const leaseId = this.leaseId();
    if (this.held && this.held.leaseId !== leaseId) {
      this.held = null; // our lease ended: so did the key
      this.changed();
    }
    if (this.held || leaseId === null || this.current !== null) return;
    this.campaigning = true;
    try {
      const record: LeaderRecord = { node: this.node, since: Date.now() };
      const { succeeded, revision } = await this.store.txnIf(
        [{ key: LEADER_KEY, modRevision: 0 }],
        [{ type: 'put', key: LEADER_KEY, value: JSON.stringify(record), lease: leaseId }],
      );
      if (succeeded) {
        this.held = { modRevision: revision, leaseId };
        this.current = record;
        this.log.info({ node: this.node }, 'leadership: this agent leads the cluster');
        this.changed();
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'leadership: campaign failed; trying again');
    } finally {
      this.campaigning = false;
    }
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
