/** Plain-text tables and key/value blocks for slicectl's human output. */
import { formatCpu, formatMemory, formatRate, formatSizeApprox } from '../core/units.js';
import { describeCaps } from '../core/io.js';
import type { IoDeviceLimit, MemoryAllocation } from '../core/model.js';
import { describeReservation, formatRate as formatNetRate } from '../core/net.js';
import type { DomainView, PidsView, SliceView, StateView } from '../daemon/views.js';

export function renderTable(headers: string[], rows: string[][], rightAligned: ReadonlySet<number> = new Set()): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function renderKeyValues(pairs: Array<[string, string]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v}`).join('\n');
}

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

const pct = (millicores: number, capacity: number): string => `${((millicores / capacity) * 100).toFixed(1)}%`;

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
  if (slice.live) {
    pairs.push(
      ['Processes', String(slice.live.procs)],
      ['CPU entitlement', formatCpu(slice.live.entitlement)],
      ['CPU usage', formatCpu(slice.live.usage)],
      ['CPU demand', formatCpu(slice.live.demand)],
      ['Throttled', `${slice.live.throttledPeriods} periods, ${slice.live.throttledSeconds.toFixed(2)} s`],
      ...liveMemoryAndIoPairs(slice.live),
    );
  }
  return renderKeyValues(pairs);
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

export interface StatusDocument {
  node: {
    /** reserved is null on a slice's own socket: other slices' reservations are not shown there. */
    cpu: { capacity: number; systemReserve: number; reserved: number | null };
    backend: string;
    cpuControl: string;
    control: { sliceCapacity: number; systemUsage: number } | null;
    /** Absent on a slice's own socket. */
    pids?: {
      space: number | null;
      inUse: number | null;
      sliceDefault: number | null;
      defaultSetting: string | null;
      enforced: boolean;
      reason?: string;
    };
    /** Absent on a slice's own socket and from daemons older than this field. */
    state?: StateView | null;
  };
  slices: SliceView[];
  domains: DomainView[];
}

/** A systemd-cgtop-like table: one row per domain and slice, members indented under domains. */
export function statusTable(status: StatusDocument): string {
  const capacity = status.node.cpu.capacity;
  const reserved = status.node.cpu.reserved;
  const header =
    reserved === null
      ? // A slice's own view: its reservation, never a node total it cannot see.
        `node: ${formatCpu(capacity)} CPU, system reserve ${formatCpu(status.node.cpu.systemReserve)}, ` +
        `backend cgroup ${status.node.backend}, control ${status.node.cpuControl}; ` +
        `${status.slices.map((s) => `slice ${s.name} reserves ${formatCpu(s.cpu.reservation)}`).join(', ')} (other slices are not shown)`
      : `node: ${formatCpu(capacity)} CPU, ${formatCpu(reserved)} reserved, ` +
        `system reserve ${formatCpu(status.node.cpu.systemReserve)}, system use ${formatCpu(status.node.control?.systemUsage ?? 0)}, ` +
        `backend cgroup ${status.node.backend}, control ${status.node.cpuControl}`;
  const state = status.node.state ? `\n${stateLine(status.node.state)}` : '';
  const rows: string[][] = [];
  const byParent = new Map<string | null, Array<SliceView | DomainView>>();
  for (const d of status.domains) byParent.set(d.parent, [...(byParent.get(d.parent) ?? []), d]);
  for (const s of status.slices) byParent.set(s.domain, [...(byParent.get(s.domain) ?? []), s]);
  const visit = (parent: string | null, depth: number): void => {
    for (const item of byParent.get(parent) ?? []) {
      const isDomain = 'members' in item;
      const live = item.live;
      rows.push([
        `${'  '.repeat(depth)}${item.name}${isDomain ? '/' : ''}`,
        formatCpu(item.cpu.reservation),
        item.cpu.limit === null ? '-' : formatCpu(item.cpu.limit),
        String(item.cpu.shares),
        live ? pct(live.entitlement, capacity) : '-',
        live ? pct(live.usage, capacity) : '-',
        live && !isDomain ? pct(live.demand, capacity) : '-',
        live ? formatMemory(live.memoryBytes) : '-',
        item.memory.limit === null ? '-' : formatMemory(item.memory.limit),
        live?.oomKills != null ? String(live.oomKills) : '-',
        String(item.io.weight),
        item.io.effectiveMax.length > 0 ? 'yes' : '-',
        live?.io ? formatMemory(live.io.readBytes) : '-',
        live?.io ? formatMemory(live.io.writeBytes) : '-',
        live ? String(live.procs) : '-',
        live?.pids ? String(live.pids.current) : '-',
        item.pids.effectiveMax === null || item.pids.unavailable ? '-' : String(item.pids.effectiveMax),
      ]);
      if (isDomain) visit(item.name, depth + 1);
    }
  };
  visit(null, 0);
  // A slice's own view lists no domains: a member of one is shown at the top.
  const shown = new Set(status.domains.map((d) => d.name));
  for (const parent of byParent.keys()) if (parent !== null && !shown.has(parent)) visit(parent, 0);
  const table = renderTable(
    [
      'SLICE',
      'RESERVED',
      'LIMIT',
      'SHARES',
      'ENTITLED',
      'CPU',
      'DEMAND',
      'MEMORY',
      'MEM-MAX',
      'OOM',
      'IO-W',
      'IO-CAP',
      'READ',
      'WRITTEN',
      'PROCS',
      'PIDS',
      'PIDS-MAX',
    ],
    rows,
    new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16]),
  );
  return `${header}${state}${pidsLine(status.node.pids)}\n(CPU columns in % of the node; READ and WRITTEN are block I/O since the group was made; PIDS counts tasks)\n\n${table}`;
}

/** The node's PIDs in use and the slices' default limit, or why limits are not enforced. */
function pidsLine(pids: StatusDocument['node']['pids']): string {
  if (!pids) return '';
  if (!pids.enforced) return `\npids: no task limits are enforced: ${pids.reason ?? 'no pids controller'}`;
  const used = pids.inUse !== null && pids.space !== null ? `${pids.inUse} of ${pids.space} in use` : 'in use unknown';
  const fallback = pids.sliceDefault === null ? 'none' : `${pids.sliceDefault} (${pids.defaultSetting})`;
  return `\npids: ${used}, slice default ${fallback}`;
}

/** "state: DIR, 1.2G of 20G free" and, while the state cannot be stored, why. */
export function stateLine(state: StateView): string {
  const space =
    state.freeBytes !== null && state.totalBytes !== null
      ? `${formatSizeApprox(state.freeBytes)} of ${formatSizeApprox(state.totalBytes)} free`
      : 'free space unknown';
  const writable = state.writable
    ? ''
    : `; NOT WRITABLE since ${state.since ?? '?'}, changes are refused: ${state.error ?? 'unknown error'}`;
  return `state: ${state.dir}, ${space}${writable}`;
}
