/**
 * What a simulation run gives: per-job figures (sojourn, slowdown, wait) gathered as jobs end,
 * without keeping them: exact means, and percentiles from a histogram of buckets 0.5% wide
 * (so p50 and p99 are within 0.5% of the exact order statistics). Pure.
 */

export interface Distribution {
  mean: number;
  p50: number;
  p99: number;
}

/** Positive values in logarithmic buckets from 1e-6 to 1e12; smaller ones count in the first. */
export class Histogram {
  private static readonly MIN = 1e-6;
  private static readonly GROWTH = Math.log1p(0.005);
  private readonly counts = new Float64Array(Math.ceil(Math.log(1e18) / Histogram.GROWTH) + 1);
  count = 0;
  sum = 0;

  add(v: number): void {
    this.count++;
    this.sum += v;
    const k = v <= Histogram.MIN ? 0 : Math.min(this.counts.length - 1, Math.ceil(Math.log(v / Histogram.MIN) / Histogram.GROWTH));
    this.counts[k]!++;
  }

  /** The q-quantile, as the upper edge of its bucket. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let k = 0; k < this.counts.length; k++) {
      seen += this.counts[k]!;
      if (seen >= rank) return Histogram.MIN * Math.exp(k * Histogram.GROWTH);
    }
    return Infinity;
  }

  /** The distribution function at up to `points` values: [value, share of values at most it]. */
  cdf(points = 100): Array<[number, number]> {
    if (this.count === 0) return [];
    const out: Array<[number, number]> = [];
    let seen = 0;
    let next = 0;
    for (let k = 0; k < this.counts.length; k++) {
      if (this.counts[k] === 0) continue;
      seen += this.counts[k]!;
      const share = seen / this.count;
      if (share >= next || seen === this.count) {
        out.push([Histogram.MIN * Math.exp(k * Histogram.GROWTH), share]);
        next = share + 1 / points;
      }
    }
    return out;
  }

  summary(): Distribution {
    return { mean: this.count > 0 ? this.sum / this.count : NaN, p50: this.quantile(0.5), p99: this.quantile(0.99) };
  }
}

export interface SimResult {
  label: string;
  nodes: number;
  jobs: number;
  /** Jobs in the statistics (warm-up and cool-down left out). */
  measured: number;
  /** Time from arrival to completion, seconds. */
  sojourn: Distribution;
  /** Sojourn over the job's run time alone on a node (1: no contention). */
  slowdown: Distribution;
  /** Sojourn minus the run time alone: the time lost to sharing, seconds. */
  wait: Distribution;
  /** The slowdown's distribution function: [slowdown, share of jobs at most it], about 100 points. */
  slowdownCdf: Array<[number, number]>;
  /** Share of all nodes' CPU the tasks got, sampled over the run: [seconds, 0..1]. */
  utilisation: Array<[number, number]>;
  utilisationMean: number;
  /** The most loaded node's demand over the mean node's, sampled: [seconds, ratio]. */
  imbalance: Array<[number, number]>;
  imbalanceMean: number;
  /** Tasks moved between nodes by balancers (through the taskMigration service). */
  migrations: number;
  /**
   * Jobs with demand curves (PlanetLab's VMs), which end by time: how many, the CPU they asked
   * (CPU-seconds), and the share of it they got. Null when the workload has none.
   */
  curves: { tasks: number; askedCpuSeconds: number; servedFraction: number } | null;
  /** Share of all nodes' time spent asked for more CPU than they have (CloudSim's SLATAH, over all nodes). */
  overloadedFraction: number;
  /** Tasks a scheduler refused, and why. */
  refused: number;
  refusals: Record<string, number>;
  /** Tasks no scheduler placed (no answer, or a node the simulation does not have). */
  unplaced: number;
  /** Placements that took a node's memory past its size. */
  reservationViolations: number;
  decisions: number;
  /** Placement decisions per second of wall time spent deciding. */
  decisionsPerSecond: number;
  simulatedSeconds: number;
  wallSeconds: number;
  /** Simulated seconds per wall second. */
  speedup: number;
}

/** Per-job figures of the jobs in the statistics, as they end. */
export class JobFigures {
  readonly sojourn = new Histogram();
  readonly slowdown = new Histogram();
  readonly wait = new Histogram();

  add(sojourn: number, duration: number): void {
    this.sojourn.add(sojourn);
    this.wait.add(Math.max(0, sojourn - duration));
    this.slowdown.add(duration > 0 ? sojourn / duration : 1);
  }
}

export const meanOf = (points: ReadonlyArray<[number, number]>): number =>
  points.length === 0 ? NaN : points.reduce((s, [, v]) => s + v, 0) / points.length;
