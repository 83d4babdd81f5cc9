/**
 * Cluster tasks as the machine sees them, for tests and benchmarks whose agents share one
 * machine: each task's running instances, found by the SLICED_TASK_ID sliced puts in a task's
 * environment, and a sampler that tells whether a task ever ran twice at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLOW } from './env.js';

/**
 * The running instances of each task on this machine (all agents share it): the process
 * groups of processes with the task's SLICED_TASK_ID in their environment (a task's children,
 * and a shell's fork before it execs, are in its group).
 */
export function taskProcesses(ids: ReadonlySet<string>): Map<string, number[]> {
  const found = new Map<string, Set<number>>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let env: string;
    let group: number;
    try {
      env = readFileSync(`/proc/${entry}/environ`, 'latin1');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      group = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    } catch {
      continue;
    }
    const m = /(?:^|\0)SLICED_TASK_ID=([0-9a-f]{12})(?:\0|$)/.exec(env);
    if (m && ids.has(m[1]!)) found.set(m[1]!, (found.get(m[1]!) ?? new Set()).add(group));
  }
  return new Map([...found].map(([id, groups]) => [id, [...groups]]));
}

/** Sample every 50 ms until stopped: the largest number of processes one task had at once. */
export function watchTwice(ids: ReadonlySet<string>): { stop: () => number } {
  let most = 0;
  const timer = setInterval(() => {
    for (const pids of taskProcesses(ids).values()) most = Math.max(most, pids.length);
  }, 50);
  timer.unref(); // a failed test must not keep the file running
  return {
    stop: () => {
      clearInterval(timer);
      return most;
    },
  };
}

/** Polls `probe` every 50 ms until it returns a value, which is returned; throws naming `what` past the timeout (times SLOW). */
export async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs * SLOW;
  let last: unknown;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    last = value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}
