/**
 * Processes started by a small helper process (plain node, no sliced code loaded) on the
 * caller's behalf. A fork copies the page tables of the process that forks, and the child's
 * exec throws them away again; node waits for that exec before spawn() returns. Forked from
 * an agent (~100 MB, many mappings) under a stream of short tasks that was a fifth of the
 * machine's CPU and stalled the agent's event loop ~10 ms per task; forked from the helper it
 * costs a fraction and the agent does not wait.
 *
 * The helper opens the process's output files itself (descriptors cannot cross the IPC
 * channel), spawns it detached, and reports its pid, a failure to start, and its exit. Asked
 * to, it also writes the pid and start time to a file before it reports them: a caller killed
 * in between (or before it wrote down the pid itself) finds the process there when it starts
 * again, rather than leaving it running unknown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';

export interface ServedSpawn {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string | undefined;
  /** Files for stdout and stderr (opened O_APPEND|O_CREAT|O_NOFOLLOW, mode 0600) in `dir` (made 0700 if missing). */
  output: { dir: string; stdout: string; stderr: string };
  /** Where to write `<note> <pid> <startTicks>` once it runs (replaced by rename, mode 0600), or absent. */
  started?: { file: string; note: string };
}

/** A process spawned by the helper: emits 'spawn', 'error' (it did not start) and 'exit' (code, signal), as a ChildProcess does. */
export class ServedProcess extends EventEmitter {
  pid: number | undefined = undefined;
}

type Report =
  | { n: number; type: 'spawn'; pid: number }
  | { n: number; type: 'error'; message: string }
  | { n: number; type: 'exit'; code: number | null; signal: NodeJS.Signals | null };

// The helper: an ES module run by `node -e`, so it loads nothing but node's own modules.
const HELPER = `
import { spawn } from 'node:child_process';
import { closeSync, constants as C, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
const FLAGS = C.O_WRONLY | C.O_APPEND | C.O_CREAT | C.O_NOFOLLOW;
const send = (m) => process.connected && process.send(m);
process.on('disconnect', () => process.exit(0));
const startTicks = (pid) => {
  const stat = readFileSync('/proc/' + pid + '/stat', 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};
process.on('message', ({ n, file, args, env, cwd, output, started }) => {
  const fds = [];
  try {
    mkdirSync(output.dir, { recursive: true, mode: 0o700 });
    fds.push(openSync(output.stdout, FLAGS, 0o600), openSync(output.stderr, FLAGS, 0o600));
    const child = spawn(file, args, { env, cwd, detached: true, stdio: ['ignore', fds[0], fds[1]] });
    // Written before anything else can happen here, in the same turn as the fork.
    if (started && child.pid !== undefined) {
      try {
        writeFileSync(started.file + '.new', started.note + ' ' + child.pid + ' ' + startTicks(child.pid) + '\\n', { mode: 0o600 });
        renameSync(started.file + '.new', started.file);
      } catch {
        // Ended already, or the folder is gone: nothing to find again.
      }
    }
    child.once('spawn', () => send({ n, type: 'spawn', pid: child.pid }));
    child.once('error', (err) => send({ n, type: 'error', message: err.message }));
    child.once('exit', (code, signal) => send({ n, type: 'exit', code, signal }));
  } catch (err) {
    send({ n, type: 'error', message: err.message });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
});
`;

/** How often a process whose helper died is looked for, until it ends. */
const ORPHAN_POLL_MS = 500;

export class SpawnServer {
  private helper: ChildProcess | null = null;
  private next = 0;
  /** Processes not ended yet, with the helper that started them. */
  private readonly pending = new Map<number, { served: ServedProcess; helper: ChildProcess }>();

  /** `alive(pid)` tells whether a process lives (for those whose helper died before they ended). */
  constructor(private readonly alive: (pid: number) => boolean) {}

  spawn(request: ServedSpawn): ServedProcess {
    const n = ++this.next;
    const served = new ServedProcess();
    const helper = this.started();
    this.pending.set(n, { served, helper });
    helper.send({ n, ...request });
    return served;
  }

  /** Stop the helper; processes it started keep running (they are sessions of their own). */
  close(): void {
    this.pending.clear(); // their ends are no longer reported
    this.helper?.disconnect();
    this.helper = null;
  }

  private started(): ChildProcess {
    if (this.helper?.connected) return this.helper;
    const helper = spawn(process.execPath, ['--input-type=module', '-e', HELPER], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    helper.on('message', (report: Report) => this.receive(report));
    helper.once('exit', () => this.lost(helper));
    helper.on('error', () => this.lost(helper));
    this.helper = helper;
    return helper;
  }

  private receive(report: Report): void {
    const served = this.pending.get(report.n)?.served;
    if (!served) return;
    if (report.type === 'spawn') {
      served.pid = report.pid;
      served.emit('spawn');
      return;
    }
    this.pending.delete(report.n);
    if (report.type === 'error') served.emit('error', new Error(report.message));
    else served.emit('exit', report.code, report.signal);
  }

  /** The helper is gone: what it had not started failed; what runs is watched until it ends (exit status unknown). */
  private lost(helper: ChildProcess): void {
    if (this.helper === helper) this.helper = null;
    for (const [n, { served, helper: by }] of this.pending) {
      if (by !== helper) continue;
      this.pending.delete(n);
      if (served.pid === undefined) {
        served.emit('error', new Error('the process that starts tasks ended'));
        continue;
      }
      const pid = served.pid;
      const poll = (): void => {
        if (this.alive(pid)) setTimeout(poll, ORPHAN_POLL_MS).unref();
        else served.emit('exit', null, null);
      };
      poll();
    }
  }
}
