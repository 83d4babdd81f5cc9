/**
 * The slices' monotonic group counters (CPU time, throttling, OOM kills, block I/O, refused
 * forks), durable in the store ("/counters/<slice>"): before a slice's group is removed while
 * the slice lives on (a move between domains, a repair after a kill), its reading is retired
 * into the slice's record, durably, and only then is the group removed. Views add what the
 * current group counted since its last retirement (src/core/group-counters.ts). A deleted
 * slice's record goes with it.
 */
import type { Store } from '../cluster/store.js';
import type { CgroupBackend, GroupPath } from '../kernel/cgroup/backend.js';
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

  /**
   * What the group counts now. Counters the kernel does not offer here, or cannot be read in
   * this group (a group a kill left half made, missing from some hierarchies), are left out.
   */
  read(group: GroupPath): CounterReading {
    const reading: CounterReading = {};
    const attempt = (read: () => void): void => {
      try {
        read();
      } catch {
        // Not there: nothing to count.
      }
    };
    attempt(() => (reading.cpuNs = this.backend.readCpuUsageNs(group)));
    attempt(() => {
      const throttle = this.backend.readCpuThrottle(group);
      reading.throttledPeriods = throttle.throttledPeriods;
      reading.throttledNs = throttle.throttledNs;
    });
    attempt(() => {
      const oom = this.backend.readMemory(group).oomKills;
      if (oom !== null) reading.oomKills = oom;
    });
    attempt(() => {
      const io = this.backend.readIo(group);
      if (io !== null)
        Object.assign(reading, { ioReadBytes: io.readBytes, ioWriteBytes: io.writeBytes, ioReadOps: io.readOps, ioWriteOps: io.writeOps });
    });
    attempt(() => {
      const pids = this.backend.readPids(group);
      if (pids !== null) reading.pidsRefused = pids.refused;
    });
    return reading;
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
    const next = retire(before, identity, this.read(group));
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
