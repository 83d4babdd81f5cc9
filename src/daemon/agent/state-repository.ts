/**
 * The desired state as the store keeps it: one key per slice, domain and port reservation,
 * each a JSON document. All keys of one state live under one scope: '' for the node's own
 * state today; a cluster keys each node's state under its own scope (`/nodes/<node>`).
 */
import type { Store, StoreOp } from '../../cluster/store.js';
import { emptyState, withAllocationDefaults, type DesiredState, type DomainSpec, type SliceSpec } from '../../core/model.js';
import { reservationKey, type Reservation } from '../../core/net.js';

const SLICES = '/slices/';
const DOMAINS = '/domains/';
const RESERVATIONS = '/net/reservations/';

export class StateRepository {
  private readonly slices: string;
  private readonly domains: string;
  private readonly reservations: string;

  /** `scope` prefixes every key of this state ('' = the node's own state at the store's top). */
  constructor(
    private readonly store: Store,
    readonly scope = '',
  ) {
    this.slices = scope + SLICES;
    this.domains = scope + DOMAINS;
    this.reservations = scope + RESERVATIONS;
  }

  /** The stored desired state (empty when nothing is stored). */
  async load(): Promise<DesiredState> {
    const loaded = emptyState();
    for (const value of (await this.store.range(this.slices)).values()) {
      const spec = withAllocationDefaults(JSON.parse(value) as SliceSpec);
      loaded.slices.set(spec.name, { ...spec, net: spec.net ?? null }); // state written before networking had no net
    }
    for (const value of (await this.store.range(this.domains)).values()) {
      const spec = withAllocationDefaults(JSON.parse(value) as DomainSpec);
      loaded.domains.set(spec.name, spec);
    }
    for (const value of (await this.store.range(this.reservations)).values()) {
      const r = JSON.parse(value) as Reservation;
      loaded.reservations.set(reservationKey(r), r);
    }
    return loaded;
  }

  /** Store the difference from `before` to `next` in one transaction (none when nothing differs). */
  async write(before: DesiredState, next: DesiredState): Promise<void> {
    const ops: StoreOp[] = [];
    diff(this.slices, before.slices, next.slices, ops);
    diff(this.domains, before.domains, next.domains, ops);
    diff(this.reservations, before.reservations, next.reservations, ops);
    if (ops.length > 0) await this.store.txn(ops);
  }

  /**
   * Store whatever the store lacks of `state`, compared with what it holds, in one
   * transaction, even an empty one: its success shows the store writes. Resolves to the
   * number of keys written or deleted.
   */
  async rewrite(state: DesiredState): Promise<number> {
    const stored = new Map<string, string>();
    for (const prefix of [this.slices, this.domains, this.reservations])
      for (const [key, value] of await this.store.range(prefix)) stored.set(key, value);
    const wanted = new Map<string, string>();
    const add = <V>(prefix: string, map: ReadonlyMap<string, V>): void =>
      map.forEach((value, name) => wanted.set(prefix + name, JSON.stringify(value)));
    add(this.slices, state.slices);
    add(this.domains, state.domains);
    add(this.reservations, state.reservations);
    const ops: StoreOp[] = [];
    for (const [key, value] of wanted) if (stored.get(key) !== value) ops.push({ type: 'put', key, value });
    for (const key of stored.keys()) if (!wanted.has(key)) ops.push({ type: 'delete', key });
    await this.store.txn(ops);
    return ops.length;
  }
}

function diff<T>(prefix: string, before: ReadonlyMap<string, T>, next: ReadonlyMap<string, T>, ops: StoreOp[]): void {
  for (const [name, value] of next) {
    if (before.get(name) !== value) ops.push({ type: 'put', key: prefix + name, value: JSON.stringify(value) });
  }
  for (const name of before.keys()) if (!next.has(name)) ops.push({ type: 'delete', key: prefix + name });
}
