/**
 * IP addresses and subnets as values: parsing, canonical text (RFC 5952 for IPv6) and
 * overlap. Pure; the pools built on them are in net.ts.
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

/** Bits of an address of each family. */
export const ADDRESS_BITS: Record<Family, number> = { 4: 32, 6: 128 };

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

/** Do the subnets (address, prefix) of one family share an address? */
export function overlaps(family: Family, a: bigint, aPrefix: number, b: bigint, bPrefix: number): boolean {
  const shorter = BigInt(ADDRESS_BITS[family] - Math.min(aPrefix, bPrefix));
  return a >> shorter === b >> shorter;
}

/** "10.1.0.0/16", "10.1.2.3" (a host), "default" → value and prefix; null when it is none of these. */
export function parseCidrLoose(text: string): { family: Family; value: bigint; prefix: number } | null {
  if (text === 'default') return null;
  const [address, prefixText, ...rest] = text.split('/');
  const parsed = address !== undefined ? parseAddress(address) : null;
  if (!parsed || rest.length > 0) return null;
  const prefix = prefixText === undefined ? ADDRESS_BITS[parsed.family] : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > ADDRESS_BITS[parsed.family]) return null;
  return { ...parsed, prefix };
}

/** Where a TCP service listens: HOST:PORT, [IPv6]:PORT or :PORT (host "" = every address). */
export interface ListenAddress {
  host: string;
  port: number;
}

const LISTEN_PATTERN = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/;

/** A listen address, or null when the text is not one (a port from 1 to 65535 is needed). */
export function parseListen(text: string): ListenAddress | null {
  const m = LISTEN_PATTERN.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 ? { host: m[1] ?? m[2] ?? '', port } : null;
}

/** Whether a listen host means every address of the machine. */
export function isWildcardHost(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::';
}
