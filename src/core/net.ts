/**
 * Slice networking as pure logic: address pools (IPv4 and IPv6), the allocation of each
 * slice's position in them, port reservations and their conflicts, and rates. No I/O: the
 * kernel side (src/kernel/net) only turns these values into namespaces, links and rules.
 *
 * A slice network has one index; its addresses are the pools' base + index + 2 (offset 0 is
 * the subnet's own address, offset 1 the bridge, i.e. the slices' gateway). Service
 * addresses that reservations listen on come from the same pools, so an index is never
 * given to a slice while a reservation holds its address, and vice versa.
 */
import { SlicedError } from './errors.js';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The subnet's first address. */
  base: bigint;
  prefix: number;
  text: string;
}

export interface NetPool {
  v4: Cidr;
  v6: Cidr;
}

export interface NetSpec {
  /** Position in the pools (see the file comment). */
  index: number;
  /** Outbound traffic to the rest of the world is NATed through the host. */
  egress: boolean;
  /** Guaranteed rate of the slice's outgoing traffic in bit/s (HTB rate), or null. */
  minRate: number | null;
  /** Ceiling of the slice's outgoing traffic in bit/s (HTB ceil), or null for the node's capacity. */
  maxRate: number | null;
  /** A tun device "tun0" owned by the slice's user exists in the namespace. */
  tun: boolean;
}

export type Protocol = 'tcp' | 'udp';
export const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp'];

export interface Reservation {
  /** Canonical text of a service address inside the pool. */
  address: string;
  protocol: Protocol;
  port: number;
  slice: string;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

// ---- addresses --------------------------------------------------------------------------

/** Parse an IPv4 or IPv6 address into its family and value; null when it is not one. */
export function parseAddress(text: string): { family: Family; value: bigint } | null {
  if (typeof text !== 'string') return null;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split('.').map(Number);
    if (parts.some((p) => p > 255) || text.split('.').some((p) => p.length > 1 && p.startsWith('0'))) return null;
    return { family: 4, value: parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n) };
  }
  if (!/^[0-9a-fA-F:]+$/.test(text) || text.length > 39) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const group = (part: string): string[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    return groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g)) ? groups : null;
  };
  const head = group(halves[0]!);
  const tail = halves.length === 2 ? group(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  return { family: 6, value: all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

/** Canonical text (RFC 5952 for IPv6: lower case, longest zero run compressed). */
export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i > 1) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Canonical form of an address given from outside, or an EINVAL naming the value. */
export function canonicalAddress(text: unknown, what = 'address'): { family: Family; value: bigint; text: string } {
  const parsed = typeof text === 'string' ? parseAddress(text.trim()) : null;
  if (!parsed) {
    throw new SlicedError(
      'EINVAL',
      `${what} ${JSON.stringify(text)} is not an IPv4 address like "10.0.0.5" or an IPv6 address like "fd00::5"`,
    );
  }
  return { ...parsed, text: formatAddress(parsed.family, parsed.value) };
}

/** Parse "10.213.0.0/17" or "fd5c:5:0::/64"; host bits must be zero. */
export function parseCidr(text: string, family: Family, what: string): Cidr {
  const [address, prefixText, ...rest] = text.split('/');
  const parsed = address !== undefined ? parseAddress(address) : null;
  const prefix = Number(prefixText);
  const example = family === 4 ? '"10.213.0.0/17"' : '"fd5c:ed00::/64"';
  // v4 at most a /17: a slice's index must also fit 16-bit HTB class and filter numbers.
  const [minPrefix, maxPrefix] = family === 4 ? [17, 29] : [64, 124];
  if (!parsed || parsed.family !== family || rest.length > 0 || !/^\d+$/.test(prefixText ?? '')) {
    throw new SlicedError('EINVAL', `${what} ${JSON.stringify(text)} must be an IPv${family} subnet like ${example}`);
  }
  if (prefix < minPrefix || prefix > maxPrefix) {
    throw new SlicedError(
      'EINVAL',
      `${what} ${JSON.stringify(text)} has prefix length /${prefix}; allowed is /${minPrefix} to /${maxPrefix}`,
    );
  }
  const hostBits = BigInt(BITS[family] - prefix);
  if (parsed.value & ((1n << hostBits) - 1n)) {
    throw new SlicedError('EINVAL', `${what} ${JSON.stringify(text)} has host bits set; write the subnet's first address`);
  }
  return { family, base: parsed.value, prefix, text: `${formatAddress(family, parsed.value)}/${prefix}` };
}

/** The private ranges a pool must lie in: RFC 1918 for IPv4, unique local addresses (RFC 4193) for IPv6. */
export const PRIVATE_RANGES: Record<Family, readonly string[]> = {
  4: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
  6: ['fc00::/7'],
};

/** Do the subnets (address, prefix) of one family share an address? */
function overlaps(family: Family, a: bigint, aPrefix: number, b: bigint, bPrefix: number): boolean {
  const shorter = BigInt(BITS[family] - Math.min(aPrefix, bPrefix));
  return a >> shorter === b >> shorter;
}

/**
 * Refuse a pool outside the private ranges: slices would take (and the bridge would answer
 * for) addresses that belong to someone else on the Internet. 100.64.0.0/10 (shared address
 * space) is not accepted: it is the provider's side of carrier-grade NAT.
 */
export function checkPrivatePool(cidr: Cidr, what: string): void {
  const inside = PRIVATE_RANGES[cidr.family].some((range) => {
    const r = parseCidrLoose(range)!;
    return cidr.prefix >= r.prefix && overlaps(cidr.family, cidr.base, cidr.prefix, r.value, r.prefix);
  });
  if (!inside) {
    const allowed =
      cidr.family === 4
        ? 'a subnet of 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (RFC 1918)'
        : 'a subnet of fc00::/7 (unique local addresses, RFC 4193), e.g. fd5c:ed00::/64';
    throw new SlicedError('EINVAL', `${what} ${cidr.text} is not a private range; use ${allowed}`);
  }
}

/** "10.1.0.0/16", "10.1.2.3" (a host), "default" → value and prefix; null when it is none of these. */
function parseCidrLoose(text: string): { family: Family; value: bigint; prefix: number } | null {
  if (text === 'default') return null;
  const [address, prefixText, ...rest] = text.split('/');
  const parsed = address !== undefined ? parseAddress(address) : null;
  if (!parsed || rest.length > 0) return null;
  const prefix = prefixText === undefined ? BITS[parsed.family] : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > BITS[parsed.family]) return null;
  return { ...parsed, prefix };
}

/** An address or route of the node, as the kernel lists it (see kernel/net/ip.ts hostNetworks). */
export interface HostNetwork {
  /** How the error names it: "address 10.1.2.3/24 on eth1", "route 10.0.0.0/8 via 192.0.2.9 dev eth0". */
  description: string;
  /** "10.1.2.3/24", "10.0.0.0/8", "10.1.2.3" or "default". */
  cidr: string;
  dev: string | null;
}

/**
 * Refuse pools that share addresses with what the node already has: an interface's subnet or
 * a route (default routes aside). What is on `ownBridge` is this daemon's own (a restart).
 */
export function checkPoolsFree(pool: NetPool, host: readonly HostNetwork[], ownBridge: string): void {
  for (const [cidr, what] of [
    [pool.v4, 'netPool4'],
    [pool.v6, 'netPool6'],
  ] as const) {
    const conflicts = host.filter((h) => {
      if (h.dev === ownBridge) return false;
      const other = parseCidrLoose(h.cidr);
      return (
        other !== null &&
        other.family === cidr.family &&
        other.prefix > 0 &&
        overlaps(cidr.family, cidr.base, cidr.prefix, other.value, other.prefix)
      );
    });
    if (conflicts.length > 0) {
      const named = conflicts.slice(0, 5).map((h) => h.description);
      if (conflicts.length > 5) named.push(`and ${conflicts.length - 5} more`);
      throw new SlicedError(
        'EINVAL',
        `config: ${what} ${cidr.text} overlaps what the node already uses: ${named.join('; ')}. Choose a private subnet that no interface address or route of the node covers`,
      );
    }
  }
}

function size(cidr: Cidr): bigint {
  return 1n << BigInt(BITS[cidr.family] - cidr.prefix);
}

/** How many slice networks (plus service addresses) the pools hold: the smaller of the two. */
export function poolCapacity(pool: NetPool): number {
  // v4: minus the subnet address, the gateway and the broadcast address; v6: minus the first two.
  const v4 = size(pool.v4) - 3n;
  const v6 = size(pool.v6) - 2n;
  const smaller = v4 < v6 ? v4 : v6;
  return smaller > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(smaller);
}

export function gateway(cidr: Cidr): string {
  return formatAddress(cidr.family, cidr.base + 1n);
}

export function addressAt(cidr: Cidr, index: number): string {
  return formatAddress(cidr.family, cidr.base + BigInt(index) + 2n);
}

export interface SliceAddresses {
  v4: string;
  v6: string;
}

export function sliceAddresses(pool: NetPool, index: number): SliceAddresses {
  return { v4: addressAt(pool.v4, index), v6: addressAt(pool.v6, index) };
}

/** Index of an address inside its pool, or null when it is outside the usable range. */
export function indexOf(pool: NetPool, family: Family, value: bigint): number | null {
  const cidr = family === 4 ? pool.v4 : pool.v6;
  const index = value - cidr.base - 2n;
  if (index < 0n || index >= BigInt(poolCapacity(pool))) return null;
  return Number(index);
}

/** The lowest index not in `taken`; ENOSPC when the pool is full. */
export function allocateIndex(pool: NetPool, taken: ReadonlySet<number>): number {
  const capacity = poolCapacity(pool);
  for (let index = 0; index < capacity; index++) if (!taken.has(index)) return index;
  throw new SlicedError('ENOSPC', `the address pools ${pool.v4.text} and ${pool.v6.text} are full: all ${capacity} addresses are in use`);
}

// ---- reservations -------------------------------------------------------------------------

export function reservationKey(r: Pick<Reservation, 'address' | 'protocol' | 'port'>): string {
  return `${r.protocol}/${r.address}/${r.port}`;
}

export function describeReservation(r: Pick<Reservation, 'address' | 'protocol' | 'port'>): string {
  return `${r.protocol} ${r.address.includes(':') ? `[${r.address}]` : r.address}:${r.port}`;
}

export function parsePort(value: unknown): number {
  const port = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new SlicedError('EINVAL', `port ${JSON.stringify(value)} must be a whole number from 1 to 65535`);
  }
  return port;
}

export function parseProtocol(value: unknown): Protocol {
  if (typeof value === 'string' && (PROTOCOLS as readonly string[]).includes(value.toLowerCase())) return value.toLowerCase() as Protocol;
  throw new SlicedError('EINVAL', `protocol ${JSON.stringify(value)} must be one of ${PROTOCOLS.join(', ')}`);
}

/**
 * Validate a reservation request against the pools: the address must be a usable address
 * inside the pool of its family and must not be a slice's own address.
 */
export function checkReservationAddress(
  pool: NetPool,
  address: unknown,
  sliceIndexes: ReadonlyMap<number, string>,
): { text: string; index: number } {
  const parsed = canonicalAddress(address);
  const index = indexOf(pool, parsed.family, parsed.value);
  const cidr = parsed.family === 4 ? pool.v4 : pool.v6;
  if (index === null) {
    // The pool's own addresses are in it but not for reservations: say which one it is.
    const special =
      parsed.value === cidr.base + 1n
        ? "the gateway (the bridge's own address)"
        : parsed.value === cidr.base
          ? 'the subnet address'
          : cidr.family === 4 && parsed.value === cidr.base + size(cidr) - 1n
            ? 'the broadcast address'
            : null;
    if (special !== null) {
      throw new SlicedError(
        'EINVAL',
        `address ${parsed.text} is ${special} of the pool ${cidr.text}; reserve a free address of the pool (${addressAt(cidr, 0)} to ${addressAt(cidr, poolCapacity(pool) - 1)})`,
      );
    }
    throw new SlicedError(
      'EINVAL',
      `address ${parsed.text} is outside the pool ${cidr.text} (allowed: ${addressAt(cidr, 0)} to ${addressAt(cidr, poolCapacity(pool) - 1)}, not the gateway ${gateway(cidr)})`,
    );
  }
  const owner = sliceIndexes.get(index);
  if (owner !== undefined) {
    throw new SlicedError('EBUSY', `address ${parsed.text} is slice ${owner}'s own address; reserve a free address of the pool`);
  }
  return { text: parsed.text, index };
}

// ---- rates --------------------------------------------------------------------------------

const RATE_PATTERN = /^(\d+(?:\.\d+)?)\s*(k|m|g|t)?(bit)?$/i;
const RATE_ALLOWED = 'must be a rate in bits per second like "50mbit", "500kbit", "1gbit" or a number of bit/s';
const SCALE: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** Parse a rate into whole bits per second (decimal prefixes, as tc uses them for "mbit"). */
export function parseRate(value: unknown): { ok: true; value: number } | { ok: false; reason: string } {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 1000 ? { ok: true, value } : { ok: false, reason: `${RATE_ALLOWED}, at least 1000` };
  }
  if (typeof value !== 'string') return { ok: false, reason: RATE_ALLOWED };
  if (/bps$/i.test(value.trim())) return { ok: false, reason: `${RATE_ALLOWED} ("bps" is ambiguous: write "bit")` };
  const match = RATE_PATTERN.exec(value.trim());
  if (!match) return { ok: false, reason: RATE_ALLOWED };
  const bits = Math.round(Number(match[1]) * SCALE[(match[2] ?? '').toLowerCase()]!);
  if (bits < 1000) return { ok: false, reason: `${RATE_ALLOWED}; the smallest is 1kbit` };
  if (!Number.isSafeInteger(bits)) return { ok: false, reason: 'is too large' };
  return { ok: true, value: bits };
}

export function formatRate(bits: number | null): string {
  if (bits === null) return '-';
  for (const [suffix, scale] of [
    ['gbit', 1e9],
    ['mbit', 1e6],
    ['kbit', 1e3],
  ] as const) {
    if (bits >= scale && bits % (scale / 1000) === 0) return `${bits / scale}${suffix}`;
  }
  return `${bits}bit`;
}

/** min ≤ max, both within the node's capacity. */
export function checkRates(slice: string, net: Pick<NetSpec, 'minRate' | 'maxRate'>, capacity: number): void {
  const { minRate, maxRate } = net;
  if (minRate !== null && maxRate !== null && minRate > maxRate) {
    throw new SlicedError(
      'EINVAL',
      `slice ${slice}: net.maxRate ${formatRate(maxRate)} is below net.minRate ${formatRate(minRate)}; the ceiling must be at least the guaranteed rate`,
    );
  }
  for (const [field, rate] of [
    ['minRate', minRate],
    ['maxRate', maxRate],
  ] as const) {
    if (rate !== null && rate > capacity) {
      throw new SlicedError(
        'EINVAL',
        `slice ${slice}: net.${field} ${formatRate(rate)} is above the node's network capacity ${formatRate(capacity)}`,
      );
    }
  }
}

/** Admission for rates: the guaranteed rates together must fit the node's network capacity. */
export function checkMinRates(slices: Iterable<{ name: string; net: NetSpec | null }>, capacity: number): void {
  let total = 0;
  const holders: string[] = [];
  for (const slice of slices) {
    if (slice.net?.minRate) {
      total += slice.net.minRate;
      holders.push(`slice ${slice.name} ${formatRate(slice.net.minRate)}`);
    }
  }
  if (total > capacity) {
    throw new SlicedError(
      'ENOSPC',
      `over-commit of the network: guaranteed rates would total ${formatRate(total)} (${holders.join(', ')}) but the node's network capacity is ${formatRate(capacity)}`,
    );
  }
}

// ---- kernel object names --------------------------------------------------------------------

/**
 * Names of the kernel objects of one daemon. `tag` keeps two daemons (e.g. tests) apart;
 * interface names must fit IFNAMSIZ (15 characters), so links are named by index.
 */
export interface NetNames {
  bridge: string;
  ifb: string;
  table: string;
  netnsPrefix: string;
  vethPrefix: string;
}

export const NET_TAG_PATTERN = /^[a-z0-9]{1,5}$/;

export function netNames(tag: string): NetNames {
  return { bridge: `slbr${tag}`, ifb: `slifb${tag}`, table: `sliced${tag}`, netnsPrefix: `sliced${tag}-`, vethPrefix: `slv${tag}-` };
}

export function netnsName(names: NetNames, slice: string): string {
  return names.netnsPrefix + slice;
}

export function vethName(names: NetNames, index: number): string {
  return names.vethPrefix + index.toString(36);
}
