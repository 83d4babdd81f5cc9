/**
 * iproute2 driver: the bridge (the slices' virtual switch and router), each slice's network
 * namespace with its veth pair, addresses and routes, an optional tun device, and the
 * loopback counters inside a namespace. Existence is checked in /run/netns and
 * /sys/class/net (cheap reads); everything else goes through `ip`, batched per namespace.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mustRun, runTool } from './run.js';
import { SlicedError } from '../../core/errors.js';
import type { HostNetwork } from '../../core/net.js';

const NETNS_DIR = '/run/netns';

export interface BridgeConfig {
  name: string;
  /** "10.213.0.1/17" */
  v4: string;
  /** "fd5c:ed00::1/64" */
  v6: string;
}

export interface SliceLink {
  netns: string;
  veth: string;
  bridge: string;
  /** The slice's addresses with prefix length, and the gateways (the bridge's addresses). */
  v4: string;
  v6: string;
  gateway4: string;
  gateway6: string;
  /** Create tun0 owned by this user inside the namespace. */
  tun: { uid: number; gid: number } | null;
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

export function netnsExists(name: string): boolean {
  return existsSync(`${NETNS_DIR}/${name}`);
}

export function listLinks(prefix: string): string[] {
  return readdirSync('/sys/class/net').filter((name) => name.startsWith(prefix));
}

export function listNetns(prefix: string): string[] {
  try {
    return readdirSync(NETNS_DIR).filter((name) => name.startsWith(prefix));
  } catch {
    return [];
  }
}

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Write a sysctl under /proc/sys; returns the previous value. */
export function setSysctl(key: string, value: string): string {
  const path = `/proc/sys/${key.replaceAll('.', '/')}`;
  const previous = readFileSync(path, 'utf8').trim();
  if (previous !== value) writeFileSync(path, value);
  return previous;
}

/**
 * Create the bridge if it is missing and (re)assert its addresses. Forwarding is enabled on
 * the bridge only (per-interface switches), so the host routes between slices and to
 * reserved ports without turning the whole machine into a router.
 */
export async function ensureBridge(bridge: BridgeConfig): Promise<void> {
  if (!linkExists(bridge.name)) await mustRun('ip', ['link', 'add', bridge.name, 'type', 'bridge']);
  await mustRun(
    'ip',
    ['-b', '-'],
    [
      `addr replace ${bridge.v4} dev ${bridge.name}`,
      `addr replace ${bridge.v6} dev ${bridge.name} nodad`,
      `link set ${bridge.name} up`,
    ].join('\n'),
  );
  setSysctl(`net.ipv4.conf.${bridge.name}.forwarding`, '1');
  // Per-interface IPv6 forwarding exists since Linux 6.17; before, IPv6 reserved ports
  // reach a slice only from the host itself unless net.ipv6.conf.all.forwarding is on.
  if (existsSync(`/proc/sys/net/ipv6/conf/${bridge.name}/force_forwarding`))
    setSysctl(`net.ipv6.conf.${bridge.name}.force_forwarding`, '1');
}

/** Create what is missing of a slice's network and (re)assert the rest; idempotent. */
export async function ensureSliceNet(link: SliceLink): Promise<void> {
  const host: string[] = [];
  const fresh = !netnsExists(link.netns);
  if (fresh) host.push(`netns add ${link.netns}`);
  if (!linkExists(link.veth)) {
    // A leftover half of a pair would make "link add" fail; the namespace side goes with it.
    host.push(`link add ${link.veth} type veth peer name eth0 netns ${link.netns}`);
  }
  host.push(`link set ${link.veth} master ${link.bridge} up`);
  await mustRun('ip', ['-b', '-'], host.join('\n'));
  const inside = [
    'link set lo up',
    `addr replace ${link.v4} dev eth0`,
    `addr replace ${link.v6} dev eth0 nodad`,
    'link set eth0 up',
    `route replace default via ${link.gateway4} dev eth0`,
    `route replace default via ${link.gateway6} dev eth0`,
  ];
  const tunThere = !fresh && (await hasTun(link.netns));
  if (link.tun && !tunThere) inside.push(`tuntap add dev tun0 mode tun user ${link.tun.uid} group ${link.tun.gid}`, 'link set tun0 up');
  if (!link.tun && tunThere) inside.push('link del tun0');
  await mustRun('ip', ['-n', link.netns, '-b', '-'], inside.join('\n'));
  // The namespace's ports are all the slice's: its user may bind below 1024 there (e.g. a
  // reserved port 53). The sysctl is per namespace; /proc/sys/net follows the writer's.
  if (fresh) await mustRun('nsenter', [`--net=${netnsPath(link.netns)}`, 'sysctl', '-qw', 'net.ipv4.ip_unprivileged_port_start=0']);
}

async function hasTun(netns: string): Promise<boolean> {
  const out = await mustRun('ip', ['-n', netns, '-j', 'link', 'show']);
  return (JSON.parse(out) as Array<{ ifname: string }>).some((l) => l.ifname === 'tun0');
}

/** Remove a slice's namespace and its veth pair; missing pieces are fine. */
export async function removeSliceNet(netns: string, veth: string | null): Promise<void> {
  // Deleting the host side removes the pair even if something still holds the namespace open.
  if (veth !== null) await deleteLink(veth);
  if (netnsExists(netns)) await mustRun('ip', ['netns', 'del', netns]);
}

/** Delete a link; one that is gone already (e.g. with its namespace) is fine. */
export async function deleteLink(name: string): Promise<void> {
  if (!linkExists(name)) return;
  const result = await runTool('ip', ['link', 'del', name]);
  if (result.code !== 0 && linkExists(name)) throw new SlicedError('EIO', `ip link del ${name} failed: ${result.stderr.trim()}`);
}

export interface InterfaceCounters {
  packets: number;
  bytes: number;
  /** Identity of the counters' owner: changes when the namespace is made anew. */
  identity: string;
}

/**
 * Loopback traffic inside a namespace. lo counts each packet once on transmit and once on
 * receive (the same packet), with a 14-byte Ethernet header that is removed here so that
 * bytes are IP bytes like the nftables counters.
 */
export async function readLoopback(netns: string): Promise<InterfaceCounters | null> {
  if (!netnsExists(netns)) return null;
  const identity = `netns:${statSync(netnsPath(netns)).ino}`;
  const out = await mustRun('ip', ['-n', netns, '-s', '-j', 'link', 'show', 'dev', 'lo']);
  const stats = (JSON.parse(out) as Array<{ stats64?: { tx: { packets: number; bytes: number } } }>)[0]?.stats64?.tx;
  if (!stats) return null;
  return { packets: stats.packets, bytes: stats.bytes - 14 * stats.packets, identity };
}

/**
 * Every interface address and every route of the host's namespace (all tables, both
 * families), to check that the slices' pools are free (core/net.ts checkPoolsFree).
 */
export async function hostNetworks(): Promise<HostNetwork[]> {
  const found: HostNetwork[] = [];
  type Link = { ifname: string; addr_info?: Array<{ local?: string; prefixlen?: number }> };
  for (const link of JSON.parse(await mustRun('ip', ['-j', 'addr', 'show'])) as Link[]) {
    for (const a of link.addr_info ?? []) {
      if (a.local === undefined || a.prefixlen === undefined) continue;
      found.push({
        description: `address ${a.local}/${a.prefixlen} on ${link.ifname}`,
        cidr: `${a.local}/${a.prefixlen}`,
        dev: link.ifname,
      });
    }
  }
  type Route = { type?: string; dst?: string; gateway?: string; dev?: string; table?: string };
  for (const family of ['-4', '-6']) {
    for (const r of JSON.parse(await mustRun('ip', [family, '-j', 'route', 'show', 'table', 'all'])) as Route[]) {
      if (r.dst === undefined) continue;
      const words = [
        r.type && r.type !== 'unicast' ? r.type : null,
        r.dst,
        r.gateway ? `via ${r.gateway}` : null,
        r.dev ? `dev ${r.dev}` : null,
        r.table ? `table ${r.table}` : null,
      ];
      found.push({ description: `route ${words.filter((w) => w !== null).join(' ')}`, cidr: r.dst, dev: r.dev ?? null });
    }
  }
  return found;
}
