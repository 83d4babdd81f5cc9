/**
 * Processes for tests of refusals: a pid nobody uses, a kernel thread, and a process of our
 * own in a memory cgroup of our own (outside any daemon's groups), removed again by `release`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isKernelThread } from '../../src/kernel/procfs.js';

/** A pid below pid_max that no process or thread has now (/proc/<tid> exists for threads too). */
export function freePid(): number {
  const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  for (let pid = max - 1; pid > 1; pid--) if (!existsSync(`/proc/${pid}`)) return pid;
  throw new Error('no free pid');
}

/** A kernel thread visible here (none inside a PID namespace), or null. */
export function visibleKernelThread(): number | null {
  for (const entry of readdirSync('/proc')) {
    if (/^\d+$/.test(entry) && isKernelThread(Number(entry))) return Number(entry);
  }
  return null;
}

/** The memory controller's mount: v1 hierarchy or the v2 unified one, or null. */
function memoryMount(): string | null {
  if (existsSync('/sys/fs/cgroup/memory/cgroup.procs')) return '/sys/fs/cgroup/memory';
  if (existsSync('/sys/fs/cgroup/cgroup.controllers') && readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').includes('memory'))
    return '/sys/fs/cgroup';
  return null;
}

/**
 * A sleep in a memory cgroup made for it at the top of the memory hierarchy: it joins the
 * group itself before it execs, so no process is moved out of a group someone else made.
 */
export async function processInOwnMemoryCgroup(name: string): Promise<{ pid: number; group: string; release: () => Promise<void> } | null> {
  const mount = memoryMount();
  if (mount === null) return null;
  const group = `${mount}/${name}`;
  mkdirSync(group);
  const child = spawn('sh', ['-c', `echo $$ > ${group}/cgroup.procs && exec sleep 60`], { stdio: 'ignore' });
  const release = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    for (let i = 0; i < 100 && existsSync(group); i++) {
      try {
        rmdirSync(group);
      } catch {
        await sleep(20); // the killed process leaves the group a moment after it is reaped
      }
    }
  };
  for (let i = 0; i < 100; i++) {
    if (readFileSync(`${group}/cgroup.procs`, 'utf8').split('\n').includes(String(child.pid))) return { pid: child.pid!, group, release };
    if (child.exitCode !== null) break;
    await sleep(20);
  }
  await release();
  throw new Error(`the test process did not join ${group}`);
}
