/** slicectl's human output of slices and domains (the status table is in src/wire/status.ts, shared with sliced --demo). */
import { formatCpu, formatMemory, formatRate } from '../core/units.js';
import { describeCaps } from '../core/io.js';
import type { IoDeviceLimit, MemoryAllocation } from '../core/model.js';
import { describeReservation, formatRate as formatNetRate } from '../core/net.js';
import { renderKeyValues, renderTable } from '../core/table.js';
import type { DomainView, PidsView, PlacementView, SliceView } from '../wire/slices.js';

const orNone = (bytes: number | null): string => (bytes === null ? 'none' : formatMemory(bytes));
const capsText = (caps: readonly IoDeviceLimit[]): string => caps.map((c) => describeCaps(c, formatRate)).join('; ') || 'none';

function memoryAndIoPairs(memory: MemoryAllocation, io: SliceView['io']): Array<[string, string]> {
  return [
    ['Memory limit', orNone(memory.limit)],
    ['Memory high', orNone(memory.high)],
    ['Swap limit', orNone(memory.swap)],
    ['I/O weight', io.weightNoEffect ? [String(io.weight), ...io.weightNoEffect].join('; ') : String(io.weight)],
    ['I/O caps', capsText(io.max)],
    ['Effective caps', capsText(io.effectiveMax)],
  ];
}

function pidsLimitText(pids: PidsView): string {
  const value = pids.effectiveMax === null ? 'none' : `${pids.effectiveMax}${pids.max === 'default' ? ' (default)' : ''}`;
  return pids.unavailable ? `${value}, not enforced: ${pids.unavailable}` : value;
}

function livePidsText(pids: NonNullable<SliceView['live']>['pids']): string {
  if (!pids) return '-';
  const peak = pids.peak !== null ? `, peak ${pids.peak}` : '';
  return `${pids.current} of ${pids.max ?? 'no limit'}${peak}, ${pids.refused} fork${pids.refused === 1 ? '' : 's'} refused`;
}

function liveMemoryAndIoPairs(live: NonNullable<SliceView['live']>): Array<[string, string]> {
  const pressure = (p: { some: number; full: number } | null): string => (p ? `some ${p.some}%, full ${p.full}%` : '-');
  return [
    ['Memory', formatMemory(live.memoryBytes)],
    ['OOM kills', live.oomKills === null ? '-' : String(live.oomKills)],
    ['I/O read', live.io ? `${formatMemory(live.io.readBytes)} in ${live.io.readOps} ops` : '-'],
    ['I/O written', live.io ? `${formatMemory(live.io.writeBytes)} in ${live.io.writeOps} ops` : '-'],
    ['Memory pressure', pressure(live.pressure.memory)],
    ['I/O pressure', pressure(live.pressure.io)],
    ['Tasks', livePidsText(live.pids)],
  ];
}

export function sliceDetails(slice: SliceView): string {
  const pairs: Array<[string, string]> = [
    ['Slice', slice.name],
    ['User', `${slice.user}${slice.uid !== null ? ` (uid ${slice.uid})` : ''}${slice.userCreated ? ', created by sliced' : ''}`],
    ['Domain', slice.domain ?? '-'],
    ['CPU reservation', formatCpu(slice.cpu.reservation)],
    ['CPU limit', slice.cpu.limit === null ? 'none' : formatCpu(slice.cpu.limit)],
    ['Effective limit', slice.cpu.effectiveLimit === null ? 'none' : formatCpu(slice.cpu.effectiveLimit)],
    ['CPU shares', String(slice.cpu.shares)],
    ...memoryAndIoPairs(slice.memory, slice.io),
    ['Pids limit', pidsLimitText(slice.pids)],
    ['Cgroup', slice.cgroup],
    [
      'Network',
      slice.net ? `${slice.net.addresses?.v4 ?? '?'} ${slice.net.addresses?.v6 ?? '?'} (namespace ${slice.net.netns ?? '?'})` : 'host',
    ],
  ];
  if (slice.net) {
    pairs.push(
      ['Egress', slice.net.egress ? 'yes (NAT through the host)' : 'no'],
      ['Net min rate', formatNetRate(slice.net.minRate)],
      ['Net max rate', formatNetRate(slice.net.maxRate)],
      ['Tun device', slice.net.tun ? 'tun0' : 'no'],
      ['Reservations', slice.net.reservations.map(describeReservation).join(', ') || '-'],
    );
  }
  if (slice.cluster) pairs.push(...placementPairs(slice.cluster));
  if (slice.live) {
    pairs.push(
      ['Processes', String(slice.live.procs)],
      ['CPU entitlement', formatCpu(slice.live.entitlement)],
      ['CPU usage', formatCpu(slice.live.usage)],
      ['CPU demand', formatCpu(slice.live.demand)],
      ['CPU time', `${slice.live.cpuSeconds.toFixed(2)} s`],
      ['Throttled', `${slice.live.throttledPeriods} periods, ${slice.live.throttledSeconds.toFixed(2)} s`],
      ...liveMemoryAndIoPairs(slice.live),
    );
  }
  return renderKeyValues(pairs);
}

/** A slice or domain of the cluster without a sliver on the node asked: where it is. */
export function placementDetails(name: string, cluster: PlacementView): string {
  return renderKeyValues([['Name', name], ['On this node', 'no sliver'], ...placementPairs(cluster)]);
}

function placementPairs(cluster: PlacementView): Array<[string, string]> {
  return [
    ['Placement', cluster.placement],
    ['Created', `${cluster.createdAt} on ${cluster.createdOn}`],
    ...cluster.slivers.map((s): [string, string] => [`Sliver ${s.node}`, s.error !== undefined ? `${s.state}: ${s.error}` : s.state]),
  ];
}

export function domainDetails(domain: DomainView): string {
  const pairs: Array<[string, string]> = [
    ['Domain', domain.name],
    ['Parent', domain.parent ?? '-'],
    ['CPU reservation', formatCpu(domain.cpu.reservation)],
    ['CPU limit', domain.cpu.limit === null ? 'none' : formatCpu(domain.cpu.limit)],
    ['CPU shares', String(domain.cpu.shares)],
    ...memoryAndIoPairs(domain.memory, domain.io),
    ['Pids limit', pidsLimitText(domain.pids)],
    ['Slices', domain.members.slices.join(', ') || '-'],
    ['Domains', domain.members.domains.join(', ') || '-'],
    ['Cgroup', domain.cgroup],
  ];
  if (domain.cluster) pairs.push(...placementPairs(domain.cluster));
  if (domain.live) {
    pairs.push(
      ['Processes', String(domain.live.procs)],
      ['CPU entitlement', formatCpu(domain.live.entitlement)],
      ['CPU usage', formatCpu(domain.live.usage)],
      ...liveMemoryAndIoPairs(domain.live),
    );
  }
  return renderKeyValues(pairs);
}

export function sliceListTable(slices: SliceView[]): string {
  return renderTable(
    ['SLICE', 'USER', 'DOMAIN', 'RESERVED', 'LIMIT', 'SHARES', 'MEMORY'],
    slices.map((s) => [
      s.name,
      s.user,
      s.domain ?? '-',
      formatCpu(s.cpu.reservation),
      s.cpu.limit === null ? '-' : formatCpu(s.cpu.limit),
      String(s.cpu.shares),
      s.memory.limit === null ? '-' : formatMemory(s.memory.limit),
    ]),
    new Set([3, 4, 5, 6]),
  );
}

export function domainListTable(domains: DomainView[]): string {
  return renderTable(
    ['DOMAIN', 'PARENT', 'RESERVED', 'LIMIT', 'SHARES', 'MEMORY', 'MEMBERS'],
    domains.map((d) => [
      d.name,
      d.parent ?? '-',
      formatCpu(d.cpu.reservation),
      d.cpu.limit === null ? '-' : formatCpu(d.cpu.limit),
      String(d.cpu.shares),
      d.memory.limit === null ? '-' : formatMemory(d.memory.limit),
      [...d.members.domains, ...d.members.slices].join(',') || '-',
    ]),
    new Set([2, 3, 4, 5]),
  );
}
