/**
 * The slices' monotonic group counters (CPU time, throttling, OOM kills, block I/O, refused
 * forks), durable in the store ("/counters/<slice>"): before a slice's group is removed while
 * the slice lives on (a move between domains, a repair after a kill), its reading is retired
 * into the slice's record, durably, and only then is the group removed. Views add what the
 * current group counted since its last retirement (src/core/group-counters.ts). A deleted
 * slice's record goes with it.
 */
import type { Store } from '../cluster/store.js';
import type { CgroupBackend, CpuThrottleStats, GroupPath, IoStats, MemoryStats, PidsStats } from '../kernel/cgroup/backend.js';
import { emptyRetired, retire, withRetired, type CounterReading, type RetiredCounters } from '../core/group-counters.js';

const PREFIX = '/counters/';

export class SliceCounters {
  private readonly records = new Map<string, RetiredCounters>();

  constructor(
    private readonly store: Store,
    private readonly backend: CgroupBackend,
  ) {}

  async load(): Promise<void> {
    this.records.clear();
    for (const [key, value] of await this.store.range(PREFIX))
      this.records.set(key.slice(PREFIX.length), JSON.parse(value) as RetiredCounters);
  }

  /** The slice's figures: its retired groups' and what `group` (its current one, read as `reading`) counted since. */
  total(slice: string, group: GroupPath, reading: CounterReading): CounterReading {
    return withRetired(this.records.get(slice), this.backend.groupIdentity(group), reading);
  }

  /** Retire the final reading of a group of `slice` that is about to be removed; durable when it resolves. */
  async retire(slice: string, group: GroupPath): Promise<void> {
    const identity = this.backend.groupIdentity(group);
    if (identity === null) return; // gone already: nothing left to count
    const before = this.records.get(slice) ?? emptyRetired();
    const next = retire(before, identity, countersOf(readGroupStats(this.backend, group)));
    if (next === null) return;
    await this.store.txn([{ type: 'put', key: PREFIX + slice, value: JSON.stringify(next) }]);
    this.records.set(slice, next);
  }

  /** Drop the records of slices that are not in `slices` (deleted: a slice made again later starts from zero). */
  async forgetAllBut(slices: ReadonlySet<string>): Promise<void> {
    const gone = [...this.records.keys()].filter((s) => !slices.has(s));
    if (gone.length === 0) return;
    await this.store.txn(gone.map((s) => ({ type: 'delete' as const, key: PREFIX + s })));
    for (const s of gone) this.records.delete(s);
  }
}

/** A group's kernel figures, each absent where it cannot be read (a group a kill left half made, missing from some hierarchies). */
export interface GroupStats {
  cpuNs?: number;
  throttle?: CpuThrottleStats;
  memory?: MemoryStats;
  /** null: no I/O controller. */
  io?: IoStats | null;
  /** null: no pids controller. */
  pids?: PidsStats | null;
}

/** Read a group's figures once, for its counters and for the views alike. */
export function readGroupStats(backend: CgroupBackend, group: GroupPath): GroupStats {
  const stats: GroupStats = {};
  const attempt = (read: () => void): void => {
    try {
      read();
    } catch {
      // Not there: nothing to show or count.
    }
  };
  attempt(() => (stats.cpuNs = backend.readCpuUsageNs(group)));
  attempt(() => (stats.throttle = backend.readCpuThrottle(group)));
  attempt(() => (stats.memory = backend.readMemory(group)));
  attempt(() => (stats.io = backend.readIo(group)));
  attempt(() => (stats.pids = backend.readPids(group)));
  return stats;
}

/** The monotonic counters among a group's figures; those the kernel does not offer are left out. */
export function countersOf(stats: GroupStats): CounterReading {
  const reading: CounterReading = {};
  if (stats.cpuNs !== undefined) reading.cpuNs = stats.cpuNs;
  if (stats.throttle !== undefined) {
    reading.throttledPeriods = stats.throttle.throttledPeriods;
    reading.throttledNs = stats.throttle.throttledNs;
  }
  if (stats.memory !== undefined && stats.memory.oomKills !== null) reading.oomKills = stats.memory.oomKills;
  if (stats.io)
    Object.assign(reading, {
      ioReadBytes: stats.io.readBytes,
      ioWriteBytes: stats.io.writeBytes,
      ioReadOps: stats.io.readOps,
      ioWriteOps: stats.io.writeOps,
    });
  if (stats.pids) reading.pidsRefused = stats.pids.refused;
  return reading;
}
