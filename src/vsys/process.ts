/**
 * One run of a service script: as root, argv[1] = the slice, a clean environment (SLICE and
 * PATH only), cwd /, nice 0 (not the daemon's raised priority), its own process group (so a
 * timeout reaches whatever it started), in the slice's cgroups (its CPU, memory and I/O are
 * charged to the slice it works for, within the slice's limits), and a parent-death signal
 * (setpriv --pdeathsig) so a crashed daemon leaves no root scripts behind. stderr goes to
 * the vsys log line by line, rate-limited (reading pauses when the budget is spent) so a
 * script that writes to stderr forever cannot flood the log or keep the daemon busy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { inGroups } from '../kernel/spawn.js';
import type { VsysEvents } from './events.js';

export const SERVICE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** stderr lines logged in a burst, then per second; the rest are counted and reported. */
const STDERR_BURST = 50;
const STDERR_PER_SECOND = 5;
const STDERR_LINE_MAX = 2000;
/** Bytes read between two pauses of a flooding stderr. */
const STDERR_PAUSE_AFTER = 64 * 1024;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * What the script's stdin and stdout are: pipes to the daemon (the default), or open FIFOs
 * handed over as they are (a stateful instance), or /dev/null ('ignore').
 */
export interface ServiceStdio {
  stdin: number | 'ignore';
  stdout: number | 'ignore';
}

export class ServiceProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  readonly exited: Promise<Exit>;
  private killTimer: NodeJS.Timeout | null = null;
  private done = false;

  /** `procsFiles`: the cgroup.procs files of the slice's groups, joined before the script starts. */
  constructor(
    script: string,
    readonly slice: string,
    readonly service: string,
    private readonly events: VsysEvents,
    procsFiles: readonly string[],
    stdio?: ServiceStdio,
  ) {
    const run = inGroups(procsFiles, ['setpriv', '--pdeathsig', 'KILL', '--', script, slice]);
    this.child = spawn(run.file, run.args, {
      cwd: '/',
      env: { SLICE: slice, PATH: SERVICE_PATH, ...run.env },
      detached: true,
      stdio: [stdio?.stdin ?? 'pipe', stdio?.stdout ?? 'pipe', 'pipe'],
    });
    // Scripts work for slices: they must not inherit the daemon's raised priority (daemonNice).
    if (this.child.pid !== undefined) {
      try {
        setPriority(this.child.pid, 0);
      } catch {
        // Exited already.
      }
    }
    this.child.stdin?.on('error', () => undefined); // the script stopped reading: not our failure
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.events.record('error', this, `cannot start ${script}: ${err.message}`);
        this.finish();
        resolve({ code: null, signal: null });
      });
      this.child.once('close', (code, signal) => {
        this.finish();
        resolve({ code, signal });
      });
    });
    this.logStderr();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The pipe to the script's stdin (not there when it was given a FIFO or /dev/null). */
  get stdin(): Writable {
    return piped(this.child.stdin, 'stdin', this.service);
  }

  /** The pipe from the script's stdout (not there when it was given a FIFO or /dev/null). */
  get stdout(): Readable {
    return piped(this.child.stdout, 'stdout', this.service);
  }

  get stderr(): Readable {
    return piped(this.child.stderr, 'stderr', this.service);
  }

  /** SIGTERM to the script's process group, SIGKILL after `graceMs`. */
  terminate(graceMs: number): void {
    if (this.done) return;
    this.signal('SIGTERM');
    this.killTimer ??= setTimeout(() => this.signal('SIGKILL'), graceMs);
  }

  kill(): void {
    this.signal('SIGKILL');
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.done || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // The group is gone already.
    }
  }

  private finish(): void {
    this.done = true;
    if (this.killTimer) clearTimeout(this.killTimer);
  }

  private logStderr(): void {
    let partial = '';
    let tokens = STDERR_BURST;
    let refilled = Date.now();
    let dropped = 0;
    let unpaused = 0;
    // Once the script has exited, drain what is left at full speed.
    let exited = false;
    this.child.once('exit', () => {
      exited = true;
      this.stderr.resume();
    });
    const emit = (line: string): void => {
      const now = Date.now();
      tokens = Math.min(STDERR_BURST, tokens + ((now - refilled) / 1000) * STDERR_PER_SECOND);
      refilled = now;
      if (tokens < 1) {
        dropped++;
        return;
      }
      tokens--;
      if (dropped > 0) {
        this.events.record('warn', this, `${dropped} stderr lines dropped (more than ${STDERR_PER_SECOND}/s)`);
        dropped = 0;
      }
      this.events.record('info', this, `stderr: ${line.length > STDERR_LINE_MAX ? `${line.slice(0, STDERR_LINE_MAX)}…` : line}`);
    };
    this.stderr.setEncoding('utf8');
    this.stderr.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      // An endless line must not grow without bound either.
      if (partial.length > STDERR_LINE_MAX) {
        emit(partial);
        partial = '';
      }
      for (const line of lines) emit(line);
      // Flooding: stop reading for a while, so the script blocks, not the daemon. Pausing
      // only after a sizeable amount keeps the drain fast once the script has ended.
      unpaused += text.length;
      if (tokens < 1 && unpaused >= STDERR_PAUSE_AFTER && !exited) {
        unpaused = 0;
        this.stderr.pause();
        setTimeout(() => this.stderr.resume(), 1000 / STDERR_PER_SECOND).unref();
      }
    });
    this.stderr.on('end', () => {
      if (partial) emit(partial);
      if (dropped > 0) this.events.record('warn', this, `${dropped} stderr lines dropped (more than ${STDERR_PER_SECOND}/s)`);
    });
  }
}

function piped<T>(stream: T | null, name: string, service: string): T {
  if (stream === null) throw new Error(`the ${name} of vsys service ${service} is not a pipe to sliced`);
  return stream;
}
