/**
 * A real sliced daemon for end-to-end tests: its own state and run directories under /tmp
 * and its own cgroup root ("sliced-t<pid>-<n>"), so tests never touch a production
 * instance. `destroy()` stops it and runs `sliced --cleanup`, which removes every group and
 * user it made; the test then checks that nothing is left.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../../src/cli/client.js';
import { claimNetSlot, type NetSlot } from './net-slot.js';
import { SLOW } from './env.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/**
 * The sliced under test: scripts/test installs it into a prefix every user can read
 * (SLICED_TEST_PREFIX), since slices' users run slicectl and the checkout may be private
 * (a clone under /root is 0700). Run by hand, a test uses the checkout's build.
 */
export const INSTALLED = process.env.SLICED_TEST_PREFIX ?? ROOT;
export const SLICED = join(INSTALLED, 'bin', 'sliced.js');
export const SLICECTL = join(INSTALLED, 'bin', 'slicectl.js');

let counter = 0;

/** A TCP port free on 127.0.0.1 right now (for --metrics-port). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  uid?: number;
  gid?: number;
  input?: string;
  env?: Record<string, string>;
}

export function run(command: string, args: string[], options: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
      cwd: '/',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code: code ?? 128 + (signal ? 9 : 0), stdout, stderr }));
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** uid and gid of a Unix user (e.g. a slice's "sl-<name>"), to run things as it. */
export function userIds(user: string): { uid: number; gid: number } {
  const id = (flag: string): number => Number(spawnSync('id', [flag, user], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g') };
}

export class TestDaemon {
  readonly dir: string;
  readonly cgroupRoot: string;
  readonly socket: string;
  readonly runDir: string;
  readonly stateDir: string;
  readonly args: string[];
  /** Network objects of this daemon: its own tag, bridge and address pools. */
  readonly net: { tag: string; pool4: string; pool6: string };
  private readonly slot: NetSlot;
  private child: ChildProcess | null = null;
  log = '';
  /**
   * A cgroup v2 directory the daemon joins before it execs (as systemd places a service's
   * process), or null: the test's own group.
   */
  cgroup: string | null = null;

  private constructor(extraArgs: string[]) {
    this.dir = mkdtempSync(join(tmpdir(), 'sliced-test-'));
    chmodSync(this.dir, 0o755); // like /run: slices must reach their own sockets below it
    this.cgroupRoot = `sliced-t${process.pid}-${++counter}`;
    this.runDir = join(this.dir, 'run');
    this.stateDir = join(this.dir, 'state');
    this.socket = join(this.runDir, 'sliced.sock');
    // Interface names, nft tables and pools are global: every test daemon claims its own
    // slot, so concurrent test files and runs (and other daemons) never meet.
    this.slot = claimNetSlot();
    this.net = { tag: this.slot.tag, pool4: this.slot.pool4, pool6: this.slot.pool6 };
    this.args = [
      '--net-tag',
      this.net.tag,
      '--net-pool4',
      this.net.pool4,
      '--net-pool6',
      this.net.pool6,
      '--state-dir',
      this.stateDir,
      '--run-dir',
      this.runDir,
      '--cgroup-root',
      this.cgroupRoot,
      '--stop-grace',
      '1000',
      '--log-level',
      'debug',
      ...extraArgs,
    ];
  }

  static async start(extraArgs: string[] = [], options: { cgroup?: string } = {}): Promise<TestDaemon> {
    const daemon = new TestDaemon(extraArgs);
    daemon.cgroup = options.cgroup ?? null;
    try {
      await daemon.launch();
    } catch (err) {
      // Nothing of a failed start may stay behind: its kernel objects, its directories.
      await daemon.destroy().catch(() => {
        rmSync(daemon.dir, { recursive: true, force: true });
        daemon.slot.release();
      });
      throw err;
    }
    return daemon;
  }

  get api(): ApiClient {
    return new ApiClient(this.socket);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async launch(): Promise<void> {
    const command = [process.execPath, SLICED, ...this.args];
    const joinGroup = ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.cgroup ?? ''];
    const child =
      this.cgroup === null
        ? spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn('/bin/sh', [...joinGroup, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    const limitMs = 20_000 * SLOW;
    const deadline = Date.now() + limitMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`sliced exited with ${child.exitCode} during start:\n${this.log}`);
      if (existsSync(this.socket)) {
        try {
          await this.api.get('/v1/node');
          return;
        } catch {
          // Not ready yet.
        }
      }
      await sleep(50);
    }
    throw new Error(`sliced did not start within ${limitMs / 1000} s:\n${this.log}`);
  }

  /** Stop the daemon with a signal and wait for it to exit; slices keep running. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    const code = await exited;
    this.child = null;
    return code;
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.launch();
  }

  cli(args: string[], options: RunOptions = {}): Promise<CliResult> {
    return run(process.execPath, [SLICECTL, '--socket', this.socket, ...args], options);
  }

  async cliJson<T = unknown>(args: string[]): Promise<T> {
    const result = await this.cli(['--json', ...args]);
    if (result.code !== 0) throw new Error(`slicectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  }

  /** Stop, remove every kernel object with `sliced --cleanup`, and delete the directories. */
  async destroy(): Promise<void> {
    await this.stop();
    const result = await run(process.execPath, [SLICED, ...this.args, '--cleanup']);
    if (result.code !== 0) throw new Error(`sliced --cleanup failed: ${result.stderr}`);
    rmSync(this.dir, { recursive: true, force: true });
    this.slot.release();
  }
}
