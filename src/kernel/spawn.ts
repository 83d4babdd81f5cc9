/**
 * Start a command inside a slice: a small shell writes its own pid into each of the slice's
 * cgroup.procs files (so the command is in the slice before it runs a single instruction),
 * enters the slice's network namespace if it has one, then execs setpriv to drop to the
 * slice's user and exec the command. Must run as root.
 *
 * `inGroups` does only the first step, for work done as root on a slice's behalf (vsys
 * scripts): charged to the slice, with root's rights.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';

export interface SliceProcessPlan {
  slice: string;
  user: string;
  uid: number;
  gid: number;
  home: string;
  procsFiles: string[];
  /** The slice's network namespace (/run/netns/<name>), or null for the host's network. */
  netns: string | null;
}

/** Exit status of the wrapper when the process could not join the slice's groups. */
export const JOIN_FAILED_STATUS = 125;

/** Write our own pid into each cgroup.procs file listed (one per line) in SLICED_PROCS. */
const JOIN = `set -f
IFS='
'
for f in $SLICED_PROCS; do
  echo $$ > "$f" || { echo "cannot join $f" >&2; exit ${JOIN_FAILED_STATUS}; }
done`;

const JOIN_AND_DROP = `${JOIN}
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

export function spawnInSlice(plan: SliceProcessPlan, command: readonly string[], options: SpawnInSliceOptions = {}): ChildProcess {
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: plan.home,
    USER: plan.user,
    LOGNAME: plan.user,
    SHELL: '/bin/sh',
    SLICE: plan.slice,
    ...options.env,
    SLICED_PROCS: plan.procsFiles.join('\n'),
    SLICED_UID: String(plan.uid),
    SLICED_GID: String(plan.gid),
    SLICED_NETNS: plan.netns ?? '',
  };
  return spawn('/bin/sh', ['-c', JOIN_AND_DROP, 'sliced-exec', ...command], {
    stdio: options.stdio ?? 'inherit',
    env,
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
export function inGroups(procsFiles: readonly string[], command: readonly string[]): { file: string; args: string[]; env: Record<string, string> } {
  return { file: '/bin/sh', args: ['-c', JOIN_ONLY, 'sliced-join', ...command], env: { SLICED_PROCS: procsFiles.join('\n') } };
}
