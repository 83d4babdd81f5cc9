/**
 * The guard: an nft table (`inet sliced<tag>guard`) that rejects TCP from slices to the
 * node's services that are not theirs: addresses and ports (etcd's client URLs, the metrics
 * port on loopback) and ports on any address (the agents' node-to-node channel: every agent
 * listens on it); src/daemon/guard.ts says which. Namespaced slices are matched by the bridge
 * their traffic enters the host on, towards the host itself (input) and beyond it (forward);
 * host-network slices by their sockets' cgroup (`socket cgroupv2`, sliced's root group at its
 * level), on the way out (output). A rejected connection gets a TCP reset at once. The table
 * outlives the daemon, as slices do; `sliced --cleanup` removes it.
 */
import { runTool, mustRun } from './run.js';
import { SlicedError } from '../../core/errors.js';

export interface GuardTarget {
  family: 4 | 6;
  address: string;
  port: number;
}

export interface GuardScope {
  /** The slices' bridge, when slices have networks of their own. */
  bridge: string | null;
  /** sliced's root group in the cgroup2 hierarchy (relative to /sys/fs/cgroup, as nft takes it) and its level. */
  sliceRoot: { path: string; level: number } | null;
}

/** The whole table, idempotent: what it held before is replaced. */
export function guardLines(table: string, scope: GuardScope, targets: readonly GuardTarget[], ports: readonly number[] = []): string[] {
  const t = `inet ${table}`;
  const lines = [
    `add table ${t}`,
    `add set ${t} dest4 { type ipv4_addr . inet_service; }`,
    `add set ${t} dest6 { type ipv6_addr . inet_service; }`,
    `add set ${t} ports { type inet_service; }`,
    `flush set ${t} dest4`,
    `flush set ${t} dest6`,
    `flush set ${t} ports`,
  ];
  for (const [chain, hook] of [
    ['input', 'input'],
    ['forward', 'forward'],
    ['output', 'output'],
  ] as const) {
    lines.push(`add chain ${t} ${chain} { type filter hook ${hook} priority -10; policy accept; }`, `flush chain ${t} ${chain}`);
  }
  const reject = (chain: string, match: string): void => {
    lines.push(
      `add rule ${t} ${chain} ${match} ip daddr . tcp dport @dest4 counter reject with tcp reset`,
      `add rule ${t} ${chain} ${match} ip6 daddr . tcp dport @dest6 counter reject with tcp reset`,
      `add rule ${t} ${chain} ${match} tcp dport @ports counter reject with tcp reset`,
    );
  };
  if (scope.bridge !== null) {
    reject('input', `iifname "${scope.bridge}"`);
    reject('forward', `iifname "${scope.bridge}"`);
  }
  if (scope.sliceRoot !== null) reject('output', `socket cgroupv2 level ${scope.sliceRoot.level} "${scope.sliceRoot.path}"`);
  for (const family of [4, 6] as const) {
    const elements = targets.filter((d) => d.family === family).map((d) => `${d.address} . ${d.port}`);
    if (elements.length > 0) lines.push(`add element ${t} dest${family} { ${[...new Set(elements)].join(', ')} }`);
  }
  if (ports.length > 0) lines.push(`add element ${t} ports { ${[...new Set(ports)].join(', ')} }`);
  return lines;
}

/** Make the table; fails (EIO, nft's reason) when nft cannot (a cluster node then refuses to start: etcd would be open to slices). */
export async function applyGuard(
  table: string,
  scope: GuardScope,
  targets: readonly GuardTarget[],
  ports: readonly number[] = [],
): Promise<void> {
  await mustRun('nft', ['-f', '-'], `${guardLines(table, scope, targets, ports).join('\n')}\n`);
}

/** Remove the table if it is there; a node without nft has none. */
export async function removeGuard(table: string): Promise<void> {
  let result;
  try {
    result = await runTool('nft', ['delete', 'table', 'inet', table]);
  } catch {
    return; // nft is not installed: nothing of it can be there
  }
  if (result.code !== 0 && !/No such file or directory/.test(result.stderr)) {
    throw new SlicedError('EIO', `nft delete table inet ${table} failed: ${result.stderr.trim()}`);
  }
}
