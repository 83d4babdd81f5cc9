/**
 * nftables driver. sliced keeps two tables named after the daemon's tag:
 *
 * - `bridge <table>`: per-slice counters of every frame that enters the bridge from a
 *   slice's veth (sent) and leaves towards it (received): one map lookup per frame; and the
 *   source check: a slice's veth passes only IP from the slice's own addresses (and
 *   neighbour discovery from link-local ones), ARP, nothing else.
 * - `inet <table>`: counters for host-network slices (`socket cgroupv2` of the slice's group
 *   as the key of counter maps, one lookup per cgroup level in use, loopback counted apart), DNAT of reserved
 *   ports, NAT for egress, the forward filter that keeps slice traffic on the node
 *   unless the slice has egress, and each namespaced slice's conntrack limit (a chain per
 *   slice with `ct count`, reached by source address for new connections from the bridge).
 *
 * Changes are scripts run by `nft -f` as one transaction (all or nothing). Per-slice objects
 * are added and deleted by key, so a change never touches other slices' counters; `add
 * counter` keeps the value of a counter that exists already, which is how a restarted
 * daemon adopts the counts in the kernel.
 *
 * This module builds the per-slice lines and runs the scripts; the objects' names are in
 * nft-names.ts, the tables' fixed part in nft-skeleton.ts, reading them back in nft-read.ts.
 */
import { mustRun, runTool } from './run.js';
import { SlicedError } from '../../core/errors.js';
import { HOST_COLUMNS, conntrackChain, counterName, type TableConfig } from './nft-names.js';
import type { CounterReading } from './nft-read.js';

export { parseCounterName, type CounterColumn, type TableConfig } from './nft-names.js';
export { hostMaps, readConntrackLimits, readCounters, type CounterReading } from './nft-read.js';
export { skeletonLines } from './nft-skeleton.js';

export interface NamespacedCounters {
  slice: string;
  veth: string;
  /** The slice's own addresses: the only sources its veth passes, and its conntrack key. */
  v4: string;
  v6: string;
  /** Conntrack entries the slice's new connections may hold, or null for no limit. */
  conntrackMax: number | null;
}

export interface HostCounters {
  slice: string;
  /** The slice's unified-hierarchy group relative to /sys/fs/cgroup, as nft resolves it. */
  cgroupPath: string;
  /** Depth of that group in the cgroup2 hierarchy. */
  level: number;
}

export interface PortForward {
  family: 4 | 6;
  address: string;
  protocol: 'tcp' | 'udp';
  port: number;
  target: string;
}

/** Everything the tables hold for one set of slices. */
export interface NetRules {
  namespaced: NamespacedCounters[];
  host: HostCounters[];
  forwards: PortForward[];
  /** Slice IPv4 addresses whose traffic may leave the node (masqueraded). */
  egress4: string[];
}

function one(entries: string[]): string {
  return `{ ${entries.join(', ')} }`;
}

function forwardElement(f: PortForward, withTarget: boolean): string {
  return `${f.protocol} . ${f.address} . ${f.port}${withTarget ? ` : ${f.target}` : ''}`;
}

/**
 * Script lines that add `r` to tables that have the skeleton. `keepConntrack`: slices whose
 * conntrack chain already holds the right rule (see readConntrackLimits); it is left alone,
 * so the connections it counted stay counted (a new rule would start from zero).
 */
export function addLines(c: TableConfig, r: NetRules, keepConntrack: ReadonlySet<string> = new Set()): string[] {
  const b = `bridge ${c.table}`;
  const i = `inet ${c.table}`;
  const lines: string[] = [];
  for (const s of r.namespaced) {
    lines.push(`add counter ${b} ${counterName('tx', s.slice)}`, `add counter ${b} ${counterName('rx', s.slice)}`);
    lines.push(`add element ${b} sent { "${s.veth}" : "${counterName('tx', s.slice)}" }`);
    lines.push(`add element ${b} received { "${s.veth}" : "${counterName('rx', s.slice)}" }`);
    lines.push(`add element ${b} src4 { "${s.veth}" . ${s.v4} }`, `add element ${b} src6 { "${s.veth}" . ${s.v6} }`);
    if (s.conntrackMax !== null) {
      const chain = conntrackChain(s.slice);
      lines.push(`add counter ${i} ${counterName('ctdrop', s.slice)}`, `add chain ${i} ${chain}`);
      if (!keepConntrack.has(s.slice)) {
        lines.push(
          `flush chain ${i} ${chain}`,
          `add rule ${i} ${chain} ct count over ${s.conntrackMax} counter name "${counterName('ctdrop', s.slice)}" drop`,
        );
      }
      lines.push(`add element ${i} ctslice4 { ${s.v4} : jump ${chain} }`, `add element ${i} ctslice6 { ${s.v6} : jump ${chain} }`);
    }
  }
  for (const s of r.host) {
    lines.push(...levelMaps(c, s.level));
    for (const col of HOST_COLUMNS) {
      lines.push(
        `add counter ${i} ${counterName(col, s.slice)}`,
        `add element ${i} ${col}${s.level} { "${s.cgroupPath}" : "${counterName(col, s.slice)}" }`,
      );
    }
  }
  for (const f of r.forwards) lines.push(`add element ${i} fwd${f.family} ${one([forwardElement(f, true)])}`);
  if (r.egress4.length > 0) lines.push(`add element ${i} egress4 ${one(r.egress4)}`);
  return lines;
}

/**
 * Script lines that stop counting for `r` and remove its forwards (which must be in the
 * tables). The counters themselves stay: a deleted slice's counts stay in the kernel until
 * its account is removed (counterLines), so deleting never has to read them first. Host
 * slices' elements are not deleted one by one but swept (flushHostMapLines): once their
 * group is gone, they match nothing.
 */
export function deleteLines(c: TableConfig, r: NetRules): string[] {
  const b = `bridge ${c.table}`;
  const i = `inet ${c.table}`;
  const lines: string[] = [];
  for (const f of r.forwards) lines.push(`delete element ${i} fwd${f.family} ${one([forwardElement(f, false)])}`);
  if (r.egress4.length > 0) lines.push(`delete element ${i} egress4 ${one(r.egress4)}`);
  for (const s of r.namespaced) {
    lines.push(`delete element ${b} sent { "${s.veth}" }`, `delete element ${b} received { "${s.veth}" }`);
    lines.push(`delete element ${b} src4 { "${s.veth}" . ${s.v4} }`, `delete element ${b} src6 { "${s.veth}" . ${s.v6} }`);
    if (s.conntrackMax !== null) {
      // The chain goes (its rule refers to the drop counter, which stays with the account).
      lines.push(
        `delete element ${i} ctslice4 { ${s.v4} }`,
        `delete element ${i} ctslice6 { ${s.v6} }`,
        ...deleteConntrackChainLines(c, s.slice),
      );
    }
  }
  return lines;
}

/** Script lines that remove a slice's conntrack chain (no map element may refer to it). */
export function deleteConntrackChainLines(c: TableConfig, slice: string): string[] {
  const chain = `inet ${c.table} ${conntrackChain(slice)}`;
  return [`flush chain ${chain}`, `delete chain ${chain}`];
}

/** Script lines that delete these counters (from readCounters). */
export function deleteCounterLines(table: string, counters: readonly CounterReading[]): string[] {
  return counters.map((c) => `delete counter ${c.family} ${table} ${c.name}`);
}

/** Counter maps of one cgroup level, keyed by the group (nft resolves the path to its id). */
function levelMaps(c: TableConfig, level: number): string[] {
  return HOST_COLUMNS.map((col) => `add map inet ${c.table} ${col}${level} { type cgroupsv2 : counter; }`);
}

/** Script lines that empty these host-network maps (their counters stay). */
export function flushHostMapLines(c: TableConfig, maps: readonly string[]): string[] {
  return maps.map((name) => `flush map inet ${c.table} ${name}`);
}

/**
 * The rules that look sockets' groups up in the per-level maps: two lookups per hook and
 * level in use, so they are rewritten whenever the set of levels changes (cheap: no counters
 * live in rules).
 */
export function levelLines(c: TableConfig, levels: readonly number[]): string[] {
  const i = `inet ${c.table}`;
  const lines = [`flush chain ${i} count_out`, `flush chain ${i} count_in`];
  for (const level of [...levels].sort((a, b) => a - b)) {
    const key = `socket cgroupv2 level ${level}`;
    lines.push(
      ...levelMaps(c, level),
      // Routed to lo but DNATed away (a reserved address: the packet crosses the bridge to a
      // slice): sent, not loopback. Only lo's packets pay for the address-type lookup.
      `add rule ${i} count_out oifname != "lo" counter name ${key} map @tx${level}`,
      `add rule ${i} count_out oifname "lo" fib daddr type local counter name ${key} map @lotx${level}`,
      `add rule ${i} count_out oifname "lo" fib daddr type != local counter name ${key} map @tx${level}`,
      `add rule ${i} count_in iifname "lo" counter name ${key} map @lorx${level}`,
      `add rule ${i} count_in iifname != "lo" counter name ${key} map @rx${level}`,
    );
  }
  return lines;
}

export async function runScript(lines: readonly string[]): Promise<void> {
  if (lines.length > 0) await mustRun('nft', ['-f', '-'], `${lines.join('\n')}\n`);
}

/**
 * Remove objects, tolerating those that are already gone (a rollback after a half-applied
 * change): the whole script first, then line by line when it fails.
 */
export async function runDeletions(lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const whole = await runTool('nft', ['-f', '-'], `${lines.join('\n')}\n`);
  if (whole.code === 0) return;
  for (const line of lines) {
    const one = await runTool('nft', ['-f', '-'], `${line}\n`);
    if (one.code !== 0 && !/No such file or directory/.test(one.stderr)) {
      throw new SlicedError('EIO', `nft ${line} failed: ${one.stderr.trim()}`);
    }
  }
}

/**
 * Delete both tables, those that exist. Not `nft list table` to find out: printing a map keyed
 * by cgroupsv2 makes nft walk /sys/fs/cgroup once per element to name each group, which took
 * minutes for 1,000 host-network slices.
 */
export async function deleteTables(table: string): Promise<void> {
  for (const family of ['bridge', 'inet'] as const) {
    const result = await runTool('nft', ['delete', 'table', family, table]);
    if (result.code !== 0 && !/No such file or directory/.test(result.stderr)) {
      throw new SlicedError('EIO', `nft delete table ${family} ${table} failed: ${result.stderr.trim()}`);
    }
  }
}
