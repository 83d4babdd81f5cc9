/**
 * cgroup v2 backend: one hierarchy, cpu.weight / cpu.max / memory.max, cgroup.freeze,
 * cgroup.kill and cpu.stat. Controllers are enabled top-down through cgroup.subtree_control;
 * because of the "no internal processes" rule, groups that have children (the root and the
 * domains) never hold processes, and slices are leaves. The group sliced manages holds no
 * processes either: the daemon first moves itself into the supervisor leaf beside its root
 * group (v2-delegation.ts; the rules in src/core/delegation.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CPU_PERIOD_US,
  cpuQuotaUs,
  groupKey,
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
import { bfqWeight, IO_CAP_FIELDS } from '../../core/io.js';
import { IO_WEIGHT_DEFAULT, type IoDeviceLimit, type MemoryAllocation } from '../../core/model.js';
import {
  PROC_PROBE,
  checkDelegation,
  enterSupervisor,
  recordDelegation,
  releaseDelegation,
  subtreeControl,
  type DelegatedGroup,
  type ProcessProbe,
} from './v2-delegation.js';

export type { ProcessProbe } from './v2-delegation.js';

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
  /** The managed group as the delegation steps see it; the writes go through the (overridable) methods below. */
  private readonly delegated: DelegatedGroup;

  constructor(layout: V2Layout, processes: ProcessProbe = PROC_PROBE) {
    this.layout = layout;
    this.controllers = layout.controllers ?? DEFAULT_CONTROLLERS;
    this.delegated = {
      own: layout.own,
      supervisor: layout.supervisor ?? null,
      recordFile: layout.recordFile,
      processes,
      writeControl: (path, value) => this.writeControl(path, value),
      removeGroupDir: (dir) => this.removeGroupDir(dir),
    };
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
        `cgroup v2 controllers ${missing.join(', ')} are not available in ${this.layout.own} (it offers: ` +
          `${available.join(' ') || 'none'}); delegate them to sliced's cgroup`,
      );
    }
    this.available = available;
    this.controllers = [...this.controllers, ...OPTIONAL_CONTROLLERS.filter((c) => available.includes(c) && !this.controllers.includes(c))];
    const before = subtreeControl(this.layout.own);
    const supervisorMade = enterSupervisor(this.delegated);
    this.enableControllers(this.layout.own);
    recordDelegation(this.delegated, supervisorMade, before, this.controllers);
    makeDir(this.layout.root);
    this.setCpuWeight([], rootWeight);
  }

  /**
   * Refuse a managed group that holds processes sliced did not start; read-only, so the start
   * can check it before it touches anything (and init() checks again).
   */
  checkDelegation(): void {
    checkDelegation(this.delegated);
  }

  /** The supervisor leaf, where the daemon and its helpers run, or null without one. */
  supervisorDirectory(): string | null {
    return this.layout.supervisor ?? null;
  }

  /**
   * For `sliced --cleanup`, after the root group is gone: undo what the delegation record says
   * sliced made in the managed group (see releaseDelegation). Returns what had to stay, and why.
   */
  releaseDelegation(): string[] {
    return releaseDelegation(this.delegated);
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
    return (
      `the pids controller is not offered to sliced's cgroup (${join(this.layout.own, 'cgroup.controllers')} lists: ` +
      `${this.available.join(' ') || 'none'})`
    );
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
      return (
        `the io controller is not offered to sliced's cgroup (${join(this.layout.own, 'cgroup.controllers')} lists: ` +
        `${this.available.join(' ') || 'none'})`
      );
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

  groupIdentity(group: GroupPath): string | null {
    try {
      return `${groupKey(group)}#${statSync(this.dir(group)).ino}`;
    } catch {
      return null;
    }
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
