/**
 * Readers for /proc: mounts, a process's cgroups, scheduler statistics, CPU totals.
 * Every reader takes the proc root so tests can point it at a fixture.
 */
import { readFileSync } from 'node:fs';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  /** The mount source ("sliced" for our FUSE mount, a device, "none"). */
  source: string;
  superOptions: string[];
}

/** Parse /proc/self/mountinfo; octal escapes (\040 for space) are decoded. */
export function readMounts(procRoot = '/proc'): MountEntry[] {
  const text = readFileSync(`${procRoot}/self/mountinfo`, 'utf8');
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fsType, source, superOpts] = right.split(' ');
    if (!fields[4] || !fsType) continue;
    mounts.push({
      mountPoint: unescapeMount(fields[4]),
      fsType,
      source: unescapeMount(source ?? ''),
      superOptions: (superOpts ?? '').split(','),
    });
  }
  return mounts;
}

function unescapeMount(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export interface ProcCgroupLine {
  hierarchyId: number;
  /** Controllers bound to the hierarchy ("cpu", "name=systemd"); empty for cgroup2. */
  controllers: string[];
  path: string;
}

/** Parse /proc/<pid>/cgroup. */
export function readProcCgroups(pid: number | 'self', procRoot = '/proc'): ProcCgroupLine[] {
  const text = readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8');
  return parseProcCgroups(text);
}

export function parseProcCgroups(text: string): ProcCgroupLine[] {
  const lines: ProcCgroupLine[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    lines.push({
      hierarchyId: Number(line.slice(0, first)),
      controllers: controllers ? controllers.split(',') : [],
      path: line.slice(second + 1),
    });
  }
  return lines;
}

export interface SchedStat {
  /** Nanoseconds spent on a CPU. */
  runNs: number;
  /** Nanoseconds spent runnable but waiting for a CPU. */
  waitNs: number;
}

/** /proc/<pid>/task/<tid>/schedstat, or null if the thread is gone. */
export function readSchedStat(tid: number, procRoot = '/proc'): SchedStat | null {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${tid}/schedstat`, 'utf8');
  } catch {
    return null;
  }
  const space = text.indexOf(' ');
  const second = text.indexOf(' ', space + 1);
  return { runNs: Number(text.slice(0, space)), waitNs: Number(text.slice(space + 1, second)) };
}

export interface ProcStat {
  state: string;
  /** Parent process id (0 for none). */
  parentPid: number;
  /** Its process group id. */
  processGroup: number;
  /** Start time in clock ticks since boot. */
  startTicks: number;
  /** Scheduling policy number: 0 OTHER, 1 FIFO, 2 RR, 3 BATCH, 5 IDLE, 6 DEADLINE. */
  policy: number;
  rtPriority: number;
  /** Kernel task flags (PF_*). */
  flags: number;
}

/** Fields of /proc/<pid>/stat that sliced needs, or null if the task is gone. */
export function readProcStat(pid: number, procRoot = '/proc'): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3].
  return {
    state: rest[0] ?? '?',
    parentPid: Number(rest[1]),
    processGroup: Number(rest[2]),
    flags: Number(rest[6]),
    startTicks: Number(rest[19]),
    rtPriority: Number(rest[37]),
    policy: Number(rest[38]),
  };
}

export const SCHED_FIFO = 1;
export const SCHED_RR = 2;
export const SCHED_DEADLINE = 6;

export function isRealtimePolicy(policy: number): boolean {
  return policy === SCHED_FIFO || policy === SCHED_RR || policy === SCHED_DEADLINE;
}

/** Busy CPU time of the whole machine in nanoseconds, from /proc/stat (idle and iowait excluded). */
export function readMachineBusyNs(procRoot = '/proc', ticksPerSecond = 100): number {
  const text = readFileSync(`${procRoot}/stat`, 'utf8');
  const line = text.slice(0, text.indexOf('\n'));
  const values = line.split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = values;
  return ((user + nice + system + irq + softirq + steal) * 1e9) / ticksPerSecond;
}

export function processExists(pid: number, procRoot = '/proc'): boolean {
  return readProcStat(pid, procRoot) !== null;
}

/** Exists and has not exited (a zombie is listed in /proc but has exited). */
export function processAlive(pid: number, procRoot = '/proc'): boolean {
  const state = readProcStat(pid, procRoot)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

const PF_KTHREAD = 0x00200000;

/** Kernel threads cannot be moved between cgroups. */
export function isKernelThread(pid: number, procRoot = '/proc'): boolean {
  const stat = readProcStat(pid, procRoot);
  return stat !== null && (stat.flags & PF_KTHREAD) !== 0;
}

/**
 * The /proc readings the CPU controller needs, behind one interface so the cgroup v2
 * fixture tests can drive the controller with a simulated kernel.
 */
export interface SchedProbe {
  machineBusyNs(): number;
  uptimeSeconds(): number;
  schedStat(tid: number): SchedStat | null;
  /** Whether the thread was created after `uptime` (seconds since boot). */
  startedSince(tid: number, uptime: number): boolean;
}

const CLOCK_TICKS_PER_SECOND = 100;

export const procSchedProbe: SchedProbe = {
  machineBusyNs: () => readMachineBusyNs(),
  uptimeSeconds: () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]),
  schedStat: (tid) => readSchedStat(tid),
  startedSince(tid, uptime) {
    const stat = readProcStat(tid);
    return stat !== null && stat.startTicks / CLOCK_TICKS_PER_SECOND >= uptime - 0.01;
  },
};
