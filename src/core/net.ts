/**
 * Slice networking as pure logic: address pools (IPv4 and IPv6), the allocation of each
 * slice's position in them, port reservations and their conflicts, and the names of the
 * kernel objects. Addresses as values are in net-address.ts, rates in net-rate.ts; both are
 * exported from here too. No I/O: the kernel side (src/kernel/net) only turns these values
 * into namespaces, links and rules.
 *
 * A slice network has one index; its addresses are the pools' base + index + 2 (offset 0 is
 * the subnet's own address, offset 1 the bridge, i.e. the slices' gateway). Service
 * addresses that reservations listen on come from the same pools, so an index is never
 * given to a slice while a reservation holds its address, and vice versa.
 */
import { SlicedError } from './errors.js';
import {
  ADDRESS_BITS,
  canonicalAddress,
  formatAddress,
  overlaps,
  parseAddress,
  parseCidrLoose,
  type Cidr,
  type Family,
} from './net-address.js';

export { canonicalAddress, formatAddress, parseAddress, type Cidr, type Family } from './net-address.js';
export { checkMinRates, checkRates, formatRate, parseRate, type RateLimits } from './net-rate.js';

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

// ---- pools ----------------------------------------------------------------------------------

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
  const hostBits = BigInt(ADDRESS_BITS[family] - prefix);
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
        `config: ${what} ${cidr.text} overlaps what the node already uses: ${named.join('; ')}. Choose a private subnet that no ` +
          `interface address or route of the node covers`,
      );
    }
  }
}

function size(cidr: Cidr): bigint {
  return 1n << BigInt(ADDRESS_BITS[cidr.family] - cidr.prefix);
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
        `address ${parsed.text} is ${special} of the pool ${cidr.text}; reserve a free address of the pool (${addressAt(cidr, 0)} to ` +
          `${addressAt(cidr, poolCapacity(pool) - 1)})`,
      );
    }
    throw new SlicedError(
      'EINVAL',
      `address ${parsed.text} is outside the pool ${cidr.text} (allowed: ${addressAt(cidr, 0)} to ` +
        `${addressAt(cidr, poolCapacity(pool) - 1)}, not the gateway ${gateway(cidr)})`,
    );
  }
  const owner = sliceIndexes.get(index);
  if (owner !== undefined) {
    throw new SlicedError('EBUSY', `address ${parsed.text} is slice ${owner}'s own address; reserve a free address of the pool`);
  }
  return { text: parsed.text, index };
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
  /** The nft table that keeps slices away from the cluster's services (etcd). */
  guardTable: string;
}

export const NET_TAG_PATTERN = /^[a-z0-9]{1,5}$/;

export function netNames(tag: string): NetNames {
  return {
    bridge: `slbr${tag}`,
    ifb: `slifb${tag}`,
    table: `sliced${tag}`,
    netnsPrefix: `sliced${tag}-`,
    vethPrefix: `slv${tag}-`,
    // A tag has at most 5 characters: no other daemon's table can have this name.
    guardTable: `sliced${tag}guard`,
  };
}

export function netnsName(names: NetNames, slice: string): string {
  return names.netnsPrefix + slice;
}

export function vethName(names: NetNames, index: number): string {
  return names.vethPrefix + index.toString(36);
}
