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
 */
import { mustRun, runTool } from './run.js';
import { SlicedError } from '../../core/errors.js';

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

export interface TableConfig {
  table: string;
  bridge: string;
  /** Prefix of the slices' veths (host side). */
  vethPrefix: string;
  pool4: string;
  pool6: string;
}

export interface CounterReading {
  family: 'bridge' | 'inet';
  name: string;
  packets: number;
  bytes: number;
  /** Object handle: a counter made anew gets a new one. */
  handle: number;
}

const counterName = (column: CounterColumn, slice: string): string => `${column}_${slice}`;
const conntrackChain = (slice: string): string => `ct_${slice}`;
const CONNTRACK_CHAIN = /^ct_(.+)$/;

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

/**
 * The conntrack chains in the inet table: slice → the limit of its rule, or null when the
 * chain holds anything but the one rule addLines writes (it is then rewritten).
 */
export async function readConntrackLimits(table: string): Promise<Map<string, number | null>> {
  const found = new Map<string, number | null>();
  // -t: without set and map elements (printing cgroupsv2 keys walks /sys/fs/cgroup).
  const result = await runTool('nft', ['-j', '-t', 'list', 'table', 'inet', table]);
  if (result.code !== 0) return found; // no table yet
  type Item = { chain?: { name: string }; rule?: { chain: string; expr: unknown[] } };
  const items = (JSON.parse(result.stdout) as { nftables: Item[] }).nftables;
  const rules = new Map<string, unknown[][]>();
  for (const item of items) {
    const slice = CONNTRACK_CHAIN.exec(item.chain?.name ?? item.rule?.chain ?? '')?.[1];
    if (slice === undefined) continue;
    if (item.chain) rules.set(slice, rules.get(slice) ?? []);
    if (item.rule) rules.set(slice, [...(rules.get(slice) ?? []), item.rule.expr]);
  }
  for (const [slice, list] of rules) {
    const [expr] = list;
    const count = (expr?.[0] as { 'ct count'?: { val: number; inv?: boolean } } | undefined)?.['ct count'];
    const exact =
      list.length === 1 &&
      expr!.length === 3 &&
      count?.inv === true &&
      JSON.stringify(expr!.slice(1)) === JSON.stringify([{ counter: counterName('ctdrop', slice) }, { drop: null }]);
    found.set(slice, exact ? count.val : null);
  }
  return found;
}

/** Script lines that delete these counters (from readCounters). */
export function deleteCounterLines(table: string, counters: readonly CounterReading[]): string[] {
  return counters.map((c) => `delete counter ${c.family} ${table} ${c.name}`);
}

const HOST_COLUMNS = ['tx', 'rx', 'lotx', 'lorx'] as const;
type HostColumn = (typeof HOST_COLUMNS)[number];
/** ctdrop: new connections of a namespaced slice dropped by its conntrack limit. */
export type CounterColumn = HostColumn | 'ctdrop';
/** Counters are named <column>_<slice>; host maps <column><cgroup level>. */
const COUNTER_NAME = new RegExp(`^(${[...HOST_COLUMNS, 'ctdrop'].join('|')})_(.+)$`);
const HOST_MAP_NAME = new RegExp(`^(${HOST_COLUMNS.join('|')})\\d+$`);

/** The slice a counter belongs to and its column, or null for a name that is not ours. */
export function parseCounterName(name: string): { column: CounterColumn; slice: string } | null {
  const match = COUNTER_NAME.exec(name);
  return match ? { column: match[1] as CounterColumn, slice: match[2]! } : null;
}

/** Counter maps of one cgroup level, keyed by the group (nft resolves the path to its id). */
function levelMaps(c: TableConfig, level: number): string[] {
  return HOST_COLUMNS.map((col) => `add map inet ${c.table} ${col}${level} { type cgroupsv2 : counter; }`);
}

/** Names of the host-network counter maps (one per column and cgroup level) in the inet table. */
export async function hostMaps(table: string): Promise<string[]> {
  // -t: without elements (printing cgroupsv2 keys walks /sys/fs/cgroup once per element).
  const result = await runTool('nft', ['-t', '-j', 'list', 'maps', 'inet']);
  if (result.code !== 0) return [];
  const doc = JSON.parse(result.stdout) as { nftables: Array<{ map?: { name: string; table: string } }> };
  return doc.nftables.flatMap((item) => (item.map && item.map.table === table && HOST_MAP_NAME.test(item.map.name) ? [item.map.name] : []));
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

/**
 * The tables' fixed part, idempotent: created when missing, fixed chains rewritten. Maps and
 * sets are emptied when `reset` (at start, before every element is added again).
 */
export function skeletonLines(c: TableConfig, reset: boolean): string[] {
  const b = `bridge ${c.table}`;
  const i = `inet ${c.table}`;
  const lines = [
    `add table ${b}`,
    `add table ${i}`,
    `add map ${b} sent { type ifname : counter; }`,
    `add map ${b} received { type ifname : counter; }`,
    `add chain ${b} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `add chain ${b} postrouting { type filter hook postrouting priority 300; policy accept; }`,
    `flush chain ${b} prerouting`,
    `flush chain ${b} postrouting`,
    `add rule ${b} prerouting counter name iifname map @sent`,
    `add rule ${b} postrouting counter name oifname map @received`,
    // Source check (counted as sent above, then dropped). Without it a slice could send
    // IPv6 from any address (IP_FREEBIND needs no privilege) and so escape its conntrack
    // limit, or pass for another slice. Link-local and unspecified sources only for
    // neighbour discovery and MLD, which conntrack does not track.
    `add set ${b} src4 { type ifname . ipv4_addr; }`,
    `add set ${b} src6 { type ifname . ipv6_addr; }`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type != { ip, ip6, arp } drop`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip iifname . ip saddr != @src4 drop`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip6 iifname . ip6 saddr @src6 accept`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip6 ip6 saddr { ::, fe80::/10 } icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report, mld-listener-done } accept`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip6 drop`,
    // Host-network counting. Output after DNAT (-100): a packet to a reserved address is
    // routed to lo, then DNATed to a slice; "fib daddr type" then tells where it really goes
    // (oifname stays lo in every output chain). Input after the input hook's NAT (100): the
    // answer of a DNATed connection has the addresses its socket knows only from there on,
    // so before it the socket lookup finds nothing and the answer counted nowhere.
    `add chain ${i} count_out { type filter hook output priority -50; policy accept; }`,
    `add chain ${i} count_in { type filter hook input priority 150; policy accept; }`,
    // Chains of earlier versions (the same counting at priority -300), if any.
    `add chain ${i} output`,
    `flush chain ${i} output`,
    `delete chain ${i} output`,
    `add chain ${i} input`,
    `flush chain ${i} input`,
    `delete chain ${i} input`,
    `add set ${i} egress4 { type ipv4_addr; }`,
    // Conntrack limits: after conntrack (-200), before DNAT (-100). A new connection from a
    // slice (routed, or bridged with br_netfilter) jumps to its slice's chain by source.
    `add map ${i} ctslice4 { type ipv4_addr : verdict; }`,
    `add map ${i} ctslice6 { type ipv6_addr : verdict; }`,
    `add chain ${i} conntrack { type filter hook prerouting priority -150; policy accept; }`,
    `flush chain ${i} conntrack`,
    `add rule ${i} conntrack iifname "${c.bridge}" ct state new ip saddr vmap @ctslice4`,
    `add rule ${i} conntrack iifname "${c.bridge}" ct state new ip6 saddr vmap @ctslice6`,
    `add map ${i} fwd4 { typeof meta l4proto . ip daddr . th dport : ip daddr; }`,
    `add map ${i} fwd6 { typeof meta l4proto . ip6 daddr . th dport : ip6 daddr; }`,
    // Forwarding policy for the slices' range; other traffic of the host is not touched.
    `add chain ${i} forward { type filter hook forward priority 0; policy accept; }`,
    `flush chain ${i} forward`,
    `add rule ${i} forward iifname "${c.bridge}" oifname "${c.bridge}" accept`,
    `add rule ${i} forward iifname "${c.bridge}" ip saddr @egress4 accept`,
    `add rule ${i} forward iifname "${c.bridge}" drop`,
    `add rule ${i} forward oifname "${c.bridge}" ct state established,related accept`,
    `add rule ${i} forward oifname "${c.bridge}" ct status dnat accept`,
    `add rule ${i} forward oifname "${c.bridge}" drop`,
    `add chain ${i} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ${i} output_nat { type nat hook output priority -100; policy accept; }`,
    `add chain ${i} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush chain ${i} prerouting`,
    `flush chain ${i} output_nat`,
    `flush chain ${i} postrouting`,
  ];
  for (const chain of ['prerouting', 'output_nat']) {
    lines.push(
      `add rule ${i} ${chain} dnat ip to meta l4proto . ip daddr . th dport map @fwd4`,
      `add rule ${i} ${chain} dnat ip6 to meta l4proto . ip6 daddr . th dport map @fwd6`,
    );
  }
  // A slice reaching another slice's reserved port through the host: the answer must come
  // back through the host too (not straight across the bridge), so the source becomes the gateway.
  lines.push(
    `add rule ${i} postrouting oifname "${c.bridge}" ct status dnat ip saddr ${c.pool4} masquerade`,
    `add rule ${i} postrouting oifname "${c.bridge}" ct status dnat ip6 saddr ${c.pool6} masquerade`,
    `add rule ${i} postrouting oifname != "${c.bridge}" ip saddr @egress4 masquerade`,
  );
  if (reset) {
    lines.push(
      `flush map ${b} sent`,
      `flush map ${b} received`,
      `flush set ${b} src4`,
      `flush set ${b} src6`,
      `flush set ${i} egress4`,
      `flush map ${i} fwd4`,
      `flush map ${i} fwd6`,
    );
    lines.push(`flush map ${i} ctslice4`, `flush map ${i} ctslice6`);
  }
  return lines;
}

/** Every named counter of both tables (none when the tables do not exist). */
export async function readCounters(table: string): Promise<CounterReading[]> {
  const readings: CounterReading[] = [];
  for (const family of ['bridge', 'inet'] as const) {
    const result = await runTool('nft', ['-j', 'list', 'counters', 'table', family, table]);
    if (result.code !== 0) continue; // no table yet
    const doc = JSON.parse(result.stdout) as {
      nftables: Array<{ counter?: { name: string; packets: number; bytes: number; handle: number } }>;
    };
    for (const item of doc.nftables) {
      if (item.counter)
        readings.push({
          family,
          name: item.counter.name,
          packets: item.counter.packets,
          bytes: item.counter.bytes,
          handle: item.counter.handle,
        });
    }
  }
  return readings;
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
