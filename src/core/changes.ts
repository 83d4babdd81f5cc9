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
  type ResolvedIoInput,
  type SliceSpec,
} from './model.js';
import { mergeIo } from './io.js';
import { formatMemory } from './units.js';
import { assertAdmissible, membersOf, type NodeCapacity } from './admission.js';
import { SlicedError } from './errors.js';

function clone(state: DesiredState): DesiredState {
  return { slices: new Map(state.slices), domains: new Map(state.domains) };
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
      `memory.high ${formatMemory(merged.high)} is above memory.limit ${formatMemory(merged.limit)}; the soft limit must be at most the limit`,
    );
  }
  return merged;
}

/** Allocation fields a create or update may carry. */
export interface AllocationInput {
  cpu?: CpuInput;
  memory?: MemoryInput;
  io?: ResolvedIoInput;
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
  domain?: string;
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
    domain: input.domain ?? null,
  });
  assertAdmissible(next, node);
  return next;
}

export function updateSlice(
  state: DesiredState,
  name: string,
  input: AllocationInput,
  node: NodeCapacity,
): DesiredState {
  const current = getSlice(state, name);
  const next = clone(state);
  next.slices.set(name, { ...current, cpu: mergeCpu(current.cpu, input.cpu), memory: mergeMemory(current.memory, input.memory), io: mergeIo(current.io, input.io) });
  assertAdmissible(next, node);
  return next;
}

export function deleteSlice(state: DesiredState, name: string): DesiredState {
  getSlice(state, name);
  const next = clone(state);
  next.slices.delete(name);
  return next;
}

export interface NewDomain {
  name: string;
  cpu?: CpuInput;
  memory?: MemoryInput;
  io?: ResolvedIoInput;
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
    parent: input.parent ?? null,
  });
  assertAdmissible(next, node);
  return next;
}

export function updateDomain(
  state: DesiredState,
  name: string,
  input: AllocationInput,
  node: NodeCapacity,
): DesiredState {
  const current = getDomain(state, name);
  const next = clone(state);
  next.domains.set(name, { ...current, cpu: mergeCpu(current.cpu, input.cpu), memory: mergeMemory(current.memory, input.memory), io: mergeIo(current.io, input.io) });
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
export function domainPath(state: DesiredState, domain: string | null): string[] {
  const path: string[] = [];
  let current = domain;
  while (current !== null) {
    path.unshift(current);
    current = state.domains.get(current)?.parent ?? null;
  }
  return path;
}
