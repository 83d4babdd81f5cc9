/**
 * The desired state as the store keeps it: one key per slice, domain and port reservation,
 * each a JSON document. All keys of one state live under one scope: '' for the node's own
 * state in its embedded store; in a cluster, each node's state lives in etcd under
 * `state/<node>` (src/cluster/slice-catalog.ts), and the node's embedded store keeps the
 * last state it realised under ''.
 */
import type { Store, StoreOp } from './store.js';
import { emptyState, withAllocationDefaults, type DesiredState, type DomainSpec, type SliceSpec } from '../core/model.js';
import { reservationKey, type Reservation } from '../core/net.js';

const SLICES = '/slices/';
const DOMAINS = '/domains/';
const RESERVATIONS = '/net/reservations/';
const PARTS = [SLICES, DOMAINS, RESERVATIONS] as const;

export class StateRepository {
  /** `scope` prefixes every key of this state ('' = the node's own state at the store's top). */
  constructor(
    private readonly store: Store,
    readonly scope = '',
  ) {}

  /** The stored desired state (empty when nothing is stored). */
  async load(): Promise<DesiredState> {
    return parseState(this.scope, await this.stored());
  }

  /** Store the difference from `before` to `next` in one transaction (none when nothing differs). */
  async write(before: DesiredState, next: DesiredState): Promise<void> {
    const ops = stateOps(this.scope, before, next);
    if (ops.length > 0) await this.store.txn(ops);
  }

  /**
   * Store whatever the store lacks of `state`, compared with what it holds, in one
   * transaction, even an empty one: its success shows the store writes. Resolves to the
   * number of keys written or deleted.
   */
  async rewrite(state: DesiredState): Promise<number> {
    const stored = await this.stored();
    const wanted = stateEntries(this.scope, state);
    const ops: StoreOp[] = [];
    for (const [key, value] of wanted) if (stored.get(key) !== value) ops.push({ type: 'put', key, value });
    for (const key of stored.keys()) if (!wanted.has(key)) ops.push({ type: 'delete', key });
    await this.store.txn(ops);
    return ops.length;
  }

  /** Every stored key of this state, with its value. */
  private async stored(): Promise<Map<string, string>> {
    const entries = new Map<string, string>();
    for (const part of PARTS) for (const [key, value] of await this.store.range(this.scope + part)) entries.set(key, value);
    return entries;
  }
}

/** The state held by `entries` (keys under `scope`; other keys are ignored). */
export function parseState(scope: string, entries: ReadonlyMap<string, string>): DesiredState {
  const loaded = emptyState();
  for (const [key, value] of entries) {
    if (key.startsWith(scope + SLICES)) {
      const spec = withAllocationDefaults(JSON.parse(value) as SliceSpec);
      loaded.slices.set(spec.name, { ...spec, net: spec.net ?? null }); // state written before networking had no net
    } else if (key.startsWith(scope + DOMAINS)) {
      const spec = withAllocationDefaults(JSON.parse(value) as DomainSpec);
      loaded.domains.set(spec.name, spec);
    } else if (key.startsWith(scope + RESERVATIONS)) {
      const r = JSON.parse(value) as Reservation;
      loaded.reservations.set(reservationKey(r), r);
    }
  }
  return loaded;
}

/** Every key of `state` under `scope`, with its value. */
export function stateEntries(scope: string, state: DesiredState): Map<string, string> {
  const out = new Map<string, string>();
  const add = <V>(part: string, map: ReadonlyMap<string, V>): void =>
    map.forEach((value, name) => out.set(scope + part + name, JSON.stringify(value)));
  add(SLICES, state.slices);
  add(DOMAINS, state.domains);
  add(RESERVATIONS, state.reservations);
  return out;
}

/** The writes that turn `before` into `next` under `scope` (values compared by identity, as changes copy what they touch). */
export function stateOps(scope: string, before: DesiredState, next: DesiredState): StoreOp[] {
  const ops: StoreOp[] = [];
  diff(scope + SLICES, before.slices, next.slices, ops);
  diff(scope + DOMAINS, before.domains, next.domains, ops);
  diff(scope + RESERVATIONS, before.reservations, next.reservations, ops);
  return ops;
}

function diff<T>(prefix: string, before: ReadonlyMap<string, T>, next: ReadonlyMap<string, T>, ops: StoreOp[]): void {
  for (const [name, value] of next) {
    if (before.get(name) !== value) ops.push({ type: 'put', key: prefix + name, value: JSON.stringify(value) });
  }
  for (const name of before.keys()) if (!next.has(name)) ops.push({ type: 'delete', key: prefix + name });
}
