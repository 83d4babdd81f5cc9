/**
 * One interface over cgroup v1 and cgroup v2, in the spirit of the opencontainers fs and
 * fs2 managers. Groups are addressed by a path relative to the daemon's root group (for
 * example ["web.domain", "a.slice"]); each backend maps that onto its hierarchies, always
 * beneath the daemon's own group in each of them.
 */

import type { IoDeviceLimit, MemoryAllocation } from '../../core/model.js';

export type GroupPath = readonly string[];

/** Weights handed to backends are relative numbers in cgroup v2 units. */
export const WEIGHT_MIN = 1;
export const WEIGHT_MAX = 10000;

/** The CFS period sliced uses for quotas. */
export const CPU_PERIOD_US = 100_000;

/** The quota per CPU_PERIOD_US for a cap in millicores; the kernel refuses less than 1 ms. */
export function cpuQuotaUs(millicores: number): number {
  return Math.max(1000, Math.round((millicores * CPU_PERIOD_US) / 1000));
}

export interface CpuThrottleStats {
  periods: number;
  throttledPeriods: number;
  throttledNs: number;
}

export interface MemoryStats {
  currentBytes: number;
  limitBytes: number | null;
  /** Processes killed by the OOM killer inside the group, or null where the kernel does not say. */
  oomKills: number | null;
}

export type { IoStats, PidsStats, Pressure } from '../../core/group-stats.js';
import type { IoStats, PidsStats, Pressure } from '../../core/group-stats.js';

export type { PressureResource } from '../node-stats.js';
import type { PressureResource } from '../node-stats.js';

export interface CgroupBackend {
  readonly kind: 'v1' | 'v2';

  /** Absolute directories of the root group, one per hierarchy, for status output. */
  rootDirectories(): Record<string, string>;

  /** Create the daemon's root group in every hierarchy and make it usable; idempotent. */
  init(rootWeight: number): void;

  exists(group: GroupPath): boolean;
  /**
   * Create a group in every hierarchy; idempotent. A group that exists in some hierarchies
   * only (made before sliced used the others, e.g. pids) is completed, and its processes
   * join it there.
   */
  create(group: GroupPath): void;
  /** Remove an empty group from every hierarchy; a missing group is not an error. */
  remove(group: GroupPath): void;
  /** Names of child groups (in the primary hierarchy). */
  children(group: GroupPath): string[];

  setCpuWeight(group: GroupPath, weight: number): void;
  /** Cap in millicores, or null for none. */
  setCpuLimit(group: GroupPath, millicores: number | null): void;
  /**
   * Memory limit, soft limit and swap cap. Throws EINVAL when the kernel cannot express the
   * allocation (a swap cap without swap accounting; on v1 a swap cap without a limit).
   */
  setMemory(group: GroupPath, memory: MemoryAllocation): void;

  /**
   * Why the pids controller cannot be used (not mounted on v1, not offered on v2), or null
   * when it can. Known after init(). Without it setPidsMax does nothing and readPids gives null.
   */
  pidsUnavailable(): string | null;
  /** pids.max of the group: most tasks at once, or null for no cap. */
  setPidsMax(group: GroupPath, max: number | null): void;
  /** Task figures of the group, or null without the pids controller. */
  readPids(group: GroupPath): PidsStats | null;

  /** True when a parent's I/O caps bound its children in the kernel (v2 io.max); v1 needs sliced's split. */
  readonly hierarchicalIoCaps: boolean;
  /** I/O weight in io.weight units (1..10000); BFQ files get weight/10. No-op where BFQ is not loaded. */
  setIoWeight(group: GroupPath, weight: number): void;
  /**
   * Why io.weight cannot act in sliced's groups now (no I/O controller, or no BFQ weight
   * files: they appear in every group once the bfq module is loaded), or null when it can.
   */
  ioWeightUnavailable(): string | null;
  /** Make the group's per-device caps exactly `caps` (devices not listed lose their caps). */
  setIoCaps(group: GroupPath, caps: readonly IoDeviceLimit[]): void;
  /** Block I/O of the group, or null without an I/O controller. */
  readIo(group: GroupPath): IoStats | null;
  /** Pressure of the group (needs a cgroup2 hierarchy with pressure files), or null. */
  readPressure(group: GroupPath, resource: PressureResource): Pressure | null;

  /** Cumulative CPU time of the group in nanoseconds. */
  readCpuUsageNs(group: GroupPath): number;
  readCpuThrottle(group: GroupPath): CpuThrottleStats;
  readMemory(group: GroupPath): MemoryStats;

  /** Process ids in the group itself (not its children). */
  procs(group: GroupPath): number[];
  /** Thread ids in the group itself. */
  threads(group: GroupPath): number[];
  /** The cgroup.procs files a process must write its pid into to join the group. */
  procsFiles(group: GroupPath): string[];
  /**
   * What tells this group from another made at the same path later (its directory's inode in
   * the primary hierarchy), or null when it does not exist.
   */
  groupIdentity(group: GroupPath): string | null;
  /** The group's directory in the memory hierarchy, for the memory-cgroup safety rule. */
  memoryDirectory(group: GroupPath): string;
  /**
   * The leaf the daemon and its helpers run in beside the root group (v2 under delegation),
   * or null: a process there may join a slice without leaving the group sliced manages.
   */
  supervisorDirectory(): string | null;
  /** Directory of the memory cgroup a process is in now, or null if the process is gone. */
  processMemoryDirectory(pid: number): string | null;
  /** Move a whole process (all its threads) into the group in every hierarchy. */
  moveProcess(group: GroupPath, pid: number): void;

  /** Freeze or thaw the group; resolves once the kernel reports the new state. */
  setFrozen(group: GroupPath, frozen: boolean): Promise<void>;
  /** SIGKILL every process in the group (frozen or not). */
  killAll(group: GroupPath): void;
}

export function groupKey(group: GroupPath): string {
  return group.join('/');
}
