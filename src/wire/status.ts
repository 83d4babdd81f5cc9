/**
 * The status document (GET /v1/status, on the admin socket and each slice's own) and its text
 * form, a systemd-cgtop-like table. The table lives here, beside the document, because both
 * slicectl status and sliced --demo draw it: the daemon never imports the CLI.
 */
import { formatCpu, formatMemory, formatSizeApprox } from '../core/units.js';
import { renderTable } from '../core/table.js';
import type { DomainView, SliceView, StateView } from './slices.js';

const pct = (millicores: number, capacity: number): string => `${((millicores / capacity) * 100).toFixed(1)}%`;

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
  return (
    `${header}${state}${pidsLine(status.node.pids)}\n(CPU columns in % of the node; READ and WRITTEN are block I/O since the group was ` +
    `made; PIDS counts tasks)\n\n${table}`
  );
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
