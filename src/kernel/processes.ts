/** Signals and scheduling-policy changes for processes sliced manages. */
import { spawnSync } from 'node:child_process';
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
