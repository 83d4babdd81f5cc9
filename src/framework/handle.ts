/**
 * The handle components get from their host (the Kubernetes scheduler framework's `Handle`):
 * the node's name, a logger, and the host services a component may use, one small interface
 * each. The framework declares them; src/kernel and src/cluster implement them (by shape, as
 * they may not import the framework) and src/daemon wires them, so components import only
 * the framework and core. A component that cannot work without a service asks for it with
 * `need()`, which refuses its creation on a host that lacks it.
 */
import type { CpuControlMode } from '../core/cpu-control.js';
import { SlicedError } from '../core/errors.js';
import type { SliceCandidate } from '../core/load-balancing.js';
import type { Value } from './value.js';
import type { RemoteRow, RemoteValues } from '../cluster/remote-values.js';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export type PressureResource = 'cpu' | 'memory' | 'io';

/** avg10 of a pressure file's "some" and "full" lines, in percent. */
export interface Pressure {
  some: number;
  full: number;
}

/** Node-wide readings from /proc (src/kernel/node-stats.ts). */
export interface NodeStats {
  /** Busy time of each CPU in nanoseconds (idle and iowait excluded), cpu0 first. */
  cpuBusyNs(): number[];
  /** /proc/loadavg: load averages and runnable tasks. */
  loadAverage(): { load1: number; load5: number; load15: number; runnable: number };
  /** /proc/meminfo: MemTotal, MemAvailable and MemFree in bytes. */
  memoryInfo(): { totalBytes: number; availableBytes: number; freeBytes: number };
  /** Pressure of the whole node, or null where the kernel has no PSI. */
  pressure(resource: PressureResource): Pressure | null;
  /** CPU time (utime + stime, nanoseconds) of every process, kernel threads excluded. */
  processTimes(): ReadonlyArray<{ pid: number; cpuNs: number }>;
  /** Resident memory of every process that has any, in bytes. */
  processRss(): ReadonlyArray<{ pid: number; rssBytes: number }>;
  /**
   * Cumulative block I/O of a device (a path, links followed, or MAJ:MIN), or of all physical
   * disks (null); null when the device is not there.
   */
  diskIo(device: string | null): { readBytes: number; writeBytes: number; readOps: number; writeOps: number } | null;
}

/** A slice's group as the host addresses it; components only hand it back to SliceGroups. */
export type SliceGroup = readonly string[];

/** The slices' cgroups and their usage readings (the node agent over its cgroup backend). */
export interface SliceGroups {
  /** Labels "slice/<name>" and their groups; `labels` stays the same array while the set of slices is unchanged. */
  list(): { labels: readonly string[]; groups: readonly SliceGroup[] };
  /** CPU time the group has used (nanoseconds, cumulative); the empty group is all the slices together. */
  readCpuNs(group: SliceGroup): number;
  /** Cumulative block I/O of the group, or null where the kernel does not account it. */
  readIo(group: SliceGroup): { readBytes: number; writeBytes: number; readOps: number; writeOps: number } | null;
  readMemory(group: SliceGroup): { currentBytes: number; limitBytes: number | null; oomKills: number | null };
  /** Pressure of the group (needs cgroup2 pressure files), or null. */
  readPressure(group: SliceGroup, resource: PressureResource): Pressure | null;
}

/** Values shared between nodes: the store's own interface (src/cluster/remote-values.ts). */
export type { RemoteRow, RemoteValues };

/** The node agent's CPU control loop: slice_usage samples it, the entitlement policy drives it. */
export interface CpuControl {
  /** Fill `out` with every slice's and domain's usage and demand (millicores). */
  sample(out: Value): void;
  /** Compute entitlements from a sample and write the cgroup weights that deliver them. */
  act(table: Value): void;
  configure(options: { mode?: CpuControlMode; gain?: number; periodMs?: number }): void;
  readonly mode: CpuControlMode;
  readonly gain: number;
}

/** CPU affinity of processes (src/kernel/processes.ts). */
export interface AffinityControl {
  cpuOf(pid: number): number | null;
  pinToCpu(pid: number, cpu: number): void;
}

/** Freezing slices, for policies that relieve memory pressure. */
export interface SliceFreezer {
  candidates(): SliceCandidate[];
  setFrozen(slice: string, frozen: boolean): void;
}

/**
 * Moving cluster tasks between nodes (src/daemon): what a balancer acts through. A task moves
 * by stopping where it runs and starting again on the target (no live migration here).
 */
export interface TaskMigration {
  /** The migratable task running on this node whose process group holds `pid`, or null. */
  taskOf(pid: number): string | null;
  /** Move the task to `node`; resolves once the move is asked for (its node stops it, then hands it over). */
  migrate(task: string, node: string, by: string): Promise<void>;
  /** When a task last started to leave this node (ms since the epoch), or null if none has. */
  lastMigration(): number | null;
  /** Tasks leaving this node now (stopping here, not yet handed to their target). */
  migrationsUnderWay(): number;
}

/** What the node has promised its slices (the node agent's desired state). */
export interface NodeAllocation {
  /** The node's memory, and the sum of the memory limits of its top-level slices and domains (bytes). */
  memory(): { capacityBytes: number; promisedBytes: number };
}

/** Space of filesystems (statfs). */
export interface Filesystems {
  /** Free and total bytes of the filesystem that holds `path`, or null when it cannot be read. */
  space(path: string): { freeBytes: number; totalBytes: number } | null;
}

/** Uniform numbers in [0, 1): the host's (seeded in the simulator, so a run can be replayed). */
export type Random = () => number;

/** Every service a host may offer, by name. */
export interface Services {
  random: Random;
  nodeStats: NodeStats;
  sliceGroups: SliceGroups;
  remote: RemoteValues;
  cpuController: CpuControl;
  affinity: AffinityControl;
  sliceFreezer: SliceFreezer;
  taskMigration: TaskMigration;
  nodeAllocation: NodeAllocation;
  filesystems: Filesystems;
}

export type ServiceName = keyof Services;

/** What a host lends components: its node name, a logger, and the services it offers. */
export interface FrameworkServices extends Partial<Services> {
  nodeName: string;
  log: Logger;
}

const DESCRIPTIONS: Record<ServiceName, string> = {
  random: 'random numbers',
  nodeStats: "the node's /proc readings",
  sliceGroups: "the slices' cgroups",
  remote: 'values shared between nodes',
  cpuController: "the node agent's CPU controller",
  affinity: 'CPU affinity of processes',
  sliceFreezer: 'freezing slices',
  taskMigration: 'moving cluster tasks between nodes',
  nodeAllocation: 'what the node has promised its slices',
  filesystems: 'space of filesystems',
};

/**
 * The service `name` for the component at `ctx.path` (a component's directory is named after
 * its type), or ENOENT naming the type and the missing service when the host lacks it.
 */
export function need<K extends ServiceName>(ctx: { path: string; services: FrameworkServices }, name: K): Services[K] {
  const service = ctx.services[name];
  if (service !== undefined) return service as Services[K];
  const type = ctx.path.slice(ctx.path.lastIndexOf('/') + 1);
  const offered = (Object.keys(DESCRIPTIONS) as ServiceName[]).filter((n) => ctx.services[n] !== undefined);
  throw new SlicedError(
    'ENOENT',
    `component type ${type} (${ctx.path}) needs the host service ${name} (${DESCRIPTIONS[name]}), which this host does not provide; ` +
      `it provides: ${offered.join(', ') || 'none'}`,
  );
}
