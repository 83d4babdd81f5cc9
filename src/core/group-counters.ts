/**
 * Monotonic per-slice counters over kernel groups that come and go. A slice's group is
 * removed and made anew when the slice moves between domains (and a restart may repair a
 * move a kill cut short), and a new group's counters start from zero. Each group's reading is
 * therefore "retired" into the slice's record before the group is removed, and a slice's
 * figure is what its retired groups counted plus what its current group counted since it was
 * last retired. A group is known by its identity (path and inode), with the reading it was
 * retired at: retiring it again adds only what it counted since, and a group that was retired
 * and then kept (a kill between the retirement and the removal) counts on from there. Packet
 * accounts do the same with their own fold (accounting.ts).
 */

export const GROUP_COUNTERS = [
  'cpuNs',
  'throttledPeriods',
  'throttledNs',
  'oomKills',
  'ioReadBytes',
  'ioWriteBytes',
  'ioReadOps',
  'ioWriteOps',
  'pidsRefused',
] as const;
export type GroupCounter = (typeof GROUP_COUNTERS)[number];
/** A reading; a counter the kernel does not offer (no controller) is absent. */
export type CounterReading = Partial<Record<GroupCounter, number>>;

export interface RetiredGroup {
  identity: string;
  /** The group's reading when it was (last) retired. */
  last: CounterReading;
}

export interface RetiredCounters {
  /** What the slice's groups counted up to their retirement. */
  retired: CounterReading;
  /** The groups retired, newest last (bounded). */
  groups: RetiredGroup[];
}

/** How many retired groups are remembered: far more than groups a slice has at once. */
const REMEMBERED = 16;

export function emptyRetired(): RetiredCounters {
  return { retired: {}, groups: [] };
}

/** What `reading` counted beyond `since` (a counter that went back started again: all of it). */
function growth(reading: CounterReading, since: CounterReading | undefined): CounterReading {
  const grown: CounterReading = {};
  for (const name of GROUP_COUNTERS) {
    const now = reading[name];
    if (now === undefined) continue;
    const before = since?.[name] ?? 0;
    grown[name] = now >= before ? now - before : now;
  }
  return grown;
}

/** Add what a group counted since it was last retired (all of it the first time); null when nothing changed. */
export function retire(state: RetiredCounters, identity: string, reading: CounterReading): RetiredCounters | null {
  const previous = state.groups.find((g) => g.identity === identity);
  const grown = growth(reading, previous?.last);
  if (previous !== undefined && GROUP_COUNTERS.every((name) => (grown[name] ?? 0) === 0)) return null;
  const retired: CounterReading = { ...state.retired };
  for (const name of GROUP_COUNTERS) {
    const value = grown[name];
    if (value !== undefined) retired[name] = (retired[name] ?? 0) + value;
  }
  const groups = [...state.groups.filter((g) => g.identity !== identity), { identity, last: { ...reading } }].slice(-REMEMBERED);
  return { retired, groups };
}

/** The slice's figures: what its groups counted up to their retirement, plus its current group's since. */
export function withRetired(state: RetiredCounters | undefined, identity: string | null, reading: CounterReading): CounterReading {
  if (state === undefined) return reading;
  const previous = identity === null ? undefined : state.groups.find((g) => g.identity === identity);
  const current = growth(reading, previous?.last);
  const total: CounterReading = { ...current };
  for (const name of GROUP_COUNTERS) {
    const past = state.retired[name];
    if (past !== undefined) total[name] = (current[name] ?? 0) + past;
  }
  return total;
}
