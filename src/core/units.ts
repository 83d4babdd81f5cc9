/**
 * Explicit units. CPU is in millicores of this node ("1500m" or "1.5" cores); memory is in
 * bytes with binary K/M/G/T suffixes (1K = 1024, as systemd and the cgroup files use).
 * Parsers return a number or an error sentence; they never guess.
 */

export type ParseResult = { ok: true; value: number } | { ok: false; reason: string };

const CPU_PATTERN = /^(\d+(?:\.\d+)?)(m)?$/;

/** Parse a CPU quantity into whole millicores. Numbers are cores; strings may end in "m". */
export function parseCpu(input: unknown): ParseResult {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) {
      return { ok: false, reason: 'must be a non-negative number of cores or a string like "1500m" or "1.5"' };
    }
    return coresToMillicores(input, String(input));
  }
  if (typeof input !== 'string') {
    return { ok: false, reason: 'must be a number of cores or a string like "1500m" or "1.5"' };
  }
  const text = input.trim();
  const match = CPU_PATTERN.exec(text);
  if (!match) {
    return { ok: false, reason: 'must be millicores like "1500m" or cores like "1.5" (non-negative)' };
  }
  const amount = Number(match[1]);
  if (match[2] === 'm') {
    if (!Number.isInteger(amount)) return { ok: false, reason: 'millicores must be a whole number, like "250m"' };
    if (!Number.isSafeInteger(amount)) return { ok: false, reason: 'is too large' };
    return { ok: true, value: amount };
  }
  return coresToMillicores(amount, text);
}

function coresToMillicores(cores: number, shown: string): ParseResult {
  const millicores = cores * 1000;
  const rounded = Math.round(millicores);
  if (Math.abs(millicores - rounded) > 1e-6) {
    return { ok: false, reason: `"${shown}" is finer than 1m (0.001 core)` };
  }
  if (!Number.isSafeInteger(rounded)) return { ok: false, reason: 'is too large' };
  return { ok: true, value: rounded };
}

const MEMORY_PATTERN = /^(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?$/i;
const MEMORY_FACTORS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Parse a memory size into bytes: 536870912, "512M", "1.5G", "64Ki". */
export function parseMemory(input: unknown): ParseResult {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) {
      return { ok: false, reason: 'must be a whole non-negative number of bytes or a size like "512M"' };
    }
    return { ok: true, value: input };
  }
  if (typeof input !== 'string') return { ok: false, reason: 'must be a number of bytes or a size like "512M"' };
  const match = MEMORY_PATTERN.exec(input.trim());
  if (!match) return { ok: false, reason: 'must be bytes or a size with a K, M, G or T suffix, like "512M"' };
  const unit = (match[2] ?? '').charAt(0).toUpperCase();
  const bytes = Number(match[1]) * (MEMORY_FACTORS[unit] ?? 1);
  if (!Number.isInteger(bytes)) return { ok: false, reason: `"${input}" is not a whole number of bytes` };
  if (!Number.isSafeInteger(bytes)) return { ok: false, reason: 'is too large' };
  return { ok: true, value: bytes };
}

export function formatCpu(millicores: number | null): string {
  if (millicores === null) return '-';
  return `${Math.round(millicores)}m`;
}

export function formatMemory(bytes: number | null): string {
  if (bytes === null) return '-';
  const units = ['', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    unit++;
  }
  if (unit === 0 && bytes >= 1024 * 1024) {
    // Not a round size: show one decimal in the largest fitting unit.
    let approx = bytes;
    let u = 0;
    while (approx >= 1024 && u < units.length - 1) {
      approx /= 1024;
      u++;
    }
    return `${approx.toFixed(1)}${units[u]}`;
  }
  return `${value}${units[unit]}`;
}

/**
 * Parse an I/O rate cap in bytes per second: a size as parseMemory takes it ("10M" is
 * 10 MiB/s), optionally followed by "/s". Zero is refused: the kernel reads 0 as "no cap",
 * which is what "none" says explicitly.
 */
export function parseRate(input: unknown): ParseResult {
  const text = typeof input === 'string' ? input.trim().replace(/\/s$/i, '') : input;
  const parsed = parseMemory(text);
  if (!parsed.ok) return { ok: false, reason: `${parsed.reason.replace('bytes', 'bytes per second')} (1M = 1048576)` };
  if (parsed.value === 0) return { ok: false, reason: 'must be at least 1 byte per second; use "none" to remove the cap' };
  return parsed;
}

/** Parse an I/O operations-per-second cap: a positive whole number. */
export function parseIops(input: unknown): ParseResult {
  const value = typeof input === 'string' && /^\d+$/.test(input.trim()) ? Number(input.trim()) : input;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    return { ok: false, reason: 'must be a whole number of operations per second, at least 1 (or "none")' };
  }
  return { ok: true, value };
}

/** Bytes per second as a size per second, e.g. "10M/s". */
export function formatRate(bytesPerSecond: number | null): string {
  return bytesPerSecond === null ? '-' : `${formatMemory(bytesPerSecond)}/s`;
}

/** Bytes in the largest unit that fits, one decimal unless whole: "8M", "229.9M", "0" (free space, where exactness is noise). */
export function formatSizeApprox(bytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1)}${units[unit]}`;
}
