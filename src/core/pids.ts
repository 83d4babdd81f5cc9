/**
 * Process ids from outside (API bodies, query strings, command lines). The kernel never hands
 * out a pid above PID_MAX_LIMIT (4194304 on 64-bit; /proc/sys/kernel/pid_max is at most that),
 * so anything else is refused as not a pid at all, before any lookup in /proc. The same rule as
 * zod schemas, for API bodies and queries, is in model.ts (this module stays free of zod: the
 * CLI uses it).
 */
export const PID_MAX = 4_194_304;

export const PID_RANGE = `a whole number from 1 to ${PID_MAX}`;

export function isPid(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= PID_MAX;
}

/** A pid written as text (argv, query string): digits only, no sign, exponent or leading zero. */
export function parsePidText(text: string): number | null {
  if (!/^[1-9][0-9]{0,6}$/.test(text)) return null;
  const pid = Number(text);
  return isPid(pid) ? pid : null;
}

/** Why `value` (from JSON, already parsed) is not a pid, or null when it is one. */
export function pidProblem(value: unknown): string | null {
  return isPid(value) ? null : `is not a valid pid: it must be ${PID_RANGE}`;
}
