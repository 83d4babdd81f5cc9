/**
 * Monotonic per-slice counters over kernel groups that come and go. A slice's group is
 * removed and made anew when the slice moves between domains (and a restart may repair a
 * move a kill cut short), and a new group's counters start from zero. Each group's final
 * reading is therefore "retired" into the slice's record before the group is removed, once
 * per group (its identity: path and inode), and a slice's figure is what its retired groups
 * counted plus what its current group counts. Packet accounts do the same with their own
 * fold (accounting.ts).
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

export interface RetiredCounters {
  /** Sum of the final readings of the slice's removed groups. */
  retired: CounterReading;
  /** Identities of the groups already retired, newest last (bounded): a group is retired once. */
  groups: string[];
}

/** How many retired identities are remembered: far more than groups a slice has at once. */
const REMEMBERED = 16;

export function emptyRetired(): RetiredCounters {
  return { retired: {}, groups: [] };
}

/** Add a removed group's final reading, unless that group was retired before. */
export function retire(state: RetiredCounters, identity: string, final: CounterReading): RetiredCounters {
  if (state.groups.includes(identity)) return state;
  const retired: CounterReading = { ...state.retired };
  for (const name of GROUP_COUNTERS) {
    const value = final[name];
    if (value !== undefined) retired[name] = (retired[name] ?? 0) + value;
  }
  return { retired, groups: [...state.groups, identity].slice(-REMEMBERED) };
}

/** The slice's figures: its retired groups' plus its current group's reading. */
export function withRetired(state: RetiredCounters | undefined, reading: CounterReading): CounterReading {
  if (state === undefined) return reading;
  const total: CounterReading = { ...reading };
  for (const name of GROUP_COUNTERS) {
    const past = state.retired[name];
    if (past !== undefined) total[name] = (reading[name] ?? 0) + past;
  }
  return total;
}
