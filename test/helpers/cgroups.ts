/**
 * A test daemon's cgroups read by meaning, on either layout, straight from the kernel's
 * files: the e2e tests look at the kernel, never at v1 paths, so every scenario runs on a
 * cgroup v1 node and on a pure cgroup v2 one alike. Which hierarchies exist comes from the
 * daemon's status document (node.backend and node.cgroupRoots); what the files say is read
 * here, not through the backend under test.
 *
 * Groups are named as views name them ("web.slice", "batch.domain/job1.slice"); "" is the
 * daemon's root group.
 *
 *   meaning          cgroup v1                               cgroup v2
 *   cpu weight       cpu.shares (weight x 1024 / 100)        cpu.weight
 *   cpu cap          cpu.cfs_quota_us / cpu.cfs_period_us    cpu.max
 *   cpu usage        cpuacct.usage                           cpu.stat usage_usec
 *   memory limit     memory.limit_in_bytes                   memory.max
 *   OOM kills        memory.oom_control oom_kill             memory.events oom_kill
 *   freezer          freezer.state                           cgroup.freeze, cgroup.events frozen
 *   task limit       pids.max (pids hierarchy)               pids.max
 *   processes        cgroup.procs of each hierarchy          cgroup.procs
 *   RT runtime       cpu.rt_runtime_us (RT group scheduling) none: RT group scheduling is v1 only
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import type { ApiClient } from '../../src/cli/client.js';
import { readKeyValues } from '../../src/kernel/cgroup/files.js';
import { weightToShares } from '../../src/kernel/cgroup/v1.js';

/** memory.limit_in_bytes reads back at least this when there is no limit (page-rounded LONG_MAX). */
const V1_NO_LIMIT = 2 ** 62;

export type FreezerState = 'frozen' | 'freezing' | 'thawed';

export interface NodeDocument {
  backend: 'v1' | 'v2';
  cgroupRoots: Record<string, string>;
}

export class KernelGroups {
  /** The primary hierarchy: the one the daemon lists groups in (v1 cpu, v2 the unified one). */
  readonly primary: string;

  private constructor(
    readonly backend: 'v1' | 'v2',
    /** Root group directory per hierarchy, as the daemon reports it (v1: cpu, cpuacct, ...; v2: unified). */
    readonly roots: Readonly<Record<string, string>>,
  ) {
    this.primary = backend === 'v1' ? 'cpu' : 'unified';
  }

  /** The layout of a running daemon (a TestDaemon's api, or any ApiClient). */
  static async of(source: { api: ApiClient } | ApiClient): Promise<KernelGroups> {
    const api = 'api' in source ? source.api : source;
    return KernelGroups.fromNode(await api.get<NodeDocument>('/v1/node'));
  }

  /** The layout the status document's node section describes. */
  static fromNode(node: NodeDocument): KernelGroups {
    return new KernelGroups(node.backend, { ...node.cgroupRoots });
  }

  /** Directory of a group in the hierarchy named `hierarchy` (a key of roots: "cpu", "memory", "unified" ...). */
  dir(hierarchy: string, group = ''): string {
    const root = this.hierarchyRoot(hierarchy);
    return group === '' ? root : join(root, group);
  }

  /** Directory of a group in the hierarchy carrying a controller ("cpu", "cpuacct", "memory", "freezer", "pids", "io"). */
  controllerDir(controller: string, group = ''): string {
    if (this.backend === 'v2') return this.dir('unified', group);
    return this.dir(controller === 'io' ? 'blkio' : controller, group);
  }

  /** The group's directory in every hierarchy (v1: one per controller plus the unified one; v2: one). */
  dirs(group = ''): string[] {
    return [...new Set(Object.keys(this.roots).map((h) => this.dir(h, group)))];
  }

  /** Whether the group exists in the primary hierarchy. */
  exists(group: string): boolean {
    return existsSync(join(this.dir(this.primary, group), 'cgroup.procs'));
  }

  /** Every group below the daemon's root, as "<hierarchy>:<group>", in each hierarchy it reports. */
  allGroups(): string[] {
    const found: string[] = [];
    for (const hierarchy of Object.keys(this.roots)) {
      const root = this.dir(hierarchy);
      const walk = (group: string): void => {
        let entries: Dirent[] = [];
        try {
          entries = readdirSync(join(root, group), { withFileTypes: true });
        } catch {
          return; // removed while we looked
        }
        for (const entry of entries.filter((e) => e.isDirectory())) {
          const child = group === '' ? entry.name : `${group}/${entry.name}`;
          found.push(`${hierarchy}:${child}`);
          walk(child);
        }
      };
      walk('');
    }
    return found.sort();
  }

  /** Hierarchies in which the group's directory still exists (empty once it is removed everywhere). */
  existingDirs(group = ''): string[] {
    return this.dirs(group).filter((d) => existsSync(d));
  }

  /** The file holding the group's CPU weight (cpu.shares or cpu.weight). */
  cpuWeightFile(group: string): string {
    return join(this.controllerDir('cpu', group), this.backend === 'v1' ? 'cpu.shares' : 'cpu.weight');
  }

  /** The group's CPU weight in cgroup v2 units (1..10000); on v1 the weight whose cpu.shares the file holds. */
  cpuWeight(group: string): number {
    const value = Number(readTrim(this.cpuWeightFile(group)));
    if (this.backend === 'v2') return value;
    // cpu.shares = floor(weight x 1024 / 100): the smallest weight that maps onto the value.
    const weight = Math.ceil((value * 100) / 1024);
    if (weightToShares(weight) !== value) throw new Error(`cpu.shares ${value} is no cgroup v2 weight's (sliced writes weights)`);
    return weight;
  }

  /** The group's CPU cap in millicores (quota / period), or null for none. */
  cpuLimit(group: string): number | null {
    const dir = this.controllerDir('cpu', group);
    if (this.backend === 'v1') {
      const quota = Number(readTrim(join(dir, 'cpu.cfs_quota_us')));
      return quota < 0 ? null : (quota * 1000) / Number(readTrim(join(dir, 'cpu.cfs_period_us')));
    }
    const [quota, period] = readTrim(join(dir, 'cpu.max')).split(' ');
    return quota === 'max' ? null : (Number(quota) * 1000) / Number(period);
  }

  /** The file of the group's cumulative CPU time (cpuacct.usage or cpu.stat). */
  cpuUsageFile(group: string): string {
    return this.backend === 'v1'
      ? join(this.controllerDir('cpuacct', group), 'cpuacct.usage')
      : join(this.controllerDir('cpu', group), 'cpu.stat');
  }

  /** Cumulative CPU time of the group and its descendants, in nanoseconds. */
  cpuUsageNs(group: string): number {
    return parseCpuUsage(this.cpuUsageFile(group), readFileSync(this.cpuUsageFile(group), 'utf8'));
  }

  /** The group's hard memory limit in bytes, or null for none. */
  memoryLimit(group: string): number | null {
    const dir = this.controllerDir('memory', group);
    if (this.backend === 'v1') {
      const bytes = Number(readTrim(join(dir, 'memory.limit_in_bytes')));
      return bytes >= V1_NO_LIMIT ? null : bytes;
    }
    const text = readTrim(join(dir, 'memory.max'));
    return text === 'max' ? null : Number(text);
  }

  /** Processes the OOM killer killed in the group (and below); throws where the kernel does not count them. */
  oomKills(group: string): number {
    const dir = this.controllerDir('memory', group);
    const file = this.backend === 'v1' ? join(dir, 'memory.oom_control') : join(dir, 'memory.events');
    const kills = readKeyValues(file).get('oom_kill');
    if (kills === undefined) throw new Error(`${file} has no oom_kill line (a kernel before 4.13 does not count OOM kills)`);
    return kills;
  }

  /** Whether the group is frozen, being frozen or thawed, as the kernel reports it. */
  freezer(group: string): FreezerState {
    if (this.backend === 'v1') {
      const state = readTrim(join(this.controllerDir('freezer', group), 'freezer.state'));
      return state === 'FROZEN' ? 'frozen' : state === 'FREEZING' ? 'freezing' : 'thawed';
    }
    const dir = this.dir('unified', group);
    if (readKeyValues(join(dir, 'cgroup.events')).get('frozen') === 1) return 'frozen';
    return readTrim(join(dir, 'cgroup.freeze')) === '1' ? 'freezing' : 'thawed';
  }

  /**
   * avg10 of the group's pressure file (percent), from the cgroup2 hierarchy (on v1 the
   * unified one beside the controllers), or null where there is none (no PSI, no cgroup2).
   */
  pressure(group: string, resource: 'cpu' | 'memory' | 'io'): { some: number; full: number } | null {
    if (this.roots.unified === undefined) return null;
    const file = join(this.dir('unified', group), `${resource}.pressure`);
    if (!existsSync(file)) return null;
    const avg10 = (kind: string): number =>
      Number(new RegExp(`^${kind} avg10=([\\d.]+)`, 'm').exec(readFileSync(file, 'utf8'))?.[1] ?? NaN);
    return { some: avg10('some'), full: avg10('full') };
  }

  /** Periods the group's tasks were throttled by its CPU cap (cpu.stat nr_throttled, on v1 in the cpu hierarchy). */
  throttledPeriods(group: string): number {
    const periods = readKeyValues(join(this.controllerDir('cpu', group), 'cpu.stat')).get('nr_throttled');
    if (periods === undefined) throw new Error(`${join(this.controllerDir('cpu', group), 'cpu.stat')} has no nr_throttled line`);
    return periods;
  }

  /** The directory holding the group's pids.max, or null without a pids controller. */
  pidsDir(group = ''): string | null {
    if (this.backend === 'v1') return this.roots.pids ? this.dir('pids', group) : null;
    return this.dir('unified', group);
  }

  /** pids.max of the group: a number of tasks, or null for "max". */
  pidsMax(group: string): number | null {
    const dir = this.pidsDir(group);
    if (dir === null) throw new Error('the daemon has no pids hierarchy');
    const text = readTrim(join(dir, 'pids.max'));
    return text === 'max' ? null : Number(text);
  }

  /** Processes in the group itself, in the primary hierarchy. */
  procs(group: string): number[] {
    return readIds(join(this.dir(this.primary, group), 'cgroup.procs'));
  }

  /** Processes in the group itself, per hierarchy. */
  procsByHierarchy(group: string): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const hierarchy of Object.keys(this.roots)) out[hierarchy] = readIds(join(this.dir(hierarchy, group), 'cgroup.procs'));
    return out;
  }

  /** Hierarchies whose group does not hold `pid` (empty: the process is in the group everywhere). */
  missingFrom(group: string, pid: number): string[] {
    return Object.entries(this.procsByHierarchy(group))
      .filter(([, pids]) => !pids.includes(pid))
      .map(([hierarchy]) => hierarchy);
  }

  /**
   * Where /proc/PID/cgroup text puts a process, per hierarchy of the daemon (v1 lines
   * "N:controllers:path", the v2 line "0::path"); null where no line names that hierarchy.
   * Other lines (a command's other output) are ignored.
   */
  placement(procCgroup: string): Record<string, string | null> {
    const lines = procCgroup
      .split('\n')
      .filter((line) => /^\d+:[^:]*:\//.test(line))
      .map((line) => {
        const [id, controllers, ...path] = line.split(':');
        return { id: Number(id), controllers: controllers!.split(','), path: path.join(':') };
      });
    const out: Record<string, string | null> = {};
    for (const hierarchy of Object.keys(this.roots)) {
      const line = hierarchy === 'unified' ? lines.find((l) => l.id === 0) : lines.find((l) => l.controllers.includes(hierarchy));
      out[hierarchy] = line?.path ?? null;
    }
    return out;
  }

  /**
   * Hierarchies in which /proc/PID/cgroup text does not put the process in the group
   * (its path there must end with "/<daemon's root name>/<group>"); empty when it is in it everywhere.
   */
  misplaced(procCgroup: string, group: string): string[] {
    const rootName = this.hierarchyRoot(this.primary).split('/').pop()!;
    const suffix = group === '' ? `/${rootName}` : `/${rootName}/${group}`;
    return Object.entries(this.placement(procCgroup))
      .filter(([, path]) => path === null || !path.endsWith(suffix))
      .map(([hierarchy, path]) => `${hierarchy}: ${path ?? 'no line'}`);
  }

  /**
   * Why real-time runtime cannot be given to groups here, or null when it can: cgroup v2
   * has no RT group scheduling at all, and a v1 kernel built without it has no cpu.rt_runtime_us.
   * Where there is none, SCHED_FIFO tasks are not limited per group and need nothing.
   */
  realtimeGroupsReason(): string | null {
    if (this.backend === 'v2') return 'cgroup v2 has no RT group scheduling (no cpu.rt_runtime_us)';
    if (!existsSync(join(this.dir('cpu'), 'cpu.rt_runtime_us')))
      return 'the kernel has no RT group scheduling (CONFIG_RT_GROUP_SCHED: no cpu.rt_runtime_us)';
    return null;
  }

  /**
   * Test-only: let the group hold SCHED_FIFO tasks. With RT group scheduling (v1) that needs
   * real-time runtime in the root group and the group (sliced leaves it at 0); without it
   * nothing limits real-time tasks per group. Returns what was done, for the test's diagnostics.
   */
  allowRealtime(group: string, runtimeUs = 50_000): string {
    const reason = this.realtimeGroupsReason();
    if (reason !== null) return `nothing to do: ${reason}`;
    writeFileSync(join(this.dir('cpu'), 'cpu.rt_runtime_us'), String(2 * runtimeUs));
    writeFileSync(join(this.dir('cpu', group), 'cpu.rt_runtime_us'), String(runtimeUs));
    return `cpu.rt_runtime_us ${2 * runtimeUs} in the root group, ${runtimeUs} in ${group}`;
  }

  private hierarchyRoot(hierarchy: string): string {
    const root = this.roots[hierarchy];
    if (root === undefined)
      throw new Error(`the daemon (cgroup ${this.backend}) has no ${hierarchy} hierarchy; it has: ${Object.keys(this.roots).join(', ')}`);
    return root;
  }
}

/** Nanoseconds from cpuacct.usage (v1) or cpu.stat's usage_usec (v2), by the file's name. */
export function parseCpuUsage(file: string, text: string): number {
  if (!file.endsWith('cpu.stat')) return Number(text.trim());
  const usec = /^usage_usec (\d+)$/m.exec(text)?.[1];
  if (usec === undefined) throw new Error(`${file} has no usage_usec line: ${JSON.stringify(text)}`);
  return Number(usec) * 1000;
}

function readTrim(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

function readIds(path: string): number[] {
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map(Number);
}

/** Remove a cgroup directory and the empty groups below it, deepest first (nothing when it is gone). */
export function removeEmptyGroups(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeEmptyGroups(join(dir, entry.name));
  rmdirSync(dir);
}
