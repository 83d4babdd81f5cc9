/**
 * Decisions of the Kerrighed/MOSIX load balancer and of swap avoidance, as pure functions.
 *
 * MOSIX rule: consider a migration only when the local load is at least 1.5 x the load of
 * the process to move and at least 2 s have passed since the last migration; the target is
 * the place minimising remote_load + single_load x 1.3, and the move happens only if that
 * is below the local load. "Place" is a node in a cluster and a CPU on a single node.
 */
export const MIGRATION_MIN_INTERVAL_MS = 2000;
export const LOCAL_LOAD_FACTOR = 1.5;
export const REMOTE_PENALTY = 1.3;

export interface BalancedProcess {
  pid: number;
  /** Load the process induces (millicores). */
  load: number;
  /** Where it runs now. */
  place: string;
}

export interface Migration {
  pid: number;
  from: string;
  to: string;
  /** remote_load + single_load x 1.3 at the target. */
  cost: number;
  localLoad: number;
}

export function mosixDecision(input: {
  now: number;
  lastMigrationAt: number;
  /** Load of every place (millicores). */
  loads: ReadonlyMap<string, number>;
  processes: readonly BalancedProcess[];
  /** The place to unload; defaults to the most loaded one. */
  local?: string;
  /** The remote penalty on the process's load (Kerrighed's stab_factor / 100); 1.3 by default. */
  penalty?: number;
}): Migration | null {
  const penalty = input.penalty ?? REMOTE_PENALTY;
  if (input.now - input.lastMigrationAt < MIGRATION_MIN_INTERVAL_MS) return null;
  let local = input.local;
  if (local === undefined) {
    let worst = -Infinity;
    for (const [place, load] of input.loads) if (load > worst || (load === worst && place < local!)) [local, worst] = [place, load];
  }
  if (local === undefined) return null;
  const localLoad = input.loads.get(local) ?? 0;
  const candidates = input.processes
    .filter((p) => p.place === local && p.load > 0 && localLoad >= LOCAL_LOAD_FACTOR * p.load)
    .sort((a, b) => b.load - a.load || a.pid - b.pid);
  for (const p of candidates) {
    let best: { place: string; cost: number } | null = null;
    for (const [place, load] of input.loads) {
      if (place === local) continue;
      const cost = load + p.load * penalty;
      if (!best || cost < best.cost || (cost === best.cost && place < best.place)) best = { place, cost };
    }
    if (best && best.cost < localLoad) return { pid: p.pid, from: local, to: best.place, cost: best.cost, localLoad };
  }
  return null;
}

/**
 * Kerrighed's mosix_load_balancer as its kernel module decides, on an update of its local_load
 * port (the 1.5 x and 2 s rules sit in the filters in front of that port there): the process
 * with the second-highest load (the only one when alone) goes to the node with the lowest
 * remote_load + single_process_load x stab_factor / 100, if that is below the local load.
 * Nodes whose remote figures are unknown are skipped.
 */
export function kerrighedMosixDecision(input: {
  localLoad: number;
  /** The other nodes' remote_load and single_process_load. */
  remote: ReadonlyMap<string, { load: number; singleProcessLoad: number | undefined }>;
  /** Candidate processes on this node and their loads (any unit: only their order counts). */
  processes: ReadonlyArray<{ pid: number; load: number }>;
  /** Percent of one process's load (Kerrighed's default 130). */
  stabFactor: number;
}): { pid: number; to: string; cost: number } | null {
  const ranked = [...input.processes].sort((a, b) => b.load - a.load || a.pid - b.pid);
  const chosen = ranked.length > 1 ? ranked[1]! : ranked[0];
  if (!chosen) return null;
  let best: { to: string; cost: number } | null = null;
  for (const [node, { load, singleProcessLoad }] of input.remote) {
    if (singleProcessLoad === undefined) continue;
    const cost = load + (singleProcessLoad * input.stabFactor) / 100;
    if (cost < input.localLoad && (!best || cost < best.cost || (cost === best.cost && node < best.to))) best = { to: node, cost };
  }
  return best ? { pid: chosen.pid, ...best } : null;
}

/** mosix_probe's loads: `mean` rises slowly and drops at once, `upper` rises at once and decays. */
export interface MosixLoads {
  mean: number;
  upper: number;
}

/** Kerrighed's mosix_probe smoothing of one new load sample (HZ x the mean number of runnable tasks). */
export function nextMosixLoads(previous: MosixLoads | null, sample: number): MosixLoads {
  if (!previous) return { mean: sample, upper: sample };
  return {
    mean: sample < previous.mean ? sample : (5 * previous.mean + 3 * sample) / 8,
    upper: sample > previous.upper ? sample : (7 * previous.upper + sample) / 8,
  };
}

export interface SliceCandidate {
  name: string;
  shares: number;
  /** CPU used recently (millicores); only busy slices are frozen. */
  usage: number;
}

/** The lowest-priority busy slice (fewest shares, then the busiest, then by name), or null. */
export function swapVictim(slices: readonly SliceCandidate[], exclude: ReadonlySet<string>): string | null {
  const busy = slices.filter((s) => s.usage > 0 && !exclude.has(s.name));
  busy.sort((a, b) => a.shares - b.shares || b.usage - a.usage || a.name.localeCompare(b.name));
  return busy[0]?.name ?? null;
}
