/**
 * Admission control: every level of the slice tree must be able to honour the reservations
 * it has promised. At the node level, the reservations of top-level slices and domains must
 * fit the node's capacity minus the system reserve; inside a domain, its members'
 * reservations must fit the domain's own reservation (the only amount the domain is itself
 * guaranteed). A limit may never be below the reservation.
 */
import type { CpuAllocation, DesiredState, SliceSpec } from './model.js';
import { formatCpu } from './units.js';
import { domainChain, MAX_DOMAIN_DEPTH } from './domains.js';
import { SlicedError } from './errors.js';
import { checkMinRates, checkRates, parseCidr, type NetPool } from './net.js';
import type { NodePids } from './task-limits.js';

export interface NodeCapacity {
  /** CPU of the node in millicores (1000 per online CPU). */
  cpuMillicores: number;
  /** Millicores kept back from reservations for the system itself. */
  systemReserveMillicores: number;
  /** Physical memory in bytes. */
  memoryBytes: number;
  /** Slice networking, when the daemon has it configured. */
  net?: NodeNet;
  /** The node's PID space and the slices' default task limit (src/core/task-limits.ts). */
  pids?: NodePids;
}

export interface NodeNet {
  pool: NetPool;
  /** The node's network capacity in bit/s: the ceiling of all slices' traffic together. */
  capacity: number;
}

/**
 * A node's capacity as it travels (JSON: the address pools as text), so that any node of a
 * cluster can check a change against another node's capacity.
 */
export interface CapacityRecord {
  cpuMillicores: number;
  systemReserveMillicores: number;
  memoryBytes: number;
  net?: { pool: { v4: string; v6: string }; capacity: number };
  pids?: NodePids;
}

export function capacityRecord(node: NodeCapacity): CapacityRecord {
  const { net, pids, ...rest } = node;
  return {
    ...rest,
    ...(net ? { net: { pool: { v4: net.pool.v4.text, v6: net.pool.v6.text }, capacity: net.capacity } } : {}),
    ...(pids ? { pids } : {}),
  };
}

/** The capacity a record holds; anything malformed is refused, naming `what`. */
export function capacityFromRecord(record: unknown, what: string): NodeCapacity {
  const r = record as Partial<CapacityRecord> | null;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;
  if (typeof r !== 'object' || r === null || !count(r.cpuMillicores) || !count(r.systemReserveMillicores) || !count(r.memoryBytes)) {
    throw new SlicedError('EINVAL', `${what}: not a node capacity (needs cpuMillicores, systemReserveMillicores and memoryBytes)`);
  }
  const node: NodeCapacity = {
    cpuMillicores: r.cpuMillicores,
    systemReserveMillicores: r.systemReserveMillicores,
    memoryBytes: r.memoryBytes,
  };
  if (r.net !== undefined) {
    if (typeof r.net?.pool?.v4 !== 'string' || typeof r.net.pool.v6 !== 'string' || !count(r.net.capacity)) {
      throw new SlicedError('EINVAL', `${what}: net needs pool.v4, pool.v6 and capacity`);
    }
    node.net = {
      pool: { v4: parseCidr(r.net.pool.v4, 4, `${what}: net.pool.v4`), v6: parseCidr(r.net.pool.v6, 6, `${what}: net.pool.v6`) },
      capacity: r.net.capacity,
    };
  }
  if (r.pids !== undefined) {
    const p = r.pids as Partial<NodePids>;
    if (!count(p.space) || !(p.sliceDefault === null || count(p.sliceDefault)) || typeof p.setting !== 'string') {
      throw new SlicedError('EINVAL', `${what}: pids needs space, sliceDefault and setting`);
    }
    node.pids = { space: p.space, sliceDefault: p.sliceDefault, setting: p.setting };
  }
  return node;
}

export const MIN_MEMORY_LIMIT = 4 * 1024 * 1024;

export type Member = { kind: 'slice' | 'domain'; name: string; cpu: CpuAllocation };

/** Children of a domain (or of the node when domain is null), slices and domains alike. */
export function membersOf(state: DesiredState, domain: string | null): Member[] {
  const members: Member[] = [];
  for (const d of [...state.domains.values()]) {
    if (d.parent === domain) members.push({ kind: 'domain', name: d.name, cpu: d.cpu });
  }
  for (const s of [...state.slices.values()]) {
    if (s.domain === domain) members.push({ kind: 'slice', name: s.name, cpu: s.cpu });
  }
  return members;
}

/** Check the whole state; throws the first violation as a sentence with the numbers. */
export function assertAdmissible(state: DesiredState, node: NodeCapacity): void {
  const networked: SliceSpec[] = [];
  for (const slice of [...state.slices.values()]) {
    checkAllocation(`slice ${slice.name}`, slice.cpu, slice.memory.limit, node);
    if (slice.net) networked.push(slice);
    if (slice.domain !== null && !state.domains.get(slice.domain)) {
      throw new SlicedError('ENOENT', `slice ${slice.name}: domain ${JSON.stringify(slice.domain)} does not exist`);
    }
  }
  for (const domain of [...state.domains.values()]) {
    checkAllocation(`domain ${domain.name}`, domain.cpu, domain.memory.limit, node);
    if (domain.parent !== null && !state.domains.get(domain.parent)) {
      throw new SlicedError('ENOENT', `domain ${domain.name}: parent domain ${JSON.stringify(domain.parent)} does not exist`);
    }
    assertNoCycle(state, domain.name);
  }
  if (networked.length > 0) {
    if (!node.net)
      throw new SlicedError('EINVAL', 'slice networking is not configured on this node (netPool4/netPool6 in the daemon settings)');
    for (const slice of networked) checkRates(slice.name, slice.net!, node.net.capacity);
    checkMinRates(networked, node.net.capacity);
  }

  const nodeBudget = node.cpuMillicores - node.systemReserveMillicores;
  checkLevel(
    membersOf(state, null),
    nodeBudget,
    `node capacity ${formatCpu(node.cpuMillicores)} - system reserve ${formatCpu(node.systemReserveMillicores)} = ${formatCpu(nodeBudget)}`,
    'node',
  );
  for (const domain of [...state.domains.values()]) {
    checkLevel(
      membersOf(state, domain.name),
      domain.cpu.reservation,
      `domain ${domain.name}'s own reservation of ${formatCpu(domain.cpu.reservation)}`,
      `domain ${domain.name}`,
    );
  }
}

function checkAllocation(who: string, cpu: CpuAllocation, memoryLimit: number | null, node: NodeCapacity): void {
  if (cpu.limit !== null && cpu.limit < cpu.reservation) {
    throw new SlicedError(
      'EINVAL',
      `${who}: cpu.limit ${formatCpu(cpu.limit)} is below cpu.reservation ${formatCpu(cpu.reservation)}; the limit must be at least ` +
        `the reservation`,
    );
  }
  if (cpu.limit !== null && cpu.limit > node.cpuMillicores) {
    throw new SlicedError(
      'EINVAL',
      `${who}: cpu.limit ${formatCpu(cpu.limit)} exceeds the node's capacity of ${formatCpu(node.cpuMillicores)}; use "none" for no limit`,
    );
  }
  if (cpu.limit !== null && cpu.limit === 0) {
    throw new SlicedError(
      'EINVAL',
      `${who}: cpu.limit 0m would stop the slice entirely; allowed is 1m up to ${formatCpu(node.cpuMillicores)}, or "none"`,
    );
  }
  if (memoryLimit !== null && memoryLimit < MIN_MEMORY_LIMIT) {
    throw new SlicedError(
      'EINVAL',
      `${who}: memory.limit ${memoryLimit} bytes is below the minimum of ${MIN_MEMORY_LIMIT} bytes (4M); use "none" for no limit`,
    );
  }
}

function checkLevel(members: Member[], budget: number, budgetText: string, level: string): void {
  const total = members.reduce((sum, m) => sum + m.cpu.reservation, 0);
  if (total <= budget) return;
  const parts = members
    .filter((m) => m.cpu.reservation > 0)
    .map((m) => `${m.kind} ${m.name} ${formatCpu(m.cpu.reservation)}`)
    .join(', ');
  throw new SlicedError(
    'ENOSPC',
    `over-commit at ${level}: reservations would total ${formatCpu(total)} (${parts}) but only ${budgetText} can be guaranteed`,
    { level, total, budget },
  );
}

function assertNoCycle(state: DesiredState, start: string): void {
  const path = domainChain(state, start);
  // A cycle need not pass through `start` (start may hang below it): the chain ends at a repeat.
  const seenAt = path.indexOf(path.at(-1)!);
  if (seenAt < path.length - 1) {
    throw new SlicedError('ELOOP', `domain cycle: ${path.slice(seenAt).join(' -> ')}; a domain cannot contain itself`);
  }
  if (path.length > MAX_DOMAIN_DEPTH) {
    throw new SlicedError('EINVAL', `domain ${start} would be nested ${path.length} deep; at most ${MAX_DOMAIN_DEPTH} levels are allowed`);
  }
}
