/**
 * cgroup v1 backend. cpu and cpuacct may be separate hierarchies (they are on this kind of
 * machine), so every group exists in cpu, cpuacct, memory and freezer, plus the cgroup2
 * "unified" hierarchy when it is mounted (for cgroup.kill, pressure files and nftables
 * socket matching). A process joins a group by writing its pid into each hierarchy.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
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
  readNumber,
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
import { processExists } from '../procfs.js';

export interface V1Layout {
  /** Root group directory in each hierarchy. cpu and cpuacct may be the same directory. */
  cpu: string;
  cpuacct: string;
  memory: string;
  freezer: string;
  /** Root group directory in the cgroup2 hierarchy, when mounted. */
  unified?: string;
  /** Root group directory in the blkio hierarchy, when that controller is mounted. */
  blkio?: string;
  /** Root group directory in the pids hierarchy, when that controller is mounted. */
  pids?: string;
  /** Mount point of the memory hierarchy (to locate any process's memory cgroup). */
  memoryMount: string;
}

/** memory.limit_in_bytes reads back this (page-rounded LONG_MAX) when there is no limit. */
const V1_MEMORY_UNLIMITED = 9223372036854771712;

/** cpu.shares corresponding to a cgroup v2 weight, as systemd maps CPUWeight on v1 (integer division). */
export function weightToShares(weight: number): number {
  return Math.max(2, Math.min(262144, Math.floor((weight * 1024) / 100)));
}

const V1_THROTTLE_FILES = {
  rbps: 'blkio.throttle.read_bps_device',
  wbps: 'blkio.throttle.write_bps_device',
  riops: 'blkio.throttle.read_iops_device',
  wiops: 'blkio.throttle.write_iops_device',
} as const;

/** Sum the "MAJ:MIN Read N" / "MAJ:MIN Write N" lines of a blkio stat file. */
export function sumReadWrite(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const match of text.matchAll(/^\d+:\d+ (Read|Write) (\d+)$/gm)) {
    if (match[1] === 'Read') read += Number(match[2]);
    else write += Number(match[2]);
  }
  return { read, write };
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
    if (layout.blkio) roots.push(layout.blkio);
    if (layout.pids) roots.push(layout.pids);
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
    if (this.layout.blkio) dirs.blkio = this.layout.blkio;
    if (this.layout.pids) dirs.pids = this.layout.pids;
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
    const missing = this.allRoots.map((root) => this.dir(root, group)).filter((dir) => !existsSync(dir));
    if (missing.length === 0) return;
    // Processes of a group made before a hierarchy was used (an upgrade that added pids) join it there.
    const members = group.length > 0 && existsSync(this.dir(this.layout.cpu, group)) ? this.procs(group) : [];
    for (const dir of missing) {
      makeDir(dir);
      for (const pid of members) {
        try {
          writeText(join(dir, 'cgroup.procs'), String(pid));
        } catch (err) {
          if (processExists(pid)) throw err; // exited meanwhile is fine
        }
      }
    }
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
    const quota = millicores === null ? -1 : cpuQuotaUs(millicores);
    // New groups start with the default 100 ms period, which CPU_PERIOD_US matches.
    writeText(join(dir, 'cpu.cfs_quota_us'), String(quota));
  }

  setMemory(group: GroupPath, memory: MemoryAllocation): void {
    const dir = this.dir(this.layout.memory, group);
    const memsw = join(dir, 'memory.memsw.limit_in_bytes');
    const hasSwapAccounting = existsSync(memsw);
    if (memory.swap !== null) {
      if (!hasSwapAccounting) {
        throw new SlicedError(
          'EINVAL',
          `memory.swap cannot be enforced: the kernel has no swap accounting (no ${memsw}; boot with swapaccount=1), use "none"`,
        );
      }
      if (memory.limit === null) {
        throw new SlicedError(
          'EINVAL',
          'memory.swap needs a memory.limit on cgroup v1 (the kernel caps memory+swap together); set a limit or use memory.swap "none"',
        );
      }
    }
    // memsw may never be below the limit: lift it first, so the limit can move either way.
    if (hasSwapAccounting) writeText(memsw, '-1');
    writeText(join(dir, 'memory.limit_in_bytes'), memory.limit === null ? '-1' : String(memory.limit));
    if (memory.swap !== null && memory.limit !== null) writeText(memsw, String(memory.limit + memory.swap));
    // v1 has no memory.high; the soft limit is where reclaim starts under node memory pressure.
    writeText(join(dir, 'memory.soft_limit_in_bytes'), memory.high === null ? '-1' : String(memory.high));
  }

  pidsUnavailable(): string | null {
    return this.layout.pids ? null : 'the pids controller is not mounted as a cgroup v1 hierarchy (no cgroup mount with the pids option)';
  }

  setPidsMax(group: GroupPath, max: number | null): void {
    if (this.layout.pids && group.length > 0) writePidsMax(this.dir(this.layout.pids, group), max);
  }

  readPids(group: GroupPath): PidsStats | null {
    if (!this.layout.pids || group.length === 0) return null;
    return readPidsFiles(this.dir(this.layout.pids, group));
  }

  readonly hierarchicalIoCaps = false;

  setIoWeight(group: GroupPath, weight: number): void {
    const blkio = this.layout.blkio;
    if (!blkio) {
      if (weight === IO_WEIGHT_DEFAULT) return;
      throw new SlicedError(
        'EINVAL',
        `io.weight ${weight} cannot be enforced: the blkio controller is not mounted; use the default ${IO_WEIGHT_DEFAULT}`,
      );
    }
    const file = join(this.dir(blkio, group), 'blkio.bfq.weight');
    // Present only while the bfq module is loaded; weights then have no effect anyway (the API warns).
    if (group.length > 0 && existsSync(file)) writeText(file, String(bfqWeight(weight)));
  }

  ioWeightUnavailable(): string | null {
    if (!this.layout.blkio) return 'the blkio controller is not mounted as a cgroup v1 hierarchy';
    const file = join(this.layout.blkio, 'blkio.bfq.weight');
    return existsSync(file) ? null : `sliced's blkio group has no BFQ weight file (${file}): the bfq I/O scheduler is not loaded`;
  }

  setIoCaps(group: GroupPath, caps: readonly IoDeviceLimit[]): void {
    const blkio = this.layout.blkio;
    if (!blkio) {
      if (caps.length === 0) return;
      throw new SlicedError('EINVAL', 'io.max cannot be enforced: the blkio controller is not mounted; remove the caps');
    }
    const dir = this.dir(blkio, group);
    for (const field of IO_CAP_FIELDS) {
      const file = join(dir, V1_THROTTLE_FILES[field]);
      const wanted = new Map(caps.filter((c) => c[field] !== null).map((c) => [c.device, c[field]!]));
      // 0 removes a device's cap.
      for (const device of listedDevices(file)) if (!wanted.has(device)) writeText(file, `${device} 0`);
      for (const [device, value] of wanted) writeText(file, `${device} ${value}`);
    }
  }

  readIo(group: GroupPath): IoStats | null {
    const blkio = this.layout.blkio;
    if (!blkio) return null;
    const dir = this.dir(blkio, group);
    // The throttle layer sees every bio of the group (with or without caps), BFQ or not.
    const bytes = sumReadWrite(readText(join(dir, 'blkio.throttle.io_service_bytes_recursive')));
    const ops = sumReadWrite(readText(join(dir, 'blkio.throttle.io_serviced_recursive')));
    return { readBytes: bytes.read, writeBytes: bytes.write, readOps: ops.read, writeOps: ops.write };
  }

  readPressure(group: GroupPath, resource: PressureResource): Pressure | null {
    return this.layout.unified ? readPressureFile(join(this.dir(this.layout.unified, group), `${resource}.pressure`)) : null;
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

  groupIdentity(group: GroupPath): string | null {
    try {
      return `${groupKey(group)}#${statSync(this.dir(this.layout.cpu, group)).ino}`;
    } catch {
      return null;
    }
  }

  memoryDirectory(group: GroupPath): string {
    return this.dir(this.layout.memory, group);
  }

  supervisorDirectory(): string | null {
    return null; // v1 groups may hold processes and children: the daemon stays where it started
  }

  processMemoryDirectory(pid: number): string | null {
    return processGroupDirectory(pid, this.layout.memoryMount, (line) => line.controllers.includes('memory'));
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
    killEach(this.procs(group));
  }
}
