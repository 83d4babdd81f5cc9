/**
 * The daemon's open-files limit. Every API connection, slice-socket connection, vsys FIFO and
 * pipe of a running call is a file descriptor; the default soft limit (1024 under systemd and
 * most shells) is far below what a node with hundreds of slices and queued calls needs,
 * while the hard limit is usually high (524288 under systemd). Raising the soft limit to the
 * hard one is what systemd recommends for programs that need many descriptors and do not
 * use select(2) (Node does not). Node has no setrlimit, so util-linux's prlimit does it on
 * this process.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface OpenFilesLimit {
  soft: number;
  hard: number;
}

/** This process's RLIMIT_NOFILE ("unlimited" reads as Infinity). */
export function openFilesLimit(): OpenFilesLimit {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').replace('Max open files', '').trim().split(/\s+/);
  const value = (text: string | undefined): number => (text === 'unlimited' ? Infinity : Number(text));
  return { soft: value(soft), hard: value(hard) };
}

/** Raise the soft limit to the hard one; returns the limits before and after (after = before when it could not). */
export function raiseOpenFilesLimit(): { before: OpenFilesLimit; after: OpenFilesLimit; error: string | null } {
  const before = openFilesLimit();
  if (before.soft >= before.hard) return { before, after: before, error: null };
  const hard = Number.isFinite(before.hard) ? String(before.hard) : 'unlimited';
  const result = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], { encoding: 'utf8', timeout: 5000 });
  const error = result.error?.message ?? (result.status === 0 ? null : result.stderr.trim() || `prlimit exited with ${result.status}`);
  return { before, after: openFilesLimit(), error };
}
