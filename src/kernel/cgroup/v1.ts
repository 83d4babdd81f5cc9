/**
 * cgroup v1 backend. cpu and cpuacct may be separate hierarchies (they are on this kind of
 * machine), so every group exists in cpu, cpuacct, memory and freezer, plus the cgroup2
 * "unified" hierarchy when it is mounted (for cgroup.kill, pressure files and nftables
 * socket matching). A process joins a group by writing its pid into each hierarchy.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CPU_PERIOD_US,
  type CgroupBackend,
  type CpuThrottleStats,
  type GroupPath,
  type MemoryStats,
} from './backend.js';
import { PolledFiles, childDirs, makeDir, readIds, readKeyValues, readNumber, readText, removeDir, writeText } from './files.js';
import { SlicedError } from '../../core/errors.js';
import { readProcCgroups } from '../procfs.js';

export interface V1Layout {
  /** Root group directory in each hierarchy. cpu and cpuacct may be the same directory. */
  cpu: string;
  cpuacct: string;
  memory: string;
  freezer: string;
  /** Root group directory in the cgroup2 hierarchy, when mounted. */
  unified?: string;
  /** Mount point of the memory hierarchy (to locate any process's memory cgroup). */
  memoryMount: string;
}

/** memory.limit_in_bytes reads back this (page-rounded LONG_MAX) when there is no limit. */
const V1_MEMORY_UNLIMITED = 9223372036854771712;

/** cpu.shares corresponding to a cgroup v2 weight, as systemd maps CPUWeight on v1 (integer division). */
export function weightToShares(weight: number): number {
  return Math.max(2, Math.min(262144, Math.floor((weight * 1024) / 100)));
}

export class CgroupV1Backend implements CgroupBackend {
  readonly kind = 'v1' as const;
  private readonly polled = new PolledFiles();
  private readonly layout: V1Layout;
  private readonly allRoots: string[];

  constructor(layout: V1Layout) {
    this.layout = layout;
    const roots = [layout.cpu, layout.cpuacct, layout.memory, layout.freezer];
    if (layout.unified) roots.push(layout.unified);
    this.allRoots = [...new Set(roots)];
  }

  rootDirectories(): Record<string, string> {
    const dirs: Record<string, string> = {
      cpu: this.layout.cpu,
      cpuacct: this.layout.cpuacct,
      memory: this.layout.memory,
      freezer: this.layout.freezer,
    };
    if (this.layout.unified) dirs.unified = this.layout.unified;
    return dirs;
  }

  init(rootWeight: number): void {
    for (const root of this.allRoots) makeDir(root);
    // Real-time tasks are not allowed in sliced's groups (rt_runtime_us stays 0 where the
    // kernel has RT group scheduling): a slice's SCHED_FIFO task can never lock the node.
    this.setCpuWeight([], rootWeight);
  }

  private dir(root: string, group: GroupPath): string {
    return group.length === 0 ? root : join(root, ...group);
  }

  exists(group: GroupPath): boolean {
    try {
      readText(join(this.dir(this.layout.cpu, group), 'cgroup.procs'));
      return true;
    } catch {
      return false;
    }
  }

  create(group: GroupPath): void {
    for (const root of this.allRoots) makeDir(this.dir(root, group));
  }

  remove(group: GroupPath): void {
    this.polled.forget(this.dir(this.layout.cpuacct, group));
    for (const root of this.allRoots) removeDir(this.dir(root, group));
  }

  children(group: GroupPath): string[] {
    return childDirs(this.dir(this.layout.cpu, group));
  }

  setCpuWeight(group: GroupPath, weight: number): void {
    writeText(join(this.dir(this.layout.cpu, group), 'cpu.shares'), String(weightToShares(weight)));
  }

  setCpuLimit(group: GroupPath, millicores: number | null): void {
    const dir = this.dir(this.layout.cpu, group);
    const quota = millicores === null ? -1 : Math.max(1000, Math.round((millicores * CPU_PERIOD_US) / 1000));
    // New groups start with the default 100 ms period, which CPU_PERIOD_US matches.
    writeText(join(dir, 'cpu.cfs_quota_us'), String(quota));
  }

  setMemoryLimit(group: GroupPath, bytes: number | null): void {
    writeText(join(this.dir(this.layout.memory, group), 'memory.limit_in_bytes'), bytes === null ? '-1' : String(bytes));
  }

  readCpuUsageNs(group: GroupPath): number {
    return Number(this.polled.read(join(this.dir(this.layout.cpuacct, group), 'cpuacct.usage')).trim());
  }

  readCpuThrottle(group: GroupPath): CpuThrottleStats {
    const stats = readKeyValues(join(this.dir(this.layout.cpu, group), 'cpu.stat'));
    return {
      periods: stats.get('nr_periods') ?? 0,
      throttledPeriods: stats.get('nr_throttled') ?? 0,
      throttledNs: stats.get('throttled_time') ?? 0,
    };
  }

  readMemory(group: GroupPath): MemoryStats {
    const dir = this.dir(this.layout.memory, group);
    const limit = readNumber(join(dir, 'memory.limit_in_bytes'));
    const oom = readKeyValues(join(dir, 'memory.oom_control'));
    return {
      currentBytes: readNumber(join(dir, 'memory.usage_in_bytes')),
      limitBytes: limit >= V1_MEMORY_UNLIMITED ? null : limit,
      oomKills: oom.get('oom_kill') ?? null,
    };
  }

  procs(group: GroupPath): number[] {
    return readIds(join(this.dir(this.layout.cpu, group), 'cgroup.procs'));
  }

  threads(group: GroupPath): number[] {
    return readIds(join(this.dir(this.layout.cpu, group), 'tasks'));
  }

  procsFiles(group: GroupPath): string[] {
    return this.allRoots.map((root) => join(this.dir(root, group), 'cgroup.procs'));
  }

  memoryDirectory(group: GroupPath): string {
    return this.dir(this.layout.memory, group);
  }

  processMemoryDirectory(pid: number): string | null {
    try {
      const line = readProcCgroups(pid).find((l) => l.controllers.includes('memory'));
      // Relative, so the root group ("/") gives the mount itself, not "<mount>/", which the
      // agent's prefix check would not recognise as containing sliced's groups.
      return line ? join(this.layout.memoryMount, line.path.replace(/^\/+/, '')) : null;
    } catch {
      return null;
    }
  }

  moveProcess(group: GroupPath, pid: number): void {
    for (const file of this.procsFiles(group)) writeText(file, String(pid));
  }

  async setFrozen(group: GroupPath, frozen: boolean): Promise<void> {
    const file = join(this.dir(this.layout.freezer, group), 'freezer.state');
    const wanted = frozen ? 'FROZEN' : 'THAWED';
    writeText(file, wanted);
    for (let attempt = 0; attempt < 200; attempt++) {
      if (readText(file).trim() === wanted) return;
      await sleep(5);
      writeText(file, wanted);
    }
    throw new SlicedError('EIO', `freezer of ${group.join('/') || 'root'} did not reach ${wanted} within 1 s`);
  }

  killAll(group: GroupPath): void {
    if (this.layout.unified) {
      try {
        writeText(join(this.dir(this.layout.unified, group), 'cgroup.kill'), '1');
      } catch {
        // Older kernels have no cgroup.kill; signalling each process below covers it.
      }
    }
    for (const pid of this.procs(group)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}
