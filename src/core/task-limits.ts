/**
 * Task limits (the pids controller) as pure functions. Every slice has a pids.max: once its
 * group holds that many tasks (processes and threads, one PID each) the kernel refuses
 * fork() and clone() inside it with EAGAIN. Without it one slice's fork bomb can use up the
 * node's PIDs: its user's RLIMIT_NPROC is normally above kernel.pid_max, and a memory limit
 * (if any) is reached only long after.
 *
 * Default: a slice's "default" is a share of the node's PID space, the smaller of
 * kernel.pid_max and kernel.threads-max read when the daemon starts; 15% unless the daemon
 * setting defaultPidsMax says otherwise. That is systemd's DefaultTasksMax: one slice can
 * never take more than 15% of the PIDs, while a busy tenant (thread pools, parallel builds)
 * still has thousands (4915 with the common pid_max of 32768; 629145 with 4194304). Being
 * stored as "default" rather than a number, it follows pid_max and the setting at each start.
 *
 * Nesting: a domain may have its own pids.max (default none) that bounds all its members
 * together, as a domain's memory limit does. The kernel's pids controller is hierarchical on
 * v1 and v2 (a fork fails when any enclosing group is at its limit), so each group carries
 * only its own value and nothing is derived.
 */
import type { ParseResult } from './units.js';
import { SlicedError } from './errors.js';
import { PID_MAX } from './pids.js';

/** No pid_max (and so no useful pids.max) is larger than the kernel's PID_MAX_LIMIT. */
export const PIDS_MAX_LIMIT = PID_MAX;

/** Share of the node's PID space a slice gets by default (systemd's DefaultTasksMax). */
export const DEFAULT_PIDS_SETTING = '15%';

export interface PidsAllocation {
  /** Most tasks at once; null for no cap; "default" (slices only) for the node's default. */
  max: number | 'default' | null;
}

export const DEFAULT_SLICE_PIDS: PidsAllocation = { max: 'default' };
/** Domains bound their members only when asked to: each member has its own limit anyway. */
export const DEFAULT_DOMAIN_PIDS: PidsAllocation = { max: null };

/** What the node offers, read at start; absent in tests that do not need it. */
export interface NodePids {
  /** min(kernel.pid_max, kernel.threads-max): tasks the node can hold at once. */
  space: number;
  /** The number a slice's "default" stands for, or null when the default is "none". */
  sliceDefault: number | null;
  /** The setting it was computed from ("15%", "2000" or "none"), for display. */
  setting: string;
}

const COUNT_ALLOWED = `a whole number of tasks from 1 to ${PIDS_MAX_LIMIT}`;

/** A task count: a whole number from 1 to PIDS_MAX_LIMIT (0 would stop every fork, exec's too). */
export function parsePidsCount(input: unknown): ParseResult {
  const value = typeof input === 'string' && /^\d+$/.test(input.trim()) ? Number(input.trim()) : input;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > PIDS_MAX_LIMIT) {
    return { ok: false, reason: `must be ${COUNT_ALLOWED}` };
  }
  return { ok: true, value };
}

/** The message for a bad pids.max, with what is allowed where it is given. */
export function pidsMaxReason(allowDefault: boolean): string {
  return `must be ${COUNT_ALLOWED}, "none"${allowDefault ? ' or "default" (the node\'s default share of its PIDs)' : ''}`;
}

export type PidsDefaultSetting = { percent: number } | { count: number } | null;

/** The daemon setting defaultPidsMax: "N%" of the node's PID space (N above 0, at most 100), a count, or "none". */
export function parsePidsDefault(input: unknown): { ok: true; value: PidsDefaultSetting } | { ok: false; reason: string } {
  if (input === 'none' || input === null) return { ok: true, value: null };
  const text = typeof input === 'string' ? input.trim() : null;
  if (text !== null && /^\d+(\.\d+)?%$/.test(text)) {
    const percent = Number(text.slice(0, -1));
    if (percent > 0 && percent <= 100) return { ok: true, value: { percent } };
  } else {
    const count = parsePidsCount(input);
    if (count.ok) return { ok: true, value: { count: count.value } };
  }
  return { ok: false, reason: `must be a share of the node's PIDs like "15%" (above 0, at most 100%), ${COUNT_ALLOWED}, or "none"` };
}

/** Tasks the node can hold: each needs a PID (pid_max) and a task struct (threads-max). */
export function pidSpace(pidMax: number, threadsMax: number): number {
  return Math.max(1, Math.min(pidMax, threadsMax));
}

export function nodePids(setting: PidsDefaultSetting, space: number, text: string): NodePids {
  let sliceDefault: number | null = null;
  if (setting !== null) sliceDefault = 'percent' in setting ? Math.max(1, Math.floor((space * setting.percent) / 100)) : setting.count;
  return { space, sliceDefault, setting: text };
}

/** The number written to the group's pids.max, or null for "max". */
export function effectivePidsMax(pids: PidsAllocation, node: { pids?: NodePids }): number | null {
  if (pids.max === 'default') return node.pids?.sliceDefault ?? null;
  return pids.max;
}

/**
 * A pids allocation after `input` (undefined keeps it). A cap above the node's PID space is
 * refused: it could never be reached, so it would read as a limit while being none.
 */
export function mergePids(
  current: PidsAllocation,
  input: { max?: number | 'default' | null } | undefined,
  node: { pids?: NodePids },
  who: string,
): PidsAllocation {
  if (input?.max === undefined) return current;
  const space = node.pids?.space;
  if (typeof input.max === 'number' && space !== undefined && input.max > space) {
    throw new SlicedError(
      'EINVAL',
      `${who}: pids.max ${input.max} is above the ${space} tasks this node can hold (min of kernel.pid_max and kernel.threads-max); ` +
        `give at most ${space}, or "none"`,
    );
  }
  return { max: input.max };
}
