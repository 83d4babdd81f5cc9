/** Signals and scheduling-policy changes for processes sliced manages. */
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { isRealtimePolicy, readProcStat } from './procfs.js';

const execFileAsync = promisify(execFile);

/**
 * Put every real-time thread among `tids` back on SCHED_OTHER. Returns the threads that were
 * changed. A SCHED_FIFO task left behind by a deleted slice could otherwise hold a CPU forever.
 */
export async function resetRealtimeThreads(tids: readonly number[]): Promise<number[]> {
  const changed: number[] = [];
  for (const tid of tids) {
    const stat = readProcStat(tid);
    if (!stat || !isRealtimePolicy(stat.policy)) continue;
    // chrt wraps sched_setattr(2), which Node does not expose; never wait on it for long.
    try {
      await execFileAsync('chrt', ['--other', '--pid', '0', String(tid)], { timeout: 5000, killSignal: 'SIGKILL' });
      changed.push(tid);
    } catch {
      // The thread exited meanwhile, or chrt failed: the caller checks what matters to it.
    }
  }
  return changed;
}

/** The threads of a process (/proc/<pid>/task), or none when it is gone. */
export function threadsOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

/** The real-time policy one of the process's threads holds (1 FIFO, 2 RR, 6 DEADLINE), or null. */
export function realtimePolicyOf(pid: number): number | null {
  for (const tid of threadsOf(pid)) {
    const policy = readProcStat(tid, `/proc/${pid}/task`)?.policy;
    if (policy !== undefined && isRealtimePolicy(policy)) return policy;
  }
  return null;
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
