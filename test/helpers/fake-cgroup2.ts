/**
 * A cgroup v2 fixture tree plus a simulated kernel, for testing the v2 backend, the agent and
 * the CPU controller where the kernel's v2 controllers are not available.
 *
 * The tree lives under os.tmpdir(): `<mount>/own/` stands for the daemon's own group (it
 * offers "cpu memory io pids"), and sliced's root group is `<mount>/own/<rootName>`.
 * `populate()` gives every directory under the root the control files the kernel would show.
 *
 * `FakeCfs` plays an ideal CFS: each simulated thread wants one CPU (1000 millicores); every
 * period it reads the cpu.weight and cpu.max files the backend wrote and divides the node
 * top-down, at each level in proportion to cpu.weight with every child capped by
 * min(its demand, its cpu.max quota) and the excess handed on to the others (weighted
 * water-filling). It then adds the CPU time to cpu.stat of each group and its ancestors,
 * lists the thread ids in cgroup.threads, and accounts each thread's run and wait time for
 * the controller's SchedProbe: a thread that got less than its CPU waited for the rest.
 *
 * Thread ids start at 900,000,000, above any possible pid_max (2^22), so nothing that
 * signals or inspects them can ever reach a real process.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CgroupV2Backend, type ProcessProbe, type V2Layout } from '../../src/kernel/cgroup/v2.js';
import { CPU_PERIOD_US, groupKey, type GroupPath } from '../../src/kernel/cgroup/backend.js';
import type { SchedProbe, SchedStat } from '../../src/kernel/procfs.js';
import { SlicedError } from '../../src/core/errors.js';

const PRESSURE_ZERO = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n';

/**
 * Control files of every group, with the kernel's defaults for a new group. A plain file
 * keeps only the last write, so io.max shows the last device written, not one line per
 * device as the kernel does: fixture tests use one device at a time.
 */
export const DEFAULT_GROUP_FILES: Readonly<Record<string, string>> = {
  'cgroup.procs': '',
  'cgroup.threads': '',
  'cgroup.controllers': '',
  'cgroup.subtree_control': '',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.freeze': '0',
  'cgroup.kill': '',
  'cpu.weight': '100',
  'cpu.max': `max ${CPU_PERIOD_US}`,
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n',
  'memory.max': 'max',
  'memory.current': '0',
  'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n',
  'memory.high': 'max',
  'memory.swap.max': 'max',
  // The kernel shows io.weight with iocost and io.bfq.weight with BFQ; the fixture has both.
  'io.weight': 'default 100',
  'io.bfq.weight': 'default 100',
  'io.max': '',
  'io.stat': '',
  // pids controller: tasks, their cap, the most seen at once, forks refused at the cap.
  'pids.max': 'max',
  'pids.current': '0',
  'pids.peak': '0',
  'pids.events': 'max 0\n',
  'cpu.pressure': PRESSURE_ZERO,
  'memory.pressure': PRESSURE_ZERO,
  'io.pressure': PRESSURE_ZERO,
};

export const FIRST_FAKE_TID = 900_000_000;

export interface FakeCfsOptions {
  /** Name of sliced's root group below own/ (must start with "sliced"). */
  rootName?: string;
  /** CPU of the simulated node. */
  nodeMillicores?: number;
  /** Length of one simulated period. */
  periodMs?: number;
  /** Whether the bfq module is loaded (groups show io.bfq.weight); default true. */
  bfq?: boolean;
}

interface SimThread {
  tid: number;
  /** Simulated time at which the thread appeared. */
  startNs: bigint;
  runNs: number;
  waitNs: number;
}

interface Throttle {
  periods: number;
  throttled: number;
  throttledUs: number;
}

const THREAD_MILLICORES = 1000;

export class FakeCfs {
  /** The fixture's stand-in for the cgroup2 mount point. */
  readonly mount: string;
  /** The daemon's own group. */
  readonly own: string;
  /** sliced's root group. */
  readonly root: string;
  readonly nodeMillicores: number;
  readonly periodNs: number;
  /** Millicores each group got in the last period, by group key ("" for the root). */
  lastAllocation = new Map<string, number>();

  private nowNs = 1_000n * 1_000_000_000n; // "1000 s since boot": never the controller's 0n
  private busyNs = 0;
  private nextTid = FIRST_FAKE_TID;
  private readonly threads = new Map<string, SimThread[]>();
  private readonly byTid = new Map<number, SimThread>();
  private readonly usageNs = new Map<string, number>();
  private readonly throttle = new Map<string, Throttle>();

  /** Groups show io.bfq.weight only while BFQ is loaded (loadBfq()). */
  private bfq: boolean;

  constructor(options: FakeCfsOptions = {}) {
    this.bfq = options.bfq ?? true;
    const rootName = options.rootName ?? 'sliced-fx';
    if (!rootName.startsWith('sliced')) throw new Error(`root name ${rootName} must start with "sliced"`);
    this.nodeMillicores = options.nodeMillicores ?? 2000;
    this.periodNs = (options.periodMs ?? 100) * 1_000_000;
    this.mount = mkdtempSync(join(tmpdir(), 'sliced-fake-cgroup2-'));
    this.own = join(this.mount, 'own');
    this.root = join(this.own, rootName);
    mkdirSync(this.own);
    writeFileSync(join(this.own, 'cgroup.controllers'), 'cpu memory io pids\n');
    writeFileSync(join(this.own, 'cgroup.subtree_control'), '');
    writeFileSync(join(this.own, 'cgroup.procs'), '');
  }

  layout(): V2Layout {
    return { mount: this.mount, own: this.own, root: this.root };
  }

  /** A v2 backend on the fixture whose remove() behaves like rmdir on cgroupfs (see FixtureV2Backend). */
  backend(layout: V2Layout = this.layout(), processes?: ProcessProbe): FixtureV2Backend {
    return new FixtureV2Backend(this, layout, processes);
  }

  dir(group: GroupPath): string {
    return join(this.root, ...group);
  }

  /** Create the default control files missing in the root group and every group below it. */
  /** Loading the bfq module makes io.bfq.weight appear in every group, as on the kernel. */
  loadBfq(): void {
    this.bfq = true;
    this.populate();
  }

  populate(): void {
    for (const dir of this.groupDirs()) {
      for (const [file, content] of Object.entries(DEFAULT_GROUP_FILES)) {
        if (file === 'io.bfq.weight' && !this.bfq) continue;
        const path = join(dir, file);
        if (!existsSync(path)) writeFileSync(path, content);
      }
    }
  }

  /**
   * Delete a group's control files so that rmdir can remove it. On cgroupfs rmdir removes a
   * directory full of control files; on a plain directory it fails with ENOTEMPTY, so the
   * fixture empties the directory first. A group that still has child groups keeps its
   * files (and rmdir then fails as on the kernel).
   */
  depopulate(group: GroupPath): void {
    const dir = this.dir(group);
    if (!existsSync(dir)) return;
    const entries = readdirSync(dir, { withFileTypes: true });
    if (entries.some((e) => e.isDirectory())) return;
    for (const entry of entries) unlinkSync(join(dir, entry.name));
    const key = groupKey(group);
    this.usageNs.delete(key);
    this.throttle.delete(key);
  }

  /** Simulated threads still in the group (the fixture's "cgroup is populated"). */
  threadCount(group: GroupPath): number {
    return this.threads.get(groupKey(group))?.length ?? 0;
  }

  /**
   * Set how many busy threads run in a group (each wants one CPU). New threads get new ids
   * and start now; removed threads are gone for good, as exited threads are.
   */
  setDemand(group: GroupPath, threadCount: number): void {
    const key = groupKey(group);
    const list = this.threads.get(key) ?? [];
    while (list.length < threadCount) {
      const thread: SimThread = { tid: this.nextTid++, startNs: this.nowNs, runNs: 0, waitNs: 0 };
      list.push(thread);
      this.byTid.set(thread.tid, thread);
    }
    while (list.length > threadCount) this.byTid.delete(list.pop()!.tid);
    this.threads.set(key, list);
  }

  /** Demand of a group in millicores (its own threads only). */
  demandOf(group: GroupPath): number {
    return this.threadCount(group) * THREAD_MILLICORES;
  }

  /** Run one period: divide the node as an ideal CFS would and account the time. */
  advance(): Map<string, number> {
    const allocation = new Map<string, number>();
    if (existsSync(this.root)) {
      const rootDemand = this.effectiveDemand([]);
      const rootCap = Math.min(this.nodeMillicores, this.quota([]));
      allocation.set('', Math.min(rootCap, rootDemand));
      this.divide([], allocation.get('')!, allocation);
    }
    const periodNs = this.periodNs;
    for (const [key, millicores] of allocation) {
      const ns = (millicores / 1000) * periodNs;
      this.usageNs.set(key, (this.usageNs.get(key) ?? 0) + ns);
      if (key === '') this.busyNs += ns;
      const group = key === '' ? [] : key.split('/');
      const quota = this.quota(group);
      const stats = this.throttle.get(key) ?? { periods: 0, throttled: 0, throttledUs: 0 };
      const wanted = this.uncappedDemand(group);
      if (Number.isFinite(quota) && wanted > 0) {
        stats.periods++;
        // Ran out of quota before the period ended: throttled for the rest of it.
        if (wanted > quota && millicores >= quota - 1e-6) {
          stats.throttled++;
          stats.throttledUs += Math.round(((1 - quota / wanted) * periodNs) / 1000);
        }
      }
      this.throttle.set(key, stats);
      const list = this.threads.get(key) ?? [];
      const perThread = list.length > 0 ? millicores / list.length : 0;
      for (const thread of list) {
        thread.runNs += (perThread / 1000) * periodNs;
        thread.waitNs += ((THREAD_MILLICORES - perThread) / 1000) * periodNs;
      }
    }
    this.nowNs += BigInt(periodNs);
    this.writeStats();
    this.lastAllocation = allocation;
    return allocation;
  }

  /** The simulated monotonic clock, in nanoseconds (for CpuController's `clock`). */
  readonly clock = (): bigint => this.nowNs;

  /** /proc as the controller sees it (for CpuController's `probe`). */
  readonly probe: SchedProbe = {
    machineBusyNs: () => this.busyNs,
    uptimeSeconds: () => Number(this.nowNs) / 1e9,
    schedStat: (tid: number): SchedStat | null => {
      const thread = this.byTid.get(tid);
      return thread ? { runNs: Math.round(thread.runNs), waitNs: Math.round(thread.waitNs) } : null;
    },
    startedSince: (tid: number, uptime: number): boolean => {
      const thread = this.byTid.get(tid);
      return thread !== undefined && Number(thread.startNs) / 1e9 >= uptime - 0.01;
    },
  };

  /** Remove the whole fixture tree. */
  destroy(): void {
    rmSync(this.mount, { recursive: true, force: true });
  }

  // ---- simulation ------------------------------------------------------------------------

  private groupDirs(): string[] {
    const out: string[] = [];
    const walk = (dir: string): void => {
      if (!existsSync(dir)) return;
      out.push(dir);
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(join(dir, entry.name));
    };
    walk(this.root);
    return out;
  }

  private childGroups(group: GroupPath): string[] {
    const dir = this.dir(group);
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  }

  private readFile(group: GroupPath, file: string): string | null {
    try {
      return readFileSync(join(this.dir(group), file), 'utf8').trim();
    } catch {
      return null;
    }
  }

  /** cpu.weight as the kernel would hold it; a value it would refuse fails the test loudly. */
  private weight(group: GroupPath): number {
    const text = this.readFile(group, 'cpu.weight') ?? '100';
    const weight = Number(text);
    if (!Number.isInteger(weight) || weight < 1 || weight > 10000) {
      throw new Error(`${join(this.dir(group), 'cpu.weight')} holds ${JSON.stringify(text)}, which cgroup v2 refuses (1..10000)`);
    }
    return weight;
  }

  /** cpu.max as millicores (Infinity for "max"). */
  private quota(group: GroupPath): number {
    const text = this.readFile(group, 'cpu.max') ?? `max ${CPU_PERIOD_US}`;
    const match = /^(max|\d+) (\d+)$/.exec(text);
    if (!match) throw new Error(`${join(this.dir(group), 'cpu.max')} holds ${JSON.stringify(text)}, which cgroup v2 refuses`);
    if (match[1] === 'max') return Infinity;
    return (Number(match[1]) / Number(match[2])) * 1000;
  }

  /** What the group's threads and its children's would use with no quota and a free CPU each. */
  private uncappedDemand(group: GroupPath): number {
    let demand = this.demandOf(group);
    for (const child of this.childGroups(group)) demand += this.effectiveDemand([...group, child]);
    return demand;
  }

  /** What a group could use: its threads, or its children's demand, capped by its quota. */
  private effectiveDemand(group: GroupPath): number {
    let demand = this.demandOf(group);
    for (const child of this.childGroups(group)) demand += this.effectiveDemand([...group, child]);
    return Math.min(demand, this.quota(group));
  }

  /** Weighted water-filling of `capacity` among the children of `group`, recursively. */
  private divide(group: GroupPath, capacity: number, allocation: Map<string, number>): void {
    const children = this.childGroups(group).map((name) => {
      const path = [...group, name];
      return { path, weight: this.weight(path), cap: this.effectiveDemand(path), share: 0 };
    });
    // The group's own threads (a leaf) take what its children do not; in v2 only leaves hold them.
    let remaining = capacity;
    let active = children.filter((c) => c.cap > 0);
    while (active.length > 0 && remaining > 1e-9) {
      const totalWeight = active.reduce((sum, c) => sum + c.weight, 0);
      const full = active.filter((c) => (remaining * c.weight) / totalWeight >= c.cap);
      if (full.length === 0) {
        for (const c of active) c.share = (remaining * c.weight) / totalWeight;
        break;
      }
      for (const c of full) {
        c.share = c.cap;
        remaining -= c.cap;
      }
      active = active.filter((c) => !full.includes(c));
    }
    for (const child of children) {
      allocation.set(groupKey(child.path), child.share);
      this.divide(child.path, child.share, allocation);
    }
  }

  private writeStats(): void {
    for (const dir of this.groupDirs()) {
      const rel = dir === this.root ? [] : dir.slice(this.root.length + 1).split('/');
      const key = groupKey(rel);
      if (!existsSync(join(dir, 'cpu.stat'))) continue; // not populated yet
      const usageUs = Math.round((this.usageNs.get(key) ?? 0) / 1000);
      const t = this.throttle.get(key) ?? { periods: 0, throttled: 0, throttledUs: 0 };
      writeFileSync(
        join(dir, 'cpu.stat'),
        `usage_usec ${usageUs}\nuser_usec ${usageUs}\nsystem_usec 0\nnr_periods ${t.periods}\nnr_throttled ${t.throttled}\nthrottled_usec ${t.throttledUs}\n`,
      );
      const tids = (this.threads.get(key) ?? []).map((thread) => `${thread.tid}\n`).join('');
      writeFileSync(join(dir, 'cgroup.threads'), tids);
    }
  }
}

/**
 * The real v2 backend with fixture adaptations: create() adds the control files, and remove() first deletes the group's
 * control files (FakeCfs.depopulate), because rmdir on cgroupfs removes a directory full of
 * control files but a plain directory must be empty. Like the kernel, it refuses to remove a
 * group that still holds (simulated) threads or processes, and applies the placement rules to
 * cgroup.subtree_control and cgroup.procs (see applyControlWrite).
 */
export class FixtureV2Backend extends CgroupV2Backend {
  private readonly fake: FakeCfs;

  constructor(fake: FakeCfs, layout: V2Layout, processes?: ProcessProbe) {
    super(layout, processes);
    this.fake = fake;
  }

  protected override writeControl(path: string, value: string): void {
    applyControlWrite(this.fake.mount, path, value);
  }

  /** rmdir on cgroupfs: EBUSY while the group holds processes, else it goes with its control files. */
  protected override removeGroupDir(dir: string): void {
    const busy = readList(join(dir, 'cgroup.procs')).length > 0 || readdirSync(dir, { withFileTypes: true }).some((e) => e.isDirectory());
    if (busy) throw new SlicedError('EIO', `kernel refused removing ${dir}: EBUSY (it still has processes or child groups)`);
    rmSync(dir, { recursive: true, force: true });
  }

  /** mkdir on cgroupfs makes the control files at once; here populate() does. */
  override create(group: GroupPath): void {
    super.create(group);
    this.fake.populate();
  }

  override remove(group: GroupPath): void {
    if (
      this.fake.threadCount(group) > 0 ||
      (existsSync(this.fake.dir(group)) && readList(join(this.fake.dir(group), 'cgroup.procs')).length > 0)
    ) {
      throw new SlicedError('EIO', `kernel refused removing ${this.fake.dir(group)}: EBUSY (it still has tasks)`);
    }
    this.fake.depopulate(group);
    super.remove(group);
  }
}

function readList(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

function kernelRefusal(path: string, value: string, errno: string, why: string): SlicedError {
  return new SlicedError('EIO', `kernel refused writing ${JSON.stringify(value)} to ${path}: ${errno} (${why})`, { errno, path });
}

/**
 * A write to cgroup.subtree_control or cgroup.procs in the fixture tree below `mount`, as
 * cgroup v2 does it. The "no internal processes" rule: a group other than the root that
 * holds processes refuses to enable controllers (EBUSY), and a group other than the root with
 * controllers enabled refuses processes (EBUSY). subtree_control shows the enabled set in the
 * kernel's order ("cpu io memory pids"); a pid written to cgroup.procs leaves every other
 * group of the tree, as a moved process does. Other files keep the last write.
 */
/** The order in which the kernel lists controllers (its subsystem ids). */
const KERNEL_ORDER = ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'];

export function applyControlWrite(mount: string, path: string, value: string): void {
  const dir = dirname(path);
  const isRoot = dir === mount;
  if (basename(path) === 'cgroup.subtree_control') {
    const enabled = readList(path);
    const tokens = value.split(/\s+/).filter(Boolean);
    if (tokens.some((t) => t.startsWith('+')) && !isRoot && readList(join(dir, 'cgroup.procs')).length > 0) {
      throw kernelRefusal(path, value, 'EBUSY', 'the group holds processes');
    }
    for (const token of tokens) {
      const name = token.slice(1);
      if (token.startsWith('+') && !enabled.includes(name)) enabled.push(name);
      if (token.startsWith('-') && enabled.includes(name)) enabled.splice(enabled.indexOf(name), 1);
    }
    const rank = (c: string): number => (KERNEL_ORDER.includes(c) ? KERNEL_ORDER.indexOf(c) : KERNEL_ORDER.length);
    writeFileSync(path, `${enabled.sort((a, b) => rank(a) - rank(b)).join(' ')}\n`);
    return;
  }
  if (basename(path) === 'cgroup.procs') {
    const pid = value.trim();
    if (!isRoot && readList(join(dir, 'cgroup.subtree_control')).length > 0) {
      throw kernelRefusal(path, value, 'EBUSY', 'the group has controllers enabled for its children');
    }
    const walk = (at: string): void => {
      const procs = join(at, 'cgroup.procs');
      if (at !== dir && existsSync(procs)) {
        const before = readList(procs);
        if (before.includes(pid))
          writeFileSync(
            procs,
            before
              .filter((p) => p !== pid)
              .map((p) => `${p}\n`)
              .join(''),
          );
      }
      for (const entry of readdirSync(at, { withFileTypes: true })) if (entry.isDirectory()) walk(join(at, entry.name));
    };
    walk(mount);
    const now = readList(path);
    if (!now.includes(pid)) writeFileSync(path, [...now, pid].map((p) => `${p}\n`).join(''));
    return;
  }
  writeFileSync(path, value);
}
