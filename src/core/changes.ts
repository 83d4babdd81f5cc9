/**
 * Changes to the desired state as pure functions: each takes the current state and returns
 * a new one, or throws without having touched anything. The whole resulting state is
 * checked by admission control, so a change is either entirely valid or entirely refused.
 */
import {
  DEFAULT_CPU,
  DEFAULT_IO,
  DEFAULT_MEMORY,
  type CpuAllocation,
  type CpuInput,
  type DesiredState,
  type DomainSpec,
  type MemoryAllocation,
  type MemoryInput,
  type NetInput,
  type PidsInput,
  type ResolvedIoInput,
  type SliceSpec,
} from './model.js';
import { mergeIo } from './io.js';
import { DEFAULT_DOMAIN_PIDS, DEFAULT_SLICE_PIDS, mergePids } from './task-limits.js';
import { formatMemory } from './units.js';
import { assertAdmissible, membersOf, type NodeCapacity, type NodeNet } from './admission.js';
import { SlicedError } from './errors.js';
import {
  allocateIndex,
  checkReservationAddress,
  describeReservation,
  canonicalAddress,
  indexOf,
  parseAddress,
  parsePort,
  parseProtocol,
  reservationKey,
  type NetSpec,
  type Reservation,
} from './net.js';

function clone(state: DesiredState): DesiredState {
  return { slices: new Map(state.slices), domains: new Map(state.domains), reservations: new Map(state.reservations) };
}

export function mergeCpu(current: CpuAllocation, input: CpuInput | undefined): CpuAllocation {
  if (!input) return current;
  return {
    reservation: input.reservation ?? current.reservation,
    limit: input.limit === undefined ? current.limit : input.limit,
    shares: input.shares ?? current.shares,
  };
}

export function mergeMemory(current: MemoryAllocation, input: MemoryInput | undefined): MemoryAllocation {
  if (!input) return current;
  const pick = (key: keyof MemoryAllocation): number | null => (input[key] === undefined ? current[key] : input[key]);
  const merged = { limit: pick('limit'), high: pick('high'), swap: pick('swap') };
  if (merged.high !== null && merged.limit !== null && merged.high > merged.limit) {
    throw new SlicedError(
      'EINVAL',
      `memory.high ${formatMemory(merged.high)} is above memory.limit ${formatMemory(merged.limit)}; the soft limit must be at most ` +
        `the limit`,
    );
  }
  return merged;
}

/** Allocation fields a create or update may carry. */
export interface AllocationInput {
  cpu?: CpuInput;
  memory?: MemoryInput;
  io?: ResolvedIoInput;
  pids?: PidsInput;
}

function nodeNet(node: NodeCapacity): NodeNet {
  if (!node.net)
    throw new SlicedError('EINVAL', 'slice networking is not configured on this node (netPool4/netPool6 in the daemon settings)');
  return node.net;
}

/** Pool positions in use: slices' own addresses and reserved service addresses. */
export function takenIndexes(state: DesiredState, net: NodeNet): Set<number> {
  const taken = new Set<number>();
  for (const slice of state.slices.values()) if (slice.net) taken.add(slice.net.index);
  for (const r of state.reservations.values()) {
    const parsed = parseAddress(r.address);
    const index = parsed ? indexOf(net.pool, parsed.family, parsed.value) : null;
    if (index !== null) taken.add(index);
  }
  return taken;
}

/** The slice's network after `input`: undefined keeps it, null removes it, options ({} for defaults) add or change it. */
export function mergeNet(state: DesiredState, current: NetSpec | null, input: NetInput | undefined, node: NodeCapacity): NetSpec | null {
  if (input === undefined) return current;
  if (input === null) return null;
  const base: NetSpec = current ?? {
    index: allocateIndex(nodeNet(node).pool, takenIndexes(state, nodeNet(node))),
    egress: false,
    minRate: null,
    maxRate: null,
    tun: false,
  };
  return {
    ...base,
    egress: input.egress ?? base.egress,
    minRate: input.minRate === undefined ? base.minRate : input.minRate,
    maxRate: input.maxRate === undefined ? base.maxRate : input.maxRate,
    tun: input.tun ?? base.tun,
  };
}

export function reservationsOf(state: DesiredState, slice: string): Reservation[] {
  return [...state.reservations.values()].filter((r) => r.slice === slice);
}

export function assertNameFree(state: DesiredState, name: string): void {
  if (state.slices.get(name)) throw new SlicedError('EEXIST', `slice ${name} already exists`);
  if (state.domains.get(name)) {
    throw new SlicedError('EEXIST', `name ${name} is already used by a domain; slices and domains share one namespace`);
  }
}

export function getSlice(state: DesiredState, name: string): SliceSpec {
  const slice = state.slices.get(name);
  if (!slice) throw new SlicedError('ENOENT', `slice ${JSON.stringify(name)} does not exist`);
  return slice;
}

export function getDomain(state: DesiredState, name: string): DomainSpec {
  const domain = state.domains.get(name);
  if (!domain) throw new SlicedError('ENOENT', `domain ${JSON.stringify(name)} does not exist`);
  return domain;
}

export interface NewSlice {
  name: string;
  user: string;
  userCreated: boolean;
  cpu?: CpuInput;
  memory?: MemoryInput;
  io?: ResolvedIoInput;
  pids?: PidsInput;
  domain?: string;
  net?: NetInput;
}

export function createSlice(state: DesiredState, input: NewSlice, node: NodeCapacity): DesiredState {
  assertNameFree(state, input.name);
  if (input.domain !== undefined) getDomain(state, input.domain);
  const next = clone(state);
  next.slices.set(input.name, {
    name: input.name,
    user: input.user,
    userCreated: input.userCreated,
    cpu: mergeCpu(DEFAULT_CPU, input.cpu),
    memory: mergeMemory(DEFAULT_MEMORY, input.memory),
    io: mergeIo(DEFAULT_IO, input.io),
    pids: mergePids(DEFAULT_SLICE_PIDS, input.pids, node, `slice ${input.name}`),
    domain: input.domain ?? null,
    net: mergeNet(state, null, input.net, node),
  });
  assertAdmissible(next, node);
  return next;
}

export function updateSlice(
  state: DesiredState,
  name: string,
  input: AllocationInput & { net?: NetInput },
  node: NodeCapacity,
): DesiredState {
  const current = getSlice(state, name);
  const net = mergeNet(state, current.net, input.net, node);
  const held = reservationsOf(state, name);
  if (net === null && held.length > 0) {
    throw new SlicedError(
      'EBUSY',
      `slice ${name} holds port reservations (${held.map(describeReservation).join(', ')}); release them before turning its network off`,
    );
  }
  const next = clone(state);
  next.slices.set(name, {
    ...current,
    cpu: mergeCpu(current.cpu, input.cpu),
    memory: mergeMemory(current.memory, input.memory),
    io: mergeIo(current.io, input.io),
    pids: mergePids(current.pids, input.pids, node, `slice ${name}`),
    net,
  });
  assertAdmissible(next, node);
  return next;
}

/** Delete a slice; its port reservations go with it. */
export function deleteSlice(state: DesiredState, name: string): DesiredState {
  getSlice(state, name);
  const next = clone(state);
  next.slices.delete(name);
  for (const r of reservationsOf(state, name)) next.reservations.delete(reservationKey(r));
  return next;
}

export interface ReservationInput {
  address: unknown;
  protocol: unknown;
  port: unknown;
  slice: string;
}

/**
 * Reserve (address, protocol, port) for a slice: the address must be a free service address
 * of the pool, and the triple must not be held already (the holder is named).
 */
export function reservePort(state: DesiredState, input: ReservationInput, node: NodeCapacity): DesiredState {
  const net = nodeNet(node);
  const protocol = parseProtocol(input.protocol);
  const port = parsePort(input.port);
  const slice = getSlice(state, input.slice);
  if (!slice.net)
    throw new SlicedError(
      'EINVAL',
      `slice ${slice.name} has no network of its own; give it one (slice set ${slice.name} --net on) before reserving ports`,
    );
  const owners = new Map<number, string>();
  for (const s of state.slices.values()) if (s.net) owners.set(s.net.index, s.name);
  const address = checkReservationAddress(net.pool, input.address, owners).text;
  const reservation: Reservation = { address, protocol, port, slice: slice.name };
  const key = reservationKey(reservation);
  const holder = state.reservations.get(key);
  if (holder) {
    throw new SlicedError('EEXIST', `${describeReservation(reservation)} is already reserved by slice ${holder.slice}`);
  }
  const next = clone(state);
  next.reservations.set(key, reservation);
  return next;
}

export function releasePort(state: DesiredState, input: Omit<ReservationInput, 'slice'>): { next: DesiredState; released: Reservation } {
  const protocol = parseProtocol(input.protocol);
  const port = parsePort(input.port);
  const wanted = { address: canonicalAddress(input.address).text, protocol, port };
  const released = state.reservations.get(reservationKey(wanted));
  if (!released) throw new SlicedError('ENOENT', `${describeReservation(wanted)} is not reserved`);
  const next = clone(state);
  next.reservations.delete(reservationKey(wanted));
  return { next, released };
}

export interface NewDomain {
  name: string;
  cpu?: CpuInput;
  memory?: MemoryInput;
  io?: ResolvedIoInput;
  pids?: PidsInput;
  parent?: string;
}

export function createDomain(state: DesiredState, input: NewDomain, node: NodeCapacity): DesiredState {
  assertNameFree(state, input.name);
  if (input.parent !== undefined) getDomain(state, input.parent);
  const next = clone(state);
  next.domains.set(input.name, {
    name: input.name,
    cpu: mergeCpu(DEFAULT_CPU, input.cpu),
    memory: mergeMemory(DEFAULT_MEMORY, input.memory),
    io: mergeIo(DEFAULT_IO, input.io),
    pids: mergePids(DEFAULT_DOMAIN_PIDS, input.pids, node, `domain ${input.name}`),
    parent: input.parent ?? null,
  });
  assertAdmissible(next, node);
  return next;
}

export function updateDomain(state: DesiredState, name: string, input: AllocationInput, node: NodeCapacity): DesiredState {
  const current = getDomain(state, name);
  const next = clone(state);
  next.domains.set(name, {
    ...current,
    cpu: mergeCpu(current.cpu, input.cpu),
    memory: mergeMemory(current.memory, input.memory),
    io: mergeIo(current.io, input.io),
    pids: mergePids(current.pids, input.pids, node, `domain ${name}`),
  });
  assertAdmissible(next, node);
  return next;
}

export function deleteDomain(state: DesiredState, name: string): DesiredState {
  getDomain(state, name);
  const members = membersOf(state, name);
  if (members.length > 0) {
    throw new SlicedError(
      'ENOTEMPTY',
      `domain ${name} still has members (${members.map((m) => `${m.kind} ${m.name}`).join(', ')}); remove them first`,
    );
  }
  const next = clone(state);
  next.domains.delete(name);
  return next;
}

/**
 * Move a slice or a domain into `domain` (or to the node level when null). The member's
 * reservation must fit its new level; a domain may not end up inside itself.
 */
export function moveMember(state: DesiredState, member: string, domain: string | null, node: NodeCapacity): DesiredState {
  if (domain !== null) getDomain(state, domain);
  const next = clone(state);
  const slice = state.slices.get(member);
  const dom = state.domains.get(member);
  if (slice) {
    if (slice.domain === domain) throw alreadyThere('slice', member, domain);
    next.slices.set(member, { ...slice, domain });
  } else if (dom) {
    if (dom.parent === domain) throw alreadyThere('domain', member, domain);
    next.domains.set(member, { ...dom, parent: domain });
  } else {
    throw new SlicedError('ENOENT', `no slice or domain is named ${JSON.stringify(member)}`);
  }
  assertAdmissible(next, node);
  return next;
}

function alreadyThere(kind: string, member: string, domain: string | null): SlicedError {
  const where = domain === null ? 'at the node level' : `in domain ${domain}`;
  return new SlicedError('EEXIST', `${kind} ${member} is already ${where}`);
}

/** Domain chain from the node level down to (and including) `domain`. */
