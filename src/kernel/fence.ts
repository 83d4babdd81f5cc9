/**
 * The fence of a node's tasks: a watchdog process, detached from sliced, that kills the
 * process groups listed in a file once the deadline in that file has passed. The agent keeps
 * the deadline just before the earliest end of its cluster lease and lists the tasks another
 * node could be given if this one were taken for dead. So when the agent dies, or is cut off
 * from etcd and cannot renew, those tasks are gone before any other node may start them; an
 * agent that restarts in time renews the deadline and its tasks live on.
 *
 * The file: the deadline (ms since the epoch) on the first line, then "PGID STARTTICKS" per
 * task (the start time keeps a reused pid from being taken for the task). The watchdog exits
 * when the file is removed (sliced --cleanup).
 */
import { spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { processAlive, readProcStat } from './procfs.js';
import { SlicedError } from '../core/errors.js';

/** bash 5: $EPOCHREALTIME gives the time without a fork per round. */
const WATCHDOG = `file=$1
while [ -e "$file" ]; do
  now=\${EPOCHREALTIME/[.,]/}; now=\${now:0:13}
  deadline=
  targets=()
  { read -r deadline; while read -r pgid start; do targets+=("$pgid:$start"); done; } < "$file" 2>/dev/null
  if [ -n "$deadline" ] && [ "$now" -gt "$deadline" ]; then
    for t in "\${targets[@]}"; do
      pgid=\${t%%:*}; start=\${t#*:}
      line=
      read -r line < "/proc/$pgid/stat" 2>/dev/null || continue
      rest=\${line##*) }
      set -- $rest
      [ "\${20}" = "$start" ] && kill -KILL -- "-$pgid" 2>/dev/null
    done
  fi
  sleep 0.2
done`;

export interface FencedTask {
  pgid: number;
  startTicks: number;
}

/** Write the fence file atomically (a watchdog never reads half of it). */
export function writeFence(file: string, deadline: number, tasks: readonly FencedTask[]): void {
  const text = [String(Math.floor(deadline)), ...tasks.map((t) => `${t.pgid} ${t.startTicks}`)].join('\n') + '\n';
  writeFileSync(`${file}.new`, text, { mode: 0o600 });
  renameSync(`${file}.new`, file);
}

/** Start the watchdog of `file` unless one runs already (its pid and start time in `<file>.pid`). */
export function startFenceWatchdog(file: string): number {
  try {
    const [pid, start] = readFileSync(`${file}.pid`, 'utf8').trim().split(' ').map(Number);
    if (pid && processAlive(pid) && readProcStat(pid)?.startTicks === start) return pid;
  } catch {
    // None yet.
  }
  const child = spawn('/bin/bash', ['-c', WATCHDOG, 'sliced-fence', file], { detached: true, stdio: 'ignore' });
  // Its 'error' (no descriptor or process left) must not end the daemon: the missing pid says it.
  child.once('error', () => undefined);
  child.unref();
  if (child.pid === undefined)
    throw new SlicedError('EIO', `cannot start the fence watchdog of ${file} (out of file descriptors or processes?)`);
  const pid = child.pid;
  writeFileSync(`${file}.pid`, `${pid} ${readProcStat(pid)?.startTicks ?? 0}\n`, { mode: 0o600 });
  return pid;
}
