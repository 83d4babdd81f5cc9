/**
 * `slicectl exec`: run a command as the slice's user inside its groups, like
 * `systemd-run --scope`: stdio is passed through, signals sent to slicectl are forwarded,
 * and the command's exit status is returned (128+N when it died of signal N).
 *
 * The command runs in a session of its own and never gets a descriptor of the caller's
 * terminal: when a standard stream is a terminal, the command gets a new pseudo-terminal
 * instead, relayed by script(1) (see src/core/terminal.ts).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { isatty } from 'node:tty';
import { spawnInSlice, spawnInSliceOnTerminal, type SliceProcessPlan } from '../kernel/spawn.js';
import { isRealtimePolicy, readProcStat } from '../kernel/procfs.js';
import { terminalPlan } from '../core/terminal.js';
import { CliError, EXIT } from './client.js';

export interface ExecOptions {
  env: Record<string, string>;
  cwd?: string;
}

const POLICY_NAMES: Record<number, string> = { 1: 'SCHED_FIFO', 2: 'SCHED_RR', 6: 'SCHED_DEADLINE' };

/**
 * Slices may not hold real-time policies (their cpu groups have no real-time runtime, so the
 * kernel refuses such a task): when slicectl was started with one (`chrt -f 5 slicectl exec`),
 * it drops to SCHED_OTHER first, which its child inherits, and says so.
 */
function leaveRealtimePolicy(): void {
  const stat = readProcStat(process.pid);
  if (!stat || !isRealtimePolicy(stat.policy)) return;
  const policy = POLICY_NAMES[stat.policy] ?? `policy ${stat.policy}`;
  // chrt wraps sched_setattr(2), which Node does not expose; the main thread is the one that forks.
  const result = spawnSync('chrt', ['--other', '--pid', '0', String(process.pid)], { encoding: 'utf8', timeout: 5000 });
  if (result.status !== 0) {
    throw new CliError(
      `slicectl runs with real-time policy ${policy}, which processes in a slice may not hold, and could not drop it: ` +
        `${(result.stderr || result.error?.message || '').trim()}`,
      EXIT.refused,
      'EPERM',
    );
  }
  process.stderr.write(
    `slicectl: the command runs with SCHED_OTHER, not ${policy}: processes in a slice may not hold real-time policies\n`,
  );
}

/** The process script(1) started as the pty session's leader (the command), once it exists. */
function sessionLeaderOf(relay: number): number | null {
  try {
    const first = readFileSync(`/proc/${relay}/task/${relay}/children`, 'utf8').trim().split(' ')[0];
    return first ? Number(first) : null;
  } catch {
    return null;
  }
}

export function runInSlice(plan: SliceProcessPlan, command: string[], options: ExecOptions): Promise<number> {
  if (command.length === 0)
    throw new CliError('exec needs a command to run, e.g. slicectl exec --slice web -- sleep 10', EXIT.usage, 'EINVAL');
  if (process.getuid?.() !== 0) {
    throw new CliError("exec must run as root: it switches to the slice's user and joins its cgroups", EXIT.permission, 'EPERM');
  }
  const env: Record<string, string> = {
    ...(process.env.TERM ? { TERM: process.env.TERM } : {}),
    ...(process.env.LANG ? { LANG: process.env.LANG } : {}),
    ...options.env,
  };
  leaveRealtimePolicy();
  const terminal = terminalPlan([isatty(0), isatty(1), isatty(2)]);
  const cwd = options.cwd ? { cwd: options.cwd } : {};
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    if (terminal) {
      // Without a terminal on stdout or stderr, output (typed characters' echo) goes to stdin's.
      const outputFd =
        terminal.output === 'stdout'
          ? 1
          : terminal.output === 'stderr'
            ? 2
            : openSync('/proc/self/fd/0', fsConstants.O_WRONLY | fsConstants.O_NOCTTY);
      try {
        child = spawnInSliceOnTerminal(plan, command, { env, terminal, outputFd, ...cwd });
      } finally {
        if (terminal.output === 'stdin') closeSync(outputFd);
      }
    } else {
      child = spawnInSlice(plan, command, { env, stdio: 'inherit', ...cwd });
    }
    // Signals go to the command's process group, as a terminal's would; with a pty that is the
    // session script started (script itself would end the session and exit 0).
    const forward = (signal: NodeJS.Signals): void => {
      const target = terminal && child.pid !== undefined ? sessionLeaderOf(child.pid) : (child.pid ?? null);
      try {
        if (target === null) child.kill(signal);
        else process.kill(-target, signal);
      } catch {
        // Already gone.
      }
    };
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGQUIT'];
    const handlers = signals.map((signal) => [signal, () => forward(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    child.on('error', (err: NodeJS.ErrnoException) => {
      for (const [s, handler] of handlers) process.off(s, handler);
      if (terminal && err.code === 'ENOENT') {
        reject(
          new CliError(
            'a standard stream is a terminal, and relaying a pseudo-terminal to it needs script(1) from util-linux (Debian package ' +
              'bsdutils), which is missing; install it, or redirect stdin, stdout and stderr away from the terminal',
            EXIT.refused,
            'EIO',
          ),
        );
      } else {
        reject(new CliError(`cannot start ${terminal ? 'script' : '/bin/sh'}: ${err.message}`, EXIT.refused, 'EIO'));
      }
    });
    child.on('exit', (code, signal) => {
      for (const [s, handler] of handlers) process.off(s, handler);
      resolve(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1));
    });
  });
}
