/**
 * Rates of slices' outgoing traffic: parsing ("50mbit"), text, and the checks against the
 * node's network capacity. Pure; tc turns them into HTB classes (src/kernel/net/tc.ts).
 */
import { SlicedError } from './errors.js';

/** A slice's rates in bit/s (NetSpec's minRate and maxRate), null where none is set. */
export interface RateLimits {
  minRate: number | null;
  maxRate: number | null;
}

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
export function checkRates(slice: string, net: RateLimits, capacity: number): void {
  const { minRate, maxRate } = net;
  if (minRate !== null && maxRate !== null && minRate > maxRate) {
    throw new SlicedError(
      'EINVAL',
      `slice ${slice}: net.maxRate ${formatRate(maxRate)} is below net.minRate ${formatRate(minRate)}; the ceiling must be at least ` +
        `the guaranteed rate`,
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
export function checkMinRates(slices: Iterable<{ name: string; net: RateLimits | null }>, capacity: number): void {
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
      `over-commit of the network: guaranteed rates would total ${formatRate(total)} (${holders.join(', ')}) but the node's network ` +
        `capacity is ${formatRate(capacity)}`,
    );
  }
}
