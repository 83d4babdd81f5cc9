/**
 * One interface over cgroup v1 and cgroup v2, in the spirit of the opencontainers fs and
 * fs2 managers. Groups are addressed by a path relative to the daemon's root group (for
 * example ["web.domain", "a.slice"]); each backend maps that onto its hierarchies, always
 * beneath the daemon's own group in each of them.
 */

export type GroupPath = readonly string[];

/** Weights handed to backends are relative numbers in cgroup v2 units. */
export const WEIGHT_MIN = 1;
export const WEIGHT_MAX = 10000;

/** The CFS period sliced uses for quotas. */
export const CPU_PERIOD_US = 100_000;

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

export interface CgroupBackend {
  readonly kind: 'v1' | 'v2';

  /** Absolute directories of the root group, one per hierarchy, for status output. */
  rootDirectories(): Record<string, string>;

  /** Create the daemon's root group in every hierarchy and make it usable; idempotent. */
  init(rootWeight: number): void;

  exists(group: GroupPath): boolean;
  /** Create a group in every hierarchy; idempotent. */
  create(group: GroupPath): void;
  /** Remove an empty group from every hierarchy; a missing group is not an error. */
  remove(group: GroupPath): void;
  /** Names of child groups (in the primary hierarchy). */
  children(group: GroupPath): string[];

  setCpuWeight(group: GroupPath, weight: number): void;
  /** Cap in millicores, or null for none. */
  setCpuLimit(group: GroupPath, millicores: number | null): void;
  setMemoryLimit(group: GroupPath, bytes: number | null): void;

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
  /** The group's directory in the memory hierarchy, for the memory-cgroup safety rule. */
  memoryDirectory(group: GroupPath): string;
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
