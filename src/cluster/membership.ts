/**
 * Cluster membership in the store: each agent keeps `nodes/<name>/live` under a lease it
 * renews (a third of the time to live apart, so two renewals may be lost before the lease
 * ends), and `nodes/<name>/spec` (labels, cordoned) is kept for operators. Every agent
 * watches `nodes/` and so knows every member and its status: a node whose lease ended has no
 * live record and is `down`; it is `up` again when its agent registers anew, which an agent
 * does by itself when it sees its own live record vanish (its lease ended while it was
 * paused or cut off). Writes that are not idempotent are compare transactions.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SlicedError } from '../core/errors.js';
import {
  EMPTY_SPEC,
  applyLabelChanges,
  checkNodeName,
  nodeView,
  parseNodeLive,
  parseNodeSpec,
  type LabelChanges,
  type NodeLive,
  type NodeSpec,
  type NodeView,
} from '../core/membership.js';
import type { ClusterStore, StoreEvent, StoreLease, StoreWatch } from './store.js';

export const NODES_PREFIX = 'nodes/';
const specKey = (name: string): string => `${NODES_PREFIX}${name}/spec`;
export const liveKey = (name: string): string => `${NODES_PREFIX}${name}/live`;

/** The live record with who wrote it: an agent takes over only its own earlier registration. */
export interface AgentRecord extends NodeLive {
  /** Identifies one agent installation (host and state directory), not one run of it. */
  instance: string;
}

export interface MembershipLog {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
}

export interface MembershipOptions {
  name: string;
  /** Time to live of the agent's lease. */
  ttlMs: number;
  /** This agent's record, read at every registration. */
  record: () => AgentRecord;
  /** Labels of a node that has no spec yet (its first join). */
  labels?: Record<string, string>;
  log?: MembershipLog;
}

/** Rounds of read-compare-write against other writers of the same spec. */
const SPEC_ROUNDS = 8;

export class Membership {
  private readonly specs = new Map<string, { spec: NodeSpec; modRevision: number }>();
  private readonly lives = new Map<string, AgentRecord>();
  private lease: StoreLease | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private watcher: StoreWatch | null = null;
  private registering: Promise<void> | null = null;
  private closed = false;
  private readonly listeners = new Set<() => void>();

  private constructor(
    private readonly store: ClusterStore,
    private readonly options: MembershipOptions,
  ) {}

  /** Register this agent and follow every member; refuses a name another agent holds. */
  static async join(store: ClusterStore, options: MembershipOptions): Promise<Membership> {
    checkNodeName(options.name);
    const membership = new Membership(store, options);
    await membership.follow();
    try {
      await membership.register();
    } catch (err) {
      membership.watcher?.close();
      throw err;
    }
    membership.renewTimer = setInterval(() => membership.renew(), Math.max(100, Math.floor(options.ttlMs / 3)));
    membership.renewTimer.unref();
    return membership;
  }

  get name(): string {
    return this.options.name;
  }

  /** The lease this agent's registration lives under; null while it registers again. */
  get leaseId(): string | null {
    return this.lease?.id ?? null;
  }

  /** When the store may end this agent's lease at the earliest (StoreLease.expiresAt); 0 without one. */
  get leaseExpiresAt(): number {
    return this.lease?.expiresAt ?? 0;
  }

  /** Call `listener` after any member's records changed; returns the way to stop. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  list(): NodeView[] {
    const names = new Set([...this.specs.keys(), ...this.lives.keys()]);
    return [...names].sort().map((name) => this.view(name));
  }

  get(name: string): NodeView {
    checkNodeName(name);
    if (!this.specs.has(name) && !this.lives.has(name)) throw new SlicedError('ENOENT', `node ${name} is not a member of this cluster`);
    return this.view(name);
  }

  async label(name: string, changes: LabelChanges): Promise<NodeView> {
    return this.updateSpec(name, (spec) => ({ ...spec, labels: applyLabelChanges(spec.labels, changes) }));
  }

  async setCordoned(name: string, cordoned: boolean): Promise<NodeView> {
    return this.updateSpec(name, (spec) => ({ ...spec, cordoned }));
  }

  /** Forget a node that is down: its spec goes. A node that is up cannot be removed. */
  async remove(name: string): Promise<void> {
    this.get(name);
    for (let round = 0; round < SPEC_ROUNDS; round++) {
      const { entries } = await this.store.rangeVersioned(`${NODES_PREFIX}${name}/`);
      const live = entries.get(liveKey(name));
      if (live) {
        const record = parseNodeLive(liveKey(name), live.value);
        throw new SlicedError(
          'EBUSY',
          `node ${name} is up (its agent registered at ${new Date(record.since).toISOString()}); stop its agent first, or cordon it`,
        );
      }
      const spec = entries.get(specKey(name));
      if (!spec) return;
      const result = await this.store.txnIf(
        [
          { key: specKey(name), modRevision: spec.modRevision },
          { key: liveKey(name), modRevision: 0 },
        ],
        [{ type: 'delete', key: specKey(name) }],
      );
      if (result.succeeded) return;
      await backOff(round);
    }
    throw conflict(name);
  }

  /** Leave: the lease is revoked, so the others see this node down at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.watcher?.close();
    await this.registering?.catch(() => undefined);
    await this.lease?.revoke().catch(() => undefined);
  }

  private view(name: string): NodeView {
    const live = this.lives.get(name);
    return nodeView(name, this.specs.get(name)?.spec, live && withoutInstance(live));
  }

  /** Range `nodes/` and watch it from there; range again when the store no longer has the history. */
  private async follow(): Promise<void> {
    const { revision, entries } = await this.store.rangeVersioned(NODES_PREFIX);
    this.specs.clear();
    this.lives.clear();
    for (const [key, { value, modRevision }] of entries) this.apply(key, value, modRevision);
    this.watcher?.close();
    this.watcher = this.store.watch(
      NODES_PREFIX,
      revision,
      (event) => this.onEvent(event),
      (err) => {
        if (this.closed) return;
        this.options.log?.warn({ err: err.message }, 'membership: the watch of nodes/ ended; reading the members again');
        this.follow().catch((e: unknown) => this.options.log?.warn({ err: String(e) }, 'membership: reading the members failed'));
      },
    );
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private onEvent(event: StoreEvent): void {
    this.apply(event.key, event.value, event.revision);
    this.changed();
    // Our own live record went: the lease ended while this agent was paused or cut off.
    if (event.type === 'delete' && event.key === liveKey(this.name) && !this.closed) {
      this.options.log?.warn({ node: this.name }, 'membership: this node was shown down (its lease ended); registering again');
      this.lease = null;
      this.reregister();
    }
  }

  /** One record's change; a malformed record is logged and leaves that node as it was. */
  private apply(key: string, value: string | null, modRevision: number): void {
    const rest = key.slice(NODES_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return;
    const name = rest.slice(0, slash);
    const kind = rest.slice(slash + 1);
    try {
      if (kind === 'spec') {
        if (value === null) this.specs.delete(name);
        else this.specs.set(name, { spec: parseNodeSpec(key, value), modRevision });
      } else if (kind === 'live') {
        if (value === null) this.lives.delete(name);
        else this.lives.set(name, { ...parseNodeLive(key, value), instance: instanceOf(value) });
      }
    } catch (err) {
      this.options.log?.warn({ key, err: (err as Error).message }, 'membership: a malformed node record is ignored');
    }
  }

  private renew(): void {
    if (this.closed || this.registering) return;
    if (!this.lease) return this.reregister();
    try {
      this.lease.keepAlive();
    } catch {
      this.lease = null;
      this.reregister();
    }
  }

  private reregister(): void {
    if (this.closed || this.registering) return;
    this.registering = this.register()
      .catch((err: unknown) => this.options.log?.warn({ err: (err as Error).message }, 'membership: registering failed; trying again'))
      .finally(() => (this.registering = null));
  }

  private async register(): Promise<void> {
    const { name } = this.options;
    const record = this.options.record();
    const { entries } = await this.store.rangeVersioned(`${NODES_PREFIX}${name}/`);
    const held = entries.get(liveKey(name));
    if (held && instanceOf(held.value) !== record.instance) {
      const other = parseNodeLive(liveKey(name), held.value);
      throw new SlicedError(
        'EEXIST',
        `node name ${name} is held by another live agent (addresses ${other.addresses.join(', ') || 'none'}, registered ` +
          `${new Date(other.since).toISOString()}); give this node another name (--node-name)`,
      );
    }
    if (!entries.has(specKey(name))) {
      const spec: NodeSpec = { ...EMPTY_SPEC, labels: { ...(this.options.labels ?? {}) } };
      // Written only if still absent: an operator's labels made meanwhile win.
      await this.store.txnIf([{ key: specKey(name), modRevision: 0 }], [{ type: 'put', key: specKey(name), value: JSON.stringify(spec) }]);
    }
    const lease = await this.store.grantLease(this.options.ttlMs);
    // Our earlier registration (a restart within its lease) is replaced; another agent's is not.
    const result = await this.store.txnIf(
      [{ key: liveKey(name), modRevision: held?.modRevision ?? 0 }],
      [{ type: 'put', key: liveKey(name), value: JSON.stringify(record), lease: lease.id }],
    );
    if (!result.succeeded) {
      await lease.revoke().catch(() => undefined);
      throw new SlicedError('EEXIST', `node name ${name} was registered by another agent at the same moment; give this node another name`);
    }
    if (this.closed) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.lease = lease;
    this.options.log?.info({ node: name, ttlMs: lease.ttlMs }, 'membership: registered');
  }

  private async updateSpec(name: string, change: (spec: NodeSpec) => NodeSpec): Promise<NodeView> {
    this.get(name);
    for (let round = 0; round < SPEC_ROUNDS; round++) {
      const { entries } = await this.store.rangeVersioned(specKey(name));
      const current = entries.get(specKey(name));
      const next = change(current ? parseNodeSpec(specKey(name), current.value) : EMPTY_SPEC);
      const result = await this.store.txnIf(
        [{ key: specKey(name), modRevision: current?.modRevision ?? 0 }],
        [{ type: 'put', key: specKey(name), value: JSON.stringify(next) }],
      );
      if (result.succeeded) {
        this.apply(specKey(name), JSON.stringify(next), result.revision);
        return this.view(name);
      }
      await backOff(round);
    }
    throw conflict(name);
  }
}

/** A random pause growing with each lost round, so that writers racing for one key spread out. */
function backOff(round: number): Promise<void> {
  return sleep(Math.random() * 10 * 2 ** round);
}

function conflict(name: string): SlicedError {
  return new SlicedError('EBUSY', `node ${name}: its spec kept changing under this change (${SPEC_ROUNDS} tries); try again`);
}

function instanceOf(text: string): string {
  try {
    const value = (JSON.parse(text) as { instance?: unknown }).instance;
    return typeof value === 'string' ? value : '';
  } catch {
    return '';
  }
}

function withoutInstance(record: AgentRecord): NodeLive {
  const { instance: _instance, ...live } = record;
  return live;
}
