/** Signals and scheduling-policy changes for processes sliced manages. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isRealtimePolicy, readProcStat } from './procfs.js';

/**
 * Put every real-time thread among `tids` back on SCHED_OTHER. Returns the threads that were
 * changed. A SCHED_FIFO task left behind by a deleted slice could otherwise hold a CPU forever.
 */
export function resetRealtimeThreads(tids: readonly number[]): number[] {
  const changed: number[] = [];
  for (const tid of tids) {
    const stat = readProcStat(tid);
    if (!stat || !isRealtimePolicy(stat.policy)) continue;
    // chrt wraps sched_setattr(2), which Node does not expose.
    const result = spawnSync('chrt', ['--other', '--pid', '0', String(tid)], { encoding: 'utf8' });
    if (result.status === 0) changed.push(tid);
  }
  return changed;
}

/** Send a signal to each pid; processes that are already gone are skipped. */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // ESRCH: exited meanwhile.
    }
  }
}

/** The CPU a process last ran on (/proc/<pid>/stat field 39), or null when it is gone. */
export function cpuOfProcess(pid: number): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[36]);
  } catch {
    return null;
  }
}

/** Restrict every thread of a process to one CPU (sched_setaffinity through taskset, which Node lacks). */
export function pinProcessToCpu(pid: number, cpu: number): void {
  const result = spawnSync('taskset', ['--all-tasks', '--cpu-list', '--pid', String(cpu), String(pid)], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(`taskset could not move process ${pid} to CPU ${cpu}: ${(result.stderr || result.error?.message || '').trim()}`);
  }
}
