/**
 * cgroup v2 backend: one hierarchy, cpu.weight / cpu.max / memory.max, cgroup.freeze,
 * cgroup.kill and cpu.stat. Controllers are enabled top-down through cgroup.subtree_control;
 * because of the "no internal processes" rule, groups that have children (the root and the
 * domains) never hold processes, and slices are leaves. The group sliced manages holds no
 * processes either: the daemon first moves itself into the supervisor leaf beside its root
 * group (src/core/delegation.ts).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CPU_PERIOD_US,
  cpuQuotaUs,
  type CgroupBackend,
  type CpuThrottleStats,
  type GroupPath,
  type IoStats,
  type MemoryStats,
  type PidsStats,
  type Pressure,
  type PressureResource,
} from './backend.js';
import {
  PolledFiles,
  childDirs,
  listedDevices,
  makeDir,
  readIds,
  readKeyValues,
  readPidsFiles,
  readPressureFile,
  readText,
  removeDir,
  writePidsMax,
  writeText,
  killEach,
  processGroupDirectory,
} from './files.js';
import { SlicedError } from '../../core/errors.js';
import { bfqWeight } from '../../core/io.js';
import { IO_CAP_FIELDS, IO_WEIGHT_DEFAULT, type IoDeviceLimit, type MemoryAllocation } from '../../core/model.js';
import { readProcStat } from '../procfs.js';
import {
  SUPERVISOR_GROUP,
  delegationRecordSchema,
  mergeRecord,
  sortMembers,
  strangersMessage,
  type DelegationRecord,
} from '../../core/delegation.js';

export interface V2Layout {
  /** Mount point of the cgroup2 hierarchy. */
  mount: string;
  /**
   * The group sliced manages: the daemon's own group, or the parent of the supervisor leaf
   * when the daemon runs in that leaf.
   */
  own: string;
  /** Root group directory for sliced's groups (a child of `own`). */
  root: string;
  /**
   * The leaf beside `root` for the daemon's own processes (`own`/supervisor), or absent where
   * the daemon needs none: the root of the hierarchy, which may hold processes and children.
   */
  supervisor?: string | null;
  /** Where the delegation record is kept (what sliced made in `own`), for `sliced --cleanup`. */
  recordFile?: string;
  /** Controllers to enable for slices (io in addition when the kernel offers it). */
  controllers?: string[];
}

/** What init() needs to know of processes, behind an interface so fixture tests can simulate them. */
export interface ProcessProbe {
  /** The daemon's pid. */
  readonly self: number;
  /** Parent pid, 0 for none, null when the process is gone. */
  parentOf(pid: number): number | null;
  /** The command name (comm), or null when the process is gone. */
  commandOf(pid: number): string | null;
}

export const PROC_PROBE: ProcessProbe = {
  self: process.pid,
  parentOf: (pid) => readProcStat(pid)?.parentPid ?? null,
  commandOf: (pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return null;
    }
  },
};

const DEFAULT_CONTROLLERS = ['cpu', 'memory'];
/**
 * Enabled when available: without io, I/O allocations other than the defaults are refused;
 * without pids, slices have no task limit (reported by pidsUnavailable).
 */
const OPTIONAL_CONTROLLERS = ['io', 'pids'];

export class CgroupV2Backend implements CgroupBackend {
  readonly kind = 'v2' as const;
  private readonly polled = new PolledFiles();
  private readonly layout: V2Layout;
  private controllers: string[];
  /** What the daemon's own group offers, read by init(). */
  private available: string[] = [];
  /** Groups whose subtree_control already has our controllers. */
  private readonly enabled = new Set<string>();
  private readonly processes: ProcessProbe;

  constructor(layout: V2Layout, processes: ProcessProbe = PROC_PROBE) {
    this.layout = layout;
    this.controllers = layout.controllers ?? DEFAULT_CONTROLLERS;
    this.processes = processes;
  }

  rootDirectories(): Record<string, string> {
    return { unified: this.layout.root };
  }

  init(rootWeight: number): void {
    const available = readText(join(this.layout.own, 'cgroup.controllers')).trim().split(/\s+/);
    const missing = this.controllers.filter((c) => !available.includes(c));
    if (missing.length > 0) {
      throw new SlicedError(
        'EIO',
        `cgroup v2 controllers ${missing.join(', ')} are not available in ${this.layout.own} (it offers: ${available.join(' ') || 'none'}); delegate them to sliced's cgroup`,
      );
    }
    this.available = available;
    this.controllers = [...this.controllers, ...OPTIONAL_CONTROLLERS.filter((c) => available.includes(c) && !this.controllers.includes(c))];
    const before = subtreeControl(this.layout.own);
    const supervisorMade = this.enterSupervisor();
    this.enableControllers(this.layout.own);
    if (this.layout.recordFile) {
      // The root group's controllers are the system's: what sliced turns on there stays on.
      const added = this.layout.supervisor ? this.controllers.filter((c) => !before.includes(c)) : [];
      const now = { managed: this.layout.own, supervisorMade, controllersAdded: added };
      writeRecord(this.layout.recordFile, mergeRecord(readRecord(this.layout.recordFile), now));
    }
    makeDir(this.layout.root);
    this.setCpuWeight([], rootWeight);
  }

  /**
   * Refuse a managed group that holds processes sliced did not start; read-only, so the start
   * can check it before it touches anything (and init() checks again).
   */
  checkDelegation(): void {
    const strangers = this.groupMembers().strangers;
    if (strangers.length > 0) {
      const named = strangers.map((pid) => ({ pid, command: this.processes.commandOf(pid) }));
      throw new SlicedError('EBUSY', strangersMessage(this.layout.own, named), { pids: strangers });
    }
  }

  private groupMembers(): { ours: number[]; strangers: number[] } {
    if (!this.layout.supervisor) return { ours: [], strangers: [] };
    return sortMembers(readIds(join(this.layout.own, 'cgroup.procs')), this.processes.self, (pid) => this.processes.parentOf(pid));
  }

  /**
   * Move the daemon and the processes it started from the managed group into the supervisor
   * leaf, so that the group may enable controllers for its children. Processes are never
   * moved out of the memory cgroup they started in except into a descendant of it: the leaf
   * is a child of the group, so the daemon stays inside the accounting it was started in
   * (a systemd service's MemoryMax= still covers it). Returns whether the leaf was made now.
   */
  private enterSupervisor(): boolean {
    const leaf = this.layout.supervisor;
    if (!leaf) return false;
    this.checkDelegation();
    const made = !existsSync(leaf);
    makeDir(leaf);
    for (const pid of this.groupMembers().ours) {
      try {
        // One write moves the whole process, every thread of it (cgroup.procs, not cgroup.threads).
        this.writeControl(join(leaf, 'cgroup.procs'), String(pid));
      } catch (err) {
        if (pid !== this.processes.self && this.processes.parentOf(pid) === null) continue; // a helper that exited meanwhile
        throw err;
      }
    }
    return made;
  }

  /** The supervisor leaf, where the daemon and its helpers run, or null without one. */
  supervisorDirectory(): string | null {
    return this.layout.supervisor ?? null;
  }

  /**
   * For `sliced --cleanup`, after the root group is gone: undo what the record says sliced
   * made in the managed group. The supervisor leaf goes only when sliced made it and it is
   * empty; the controllers sliced added are switched off only when no child group is left, so
   * nothing another program put there loses its limits. Returns what had to stay, and why.
   */
  releaseDelegation(): string[] {
    const file = this.layout.recordFile;
    const record = file ? readRecord(file) : null;
    if (!file || !record || record.managed !== this.layout.own) return [];
    const left: string[] = [];
    const leaf = join(this.layout.own, SUPERVISOR_GROUP);
    let supervisorMade = record.supervisorMade;
    if (supervisorMade && existsSync(leaf)) {
      try {
        this.removeGroupDir(leaf);
        supervisorMade = false;
      } catch (err) {
        left.push(`${leaf} (${(err as Error).message})`);
      }
    } else {
      supervisorMade = false;
    }
    let controllersAdded = record.controllersAdded;
    const children = childDirs(this.layout.own);
    const enabled = subtreeControl(this.layout.own);
    const off = controllersAdded.filter((c) => enabled.includes(c));
    if (off.length > 0 && children.length === 0) {
      this.writeControl(join(this.layout.own, 'cgroup.subtree_control'), off.map((c) => `-${c}`).join(' '));
      controllersAdded = [];
    } else if (off.length === 0) {
      controllersAdded = [];
    } else {
      left.push(
        `controllers ${off.join(' ')} in ${join(this.layout.own, 'cgroup.subtree_control')} (child groups remain: ${children.join(' ')})`,
      );
    }
    if (!supervisorMade && controllersAdded.length === 0) rmSync(file, { force: true });
    else writeRecord(file, { managed: record.managed, supervisorMade, controllersAdded });
    return left;
  }

  /** rmdir of a group outside the root group (the supervisor leaf); fails while it holds processes. */
  protected removeGroupDir(dir: string): void {
    removeDir(dir);
  }

  /** Writes to cgroup.subtree_control and cgroup.procs, where the kernel's placement rules apply. */
  protected writeControl(path: string, value: string): void {
    writeText(path, value);
  }

  private enableControllers(dir: string): void {
    if (this.enabled.has(dir)) return;
    const wanted = this.controllers.map((c) => `+${c}`).join(' ');
    try {
      this.writeControl(join(dir, 'cgroup.subtree_control'), wanted);
    } catch (err) {
      throw new SlicedError(
        'EIO',
        `cannot enable ${this.controllers.join(', ')} below ${dir}: ${(err as Error).message}. ` +
          'A cgroup that holds processes cannot delegate controllers; run sliced in a cgroup of its own (systemd: Delegate=yes)',
      );
    }
    this.enabled.add(dir);
  }

  private dir(group: GroupPath): string {
    return group.length === 0 ? this.layout.root : join(this.layout.root, ...group);
  }

  exists(group: GroupPath): boolean {
    try {
      readText(join(this.dir(group), 'cgroup.procs'));
      return true;
    } catch {
      return false;
    }
  }

  create(group: GroupPath): void {
    for (let depth = 0; depth < group.length; depth++) {
      this.enableControllers(this.dir(group.slice(0, depth)));
      makeDir(this.dir(group.slice(0, depth + 1)));
    }
  }

  remove(group: GroupPath): void {
    this.polled.forget(this.dir(group));
    removeDir(this.dir(group));
    this.enabled.delete(this.dir(group));
  }

  children(group: GroupPath): string[] {
    return childDirs(this.dir(group));
  }

  setCpuWeight(group: GroupPath, weight: number): void {
    writeText(join(this.dir(group), 'cpu.weight'), String(Math.max(1, Math.min(10000, Math.round(weight)))));
  }

  setCpuLimit(group: GroupPath, millicores: number | null): void {
    const quota = millicores === null ? 'max' : String(cpuQuotaUs(millicores));
    writeText(join(this.dir(group), 'cpu.max'), `${quota} ${CPU_PERIOD_US}`);
  }

  setMemory(group: GroupPath, memory: MemoryAllocation): void {
    const dir = this.dir(group);
    const swapMax = join(dir, 'memory.swap.max');
    if (memory.swap !== null && !existsSync(swapMax)) {
      throw new SlicedError('EINVAL', `memory.swap cannot be enforced: the kernel has no swap accounting (no ${swapMax}), use "none"`);
    }
    const text = (bytes: number | null): string => (bytes === null ? 'max' : String(bytes));
    writeText(join(dir, 'memory.max'), text(memory.limit));
    writeText(join(dir, 'memory.high'), text(memory.high));
    if (existsSync(swapMax)) writeText(swapMax, text(memory.swap));
  }

  pidsUnavailable(): string | null {
    if (this.controllers.includes('pids')) return null;
    return `the pids controller is not offered to sliced's cgroup (${join(this.layout.own, 'cgroup.controllers')} lists: ${this.available.join(' ') || 'none'})`;
  }

  setPidsMax(group: GroupPath, max: number | null): void {
    if (this.controllers.includes('pids') && group.length > 0) writePidsMax(this.dir(group), max);
  }

  readPids(group: GroupPath): PidsStats | null {
    if (!this.controllers.includes('pids') || group.length === 0) return null;
    return readPidsFiles(this.dir(group));
  }

  readonly hierarchicalIoCaps = true;

  private requireIo(what: string): boolean {
    if (this.controllers.includes('io')) return true;
    throw new SlicedError('EINVAL', `${what} cannot be enforced: the io controller is not available to sliced's cgroup`);
  }

  setIoWeight(group: GroupPath, weight: number): void {
    if (weight === IO_WEIGHT_DEFAULT && !this.controllers.includes('io')) return;
    this.requireIo(`io.weight ${weight}`);
    if (group.length === 0) return;
    const dir = this.dir(group);
    // io.weight is read by the iocost controller, io.bfq.weight by BFQ; each exists only when that is active.
    if (existsSync(join(dir, 'io.weight'))) writeText(join(dir, 'io.weight'), `default ${weight}`);
    if (existsSync(join(dir, 'io.bfq.weight'))) writeText(join(dir, 'io.bfq.weight'), String(bfqWeight(weight)));
  }

  ioWeightUnavailable(): string | null {
    if (!this.controllers.includes('io'))
      return `the io controller is not offered to sliced's cgroup (${join(this.layout.own, 'cgroup.controllers')} lists: ${this.available.join(' ') || 'none'})`;
    const file = join(this.layout.root, 'io.bfq.weight');
    return existsSync(file) ? null : `sliced's cgroup has no BFQ weight file (${file}): the bfq I/O scheduler is not loaded`;
  }

  setIoCaps(group: GroupPath, caps: readonly IoDeviceLimit[]): void {
    if (caps.length === 0 && !this.controllers.includes('io')) return;
    this.requireIo('io.max');
    const file = join(this.dir(group), 'io.max');
    const wanted = new Set(caps.map((c) => c.device));
    for (const device of listedDevices(file)) {
      if (!wanted.has(device)) writeText(file, `${device} ${IO_CAP_FIELDS.map((f) => `${f}=max`).join(' ')}`);
    }
    for (const cap of caps) writeText(file, `${cap.device} ${IO_CAP_FIELDS.map((f) => `${f}=${cap[f] ?? 'max'}`).join(' ')}`);
  }

  readIo(group: GroupPath): IoStats | null {
    const file = join(this.dir(group), 'io.stat');
    if (!existsSync(file)) return null;
    const stats: IoStats = { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 };
    const keys = { rbytes: 'readBytes', wbytes: 'writeBytes', rios: 'readOps', wios: 'writeOps' } as const;
    for (const match of readText(file).matchAll(/\b(rbytes|wbytes|rios|wios)=(\d+)/g)) {
      stats[keys[match[1] as keyof typeof keys]] += Number(match[2]);
    }
    return stats;
  }

  readPressure(group: GroupPath, resource: PressureResource): Pressure | null {
    return readPressureFile(join(this.dir(group), `${resource}.pressure`));
  }

  readCpuUsageNs(group: GroupPath): number {
    const text = this.polled.read(join(this.dir(group), 'cpu.stat'));
    return Number(/^usage_usec (\d+)/m.exec(text)?.[1] ?? 0) * 1000;
  }

  readCpuThrottle(group: GroupPath): CpuThrottleStats {
    const stats = readKeyValues(join(this.dir(group), 'cpu.stat'));
    return {
      periods: stats.get('nr_periods') ?? 0,
      throttledPeriods: stats.get('nr_throttled') ?? 0,
      throttledNs: (stats.get('throttled_usec') ?? 0) * 1000,
    };
  }

  readMemory(group: GroupPath): MemoryStats {
    const dir = this.dir(group);
    const max = readText(join(dir, 'memory.max')).trim();
    const events = readKeyValues(join(dir, 'memory.events'));
    return {
      currentBytes: Number(readText(join(dir, 'memory.current')).trim()),
      limitBytes: max === 'max' ? null : Number(max),
      oomKills: events.get('oom_kill') ?? null,
    };
  }

  procs(group: GroupPath): number[] {
    return readIds(join(this.dir(group), 'cgroup.procs'));
  }

  threads(group: GroupPath): number[] {
    return readIds(join(this.dir(group), 'cgroup.threads'));
  }

  procsFiles(group: GroupPath): string[] {
    return [join(this.dir(group), 'cgroup.procs')];
  }

  memoryDirectory(group: GroupPath): string {
    return this.dir(group);
  }

  processMemoryDirectory(pid: number): string | null {
    return processGroupDirectory(pid, this.layout.mount, (line) => line.hierarchyId === 0);
  }

  moveProcess(group: GroupPath, pid: number): void {
    this.writeControl(join(this.dir(group), 'cgroup.procs'), String(pid));
  }

  async setFrozen(group: GroupPath, frozen: boolean): Promise<void> {
    const dir = this.dir(group);
    writeText(join(dir, 'cgroup.freeze'), frozen ? '1' : '0');
    const wanted = frozen ? 1 : 0;
    for (let attempt = 0; attempt < 200; attempt++) {
      if (readKeyValues(join(dir, 'cgroup.events')).get('frozen') === wanted) return;
      await sleep(5);
    }
    throw new SlicedError('EIO', `${dir} did not become ${frozen ? 'frozen' : 'thawed'} within 1 s`);
  }

  killAll(group: GroupPath): void {
    try {
      writeText(join(this.dir(group), 'cgroup.kill'), '1');
      return;
    } catch {
      // cgroup.kill arrived in Linux 5.14; signal each process on older kernels.
    }
    killEach(this.procs(group));
  }
}

/** Controllers listed in a group's cgroup.subtree_control. */
function subtreeControl(dir: string): string[] {
  return readText(join(dir, 'cgroup.subtree_control')).trim().split(/\s+/).filter(Boolean);
}

/** The delegation record in `file`, or null when there is none or it is not one. */
export function readRecord(file: string): DelegationRecord | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = delegationRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function writeRecord(file: string, record: DelegationRecord): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const temporary = `${file}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(record)}\n`, { mode: 0o644 });
  renameSync(temporary, file);
}
