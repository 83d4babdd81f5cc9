/**
 * Figures the kernel reports about a group, as plain data: the cgroup backends read them,
 * the daemon's views and the API show them (src/wire/slices.ts).
 */

/** Cumulative block I/O of a group and its descendants, summed over devices. */
export interface IoStats {
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
}

/** The pids controller's figures of a group (tasks: processes and threads). */
export interface PidsStats {
  /** Tasks in the group and below (pids.current). */
  current: number;
  /** pids.max, or null for "max". */
  max: number | null;
  /** Most tasks seen at once (pids.peak), or null where the kernel has no such file. */
  peak: number | null;
  /** Forks refused because of a pids limit ("max" in pids.events). */
  refused: number;
}

/** avg10 of a pressure file, in percent. */
export interface Pressure {
  some: number;
  full: number;
}
