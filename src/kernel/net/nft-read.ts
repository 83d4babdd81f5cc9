/**
 * Reading sliced's nftables objects back from the kernel (`nft -j list`): the counters, the
 * host-network counter maps and the conntrack chains, so that a restarted daemon adopts what
 * is there and a change rewrites only what differs.
 */
import { runTool } from './run.js';
import { CONNTRACK_CHAIN, HOST_MAP_NAME, counterName } from './nft-names.js';

export interface CounterReading {
  family: 'bridge' | 'inet';
  name: string;
  packets: number;
  bytes: number;
  /** Object handle: a counter made anew gets a new one. */
  handle: number;
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

/** Names of the host-network counter maps (one per column and cgroup level) in the inet table. */
export async function hostMaps(table: string): Promise<string[]> {
  // -t: without elements (printing cgroupsv2 keys walks /sys/fs/cgroup once per element).
  const result = await runTool('nft', ['-t', '-j', 'list', 'maps', 'inet']);
  if (result.code !== 0) return [];
  const doc = JSON.parse(result.stdout) as { nftables: Array<{ map?: { name: string; table: string } }> };
  return doc.nftables.flatMap((item) => (item.map && item.map.table === table && HOST_MAP_NAME.test(item.map.name) ? [item.map.name] : []));
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
