/**
 * Every change to the desired state as one value: a kind and its payload. `planChange` is
 * the single pure entry to the functions of changes.ts: it returns the next state and what
 * the change reports back (the new spec, the reservation ...), or throws without having
 * touched anything. The agent runs every kind through the same path (persist, reconcile,
 * report); a cluster can log, replay or forward the same values.
 */
import * as changes from './changes.js';
import type { NodeCapacity } from './admission.js';
import type { DesiredState, DomainSpec, NetInput, SliceSpec } from './model.js';
import { reservationKey, type Reservation } from './net.js';

/** The payload of each change kind, with names and devices already resolved. */
export interface ChangePayloads {
  'slice.create': { input: changes.NewSlice };
  'slice.update': { name: string; input: changes.AllocationInput & { net?: NetInput } };
  'slice.delete': { name: string };
  'domain.create': { input: changes.NewDomain };
  'domain.update': { name: string; input: changes.AllocationInput };
  'domain.delete': { name: string };
  /** Into `domain`, or to the node level when null. */
  'member.move': { member: string; domain: string | null };
  'port.reserve': { input: changes.ReservationInput };
  'port.release': { input: Omit<changes.ReservationInput, 'slice'> };
}

/** What each change kind reports back. A deletion reports what it deleted. */
export interface ChangeResults {
  'slice.create': SliceSpec;
  'slice.update': SliceSpec;
  'slice.delete': SliceSpec;
  'domain.create': DomainSpec;
  'domain.update': DomainSpec;
  'domain.delete': DomainSpec;
  'member.move': null;
  'port.reserve': Reservation;
  'port.release': Reservation;
}

export type ChangeKind = keyof ChangePayloads;

/** One change of kind K (or, with K left open, of any kind). */
export type StateChange<K extends ChangeKind = ChangeKind> = { [P in K]: { kind: P } & ChangePayloads[P] }[K];

export interface PlannedChange<K extends ChangeKind = ChangeKind> {
  next: DesiredState;
  result: ChangeResults[K];
}

type Planners = { [K in ChangeKind]: (state: DesiredState, change: StateChange<K>, node: NodeCapacity) => PlannedChange<K> };

const planners: Planners = {
  'slice.create': (state, { input }, node) => {
    const next = changes.createSlice(state, input, node);
    return { next, result: next.slices.get(input.name)! };
  },
  'slice.update': (state, { name, input }, node) => {
    const next = changes.updateSlice(state, name, input, node);
    return { next, result: next.slices.get(name)! };
  },
  'slice.delete': (state, { name }) => {
    const result = changes.getSlice(state, name);
    return { next: changes.deleteSlice(state, name), result };
  },
  'domain.create': (state, { input }, node) => {
    const next = changes.createDomain(state, input, node);
    return { next, result: next.domains.get(input.name)! };
  },
  'domain.update': (state, { name, input }, node) => {
    const next = changes.updateDomain(state, name, input, node);
    return { next, result: next.domains.get(name)! };
  },
  'domain.delete': (state, { name }) => {
    const next = changes.deleteDomain(state, name);
    return { next, result: state.domains.get(name)! };
  },
  'member.move': (state, { member, domain }, node) => ({ next: changes.moveMember(state, member, domain, node), result: null }),
  'port.reserve': (state, { input }, node) => {
    const next = changes.reservePort(state, input, node);
    const added = [...next.reservations.values()].find((r) => !state.reservations.has(reservationKey(r)))!;
    return { next, result: added };
  },
  'port.release': (state, { input }) => {
    const { next, released } = changes.releasePort(state, input);
    return { next, result: released };
  },
};

/** The next state after `change`, and what the change reports; throws (with numbers) when refused. */
export function planChange<K extends ChangeKind>(state: DesiredState, change: StateChange<K>, node: NodeCapacity): PlannedChange<K> {
  const planner: Planners[K] = planners[change.kind];
  return planner(state, change, node);
}
