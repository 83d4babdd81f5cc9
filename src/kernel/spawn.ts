/**
 * Start a command inside a slice: a small shell writes its own pid into each of the slice's
 * cgroup.procs files (so the command is in the slice before it runs a single instruction),
 * closes every descriptor but 0-2, enters the slice's network namespace if it has one, then
 * execs setpriv to drop to the slice's user and exec the command. Must run as root. The command runs in a session of its
 * own: it never shares the caller's controlling terminal (TIOCSTI, /dev/tty).
 *
 * `inGroups` does only the first step, for work done as root on a slice's behalf (vsys
 * scripts): charged to the slice, with root's rights.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { restoreStreams, shellQuote, type TerminalPlan } from '../core/terminal.js';
import type { SliceProcessPlan } from '../core/exec-plan.js';

export type { SliceProcessPlan } from '../core/exec-plan.js';

/** Exit status of the wrapper when the process could not join the slice's groups. */
export const JOIN_FAILED_STATUS = 125;

/** Write our own pid into each cgroup.procs file listed (one per line) in SLICED_PROCS. */
const JOIN = `set -f
IFS='
'
for f in $SLICED_PROCS; do
  echo $$ > "$f" || { echo "cannot join $f" >&2; exit ${JOIN_FAILED_STATUS}; }
done`;

// Descriptors the caller left open without close-on-exec (any number, hence bash: a POSIX sh
// cannot name fds above 9) would hand root's files, pipes or terminal to the slice.
const JOIN_AND_DROP = `${JOIN}
set +f
for fd in /proc/$$/fd/*; do
  fd=\${fd##*/}
  [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
done
uid=$SLICED_UID gid=$SLICED_GID netns=$SLICED_NETNS
unset SLICED_PROCS SLICED_UID SLICED_GID SLICED_NETNS
if [ -n "$netns" ]; then
  # nsenter, not "ip netns exec": that would remount /sys for the command.
  exec nsenter --net="$netns" -- setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
fi
exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"`;

export interface SpawnInSliceOptions {
  /** Extra environment on top of a clean one (PATH, HOME, USER, LOGNAME, SHELL, SLICE). */
  env?: Record<string, string>;
  cwd?: string;
  stdio?: StdioOptions;
}

function sliceEnv(plan: SliceProcessPlan, extra: Record<string, string> | undefined): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: plan.home,
    USER: plan.user,
    LOGNAME: plan.user,
    SHELL: '/bin/sh',
    SLICE: plan.slice,
    ...extra,
    SLICED_PROCS: plan.procsFiles.join('\n'),
    SLICED_UID: String(plan.uid),
    SLICED_GID: String(plan.gid),
    SLICED_NETNS: plan.netns ?? '',
  };
}

/** What spawnInSlice runs (always with `detached`): for a process that spawns on the caller's behalf (spawn-server.ts). */
export function sliceSpawnArgs(
  plan: SliceProcessPlan,
  command: readonly string[],
  options: Omit<SpawnInSliceOptions, 'stdio'> = {},
): { file: string; args: string[]; env: Record<string, string>; cwd: string | undefined } {
  return { file: '/bin/bash', args: ['-c', JOIN_AND_DROP, 'sliced-exec', ...command], env: sliceEnv(plan, options.env), cwd: options.cwd };
}

export function spawnInSlice(plan: SliceProcessPlan, command: readonly string[], options: SpawnInSliceOptions = {}): ChildProcess {
  const { file, args, env, cwd } = sliceSpawnArgs(plan, command, options);
  return spawn(file, args, {
    stdio: options.stdio ?? 'inherit',
    env,
    detached: true, // setsid(): a new session without a controlling terminal
    ...(cwd ? { cwd } : {}),
  });
}

export interface SpawnOnTerminalOptions {
  env?: Record<string, string>;
  cwd?: string;
  terminal: TerminalPlan;
  /** Descriptor of the caller's terminal that shows the pseudo-terminal's output. */
  outputFd: number;
}

/**
 * Start a command inside a slice on a new pseudo-terminal, relayed to the caller's terminal
 * by script(1) (util-linux), which stays outside the slice as root: it makes the pty, runs
 * the wrapper as the leader of a new session whose controlling terminal is that pty, copies
 * keystrokes and output, passes window-size changes on, and exits with the command's status
 * (128+N when it died of signal N). Streams that are not terminals arrive as descriptors
 * 3..5 and replace the pty in the command. The caller's terminal itself never reaches it.
 */
export function spawnInSliceOnTerminal(plan: SliceProcessPlan, command: readonly string[], options: SpawnOnTerminalOptions): ChildProcess {
  const env = sliceEnv(plan, options.env);
  const { input } = options.terminal;
  const line = [
    // Without keyboard input the caller's terminal keeps its own output processing: no second \r.
    input ? '' : 'stty -opost',
    restoreStreams(options.terminal.passThrough),
    // script runs the line with $SHELL; the command gets the SHELL it was meant to have.
    `SHELL=${shellQuote(env.SHELL!)}`,
    `set -- ${command.map(shellQuote).join(' ')}`,
    JOIN_AND_DROP,
  ]
    .filter(Boolean)
    .join('\n');
  const passed = (fd: number): number | 'ignore' => (options.terminal.passThrough.includes(fd) ? fd : 'ignore');
  const args = ['--quiet', '--return', ...(input ? [] : ['--echo', 'never']), '--command', line, '/dev/null'];
  return spawn('script', args, {
    stdio: [input ? 0 : 'ignore', options.outputFd, 2, passed(0), passed(1), passed(2)],
    env: { ...env, SHELL: '/bin/bash' },
    // script reads the keyboard only in the caller's foreground group (a stopped slicectl's
    // relay then stops too). Without input it is kept out of the terminal's signals: ^C goes
    // to slicectl, which forwards it, while script would end the session and exit 0.
    detached: !input,
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
}

const JOIN_ONLY = `${JOIN}
unset SLICED_PROCS
exec "$@"`;

/**
 * The program, arguments and extra environment that run `command` in the groups whose
 * cgroup.procs files are given, before its first instruction. Exits with JOIN_FAILED_STATUS
 * when a group is gone (the slice is being deleted).
 */
export function inGroups(
  procsFiles: readonly string[],
  command: readonly string[],
): { file: string; args: string[]; env: Record<string, string> } {
  return { file: '/bin/sh', args: ['-c', JOIN_ONLY, 'sliced-join', ...command], env: { SLICED_PROCS: procsFiles.join('\n') } };
}
