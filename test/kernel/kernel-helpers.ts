/**
 * Shared pieces of the kernel tests: processes started by the test (tracked by pid so they
 * are always killed), /proc readings, and a cleanup that leaves nothing of ours behind in
 * any hierarchy. Every directory passed here is one the test created (named "sliced-kt…").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Started {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started = new Set<Started>();

/** Start a command; it is tracked so `killStarted()` can always end it by pid. */
export function start(command: string, args: string[]): Started {
  const child = spawn(command, args, { stdio: 'ignore' });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const entry: Started = { child, pid: child.pid, exited };
  started.add(entry);
  void exited.then(() => started.delete(entry));
  return entry;
}

export const busyLoop = (): Started => start('sh', ['-c', 'while :; do :; done']);
export const sleeper = (): Started => start('sleep', ['600']);
/** A shell that ignores SIGTERM (and so does the sleep it waits on). */
export const termIgnorer = (): Started => start('sh', ['-c', 'trap "" TERM; while :; do sleep 1; done']);

/** SIGKILL every process this file started and wait until each is reaped. */
export async function killStarted(): Promise<void> {
  const all = [...started];
  for (const s of all) {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const timeout = new AbortController();
  await Promise.race([Promise.all(all.map((s) => s.exited)), sleep(5000, undefined, { signal: timeout.signal }).catch(() => undefined)]);
  timeout.abort();
}

export function isAlive(pid: number): boolean {
  const state = procState(pid);
  return state !== null && state !== 'Z' && state !== 'X';
}

/** Field 3 of /proc/<pid>/stat (R, S, D, Z, ...), or null when the process is gone. */
export function procState(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

/** /proc/<pid>/cgroup as a map from controller list ("cpu", "memory", "" for cgroup2) to path. */
export function procCgroups(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (match) out.set(match[1]!, match[2]!);
  }
  return out;
}

export function readIdsOf(file: string): number[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
}

export async function waitFor(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** All directories below `dir` (inclusive), deepest first. */
function dirsDeepestFirst(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...dirsDeepestFirst(join(dir, entry.name)));
  }
  out.push(dir);
  return out;
}

/**
 * Remove the test's root groups: thaw, SIGKILL whatever is still inside (only processes the
 * test put there), wait until the groups are empty, then rmdir bottom-up. Refuses any
 * directory not named "sliced-…", as a guard against ever touching someone else's group.
 */
export async function removeTree(roots: readonly string[]): Promise<void> {
  for (const root of roots) {
    if (!basename(root).startsWith('sliced-')) throw new Error(`refusing to clean ${root}: not a sliced- group`);
  }
  const dirs = roots.flatMap(dirsDeepestFirst);
  for (const dir of dirs) {
    for (const [file, value] of [
      ['freezer.state', 'THAWED'],
      ['cgroup.freeze', '0'],
    ] as const) {
      if (existsSync(join(dir, file))) {
        try {
          writeFileSync(join(dir, file), value);
        } catch {
          // best effort
        }
      }
    }
  }
  const pidsLeft = (): number[] =>
    dirs.flatMap((dir) => (existsSync(join(dir, 'cgroup.procs')) ? readIdsOf(join(dir, 'cgroup.procs')) : []));
  for (const pid of pidsLeft()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await waitFor('the test groups to empty', () => pidsLeft().length === 0).catch(() => undefined);
  const failures: string[] = [];
  for (const dir of dirs) {
    // A group whose last task has just exited can stay busy for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        if (existsSync(dir)) rmdirSync(dir);
        break;
      } catch (err) {
        if (attempt < 50) {
          await sleep(20);
          continue;
        }
        failures.push(`${dir}: ${(err as Error).message}`);
        break;
      }
    }
  }
  if (failures.length > 0) throw new Error(`could not remove test groups:\n${failures.join('\n')}`);
}
