/**
 * What queueing theory says the simulator must give, for its checks (test/unit/sim-theory,
 * bench:simulate): N single-server nodes, Poisson arrivals at `load` per node, exponential
 * service of mean 1. Random placement makes each node an M/M/1 queue; the power of two
 * choices is Mitzenmacher's supermarket model, whose fixed point gives the mean time in the
 * system as N grows: sum over i >= 1 of load^((d^i - d) / (d - 1)). With exponential service,
 * a node that shares its CPU among its tasks (processor sharing) has the same numbers of tasks
 * over time as a first-come first-served one, so the same means.
 */
import { poissonJobs } from './workload.js';
import { documentFor, simulate } from './engine.js';
import type { SimResult } from './metrics.js';

/** Mean sojourn of an M/M/1 queue with service rate 1. */
export function mm1Sojourn(load: number): number {
  return 1 / (1 - load);
}

/** Mean sojourn in the supermarket model with d choices (service rate 1), N to infinity. */
export function supermarketSojourn(load: number, d: number): number {
  let sum = 0;
  for (let i = 1; i < 64; i++) {
    const term = load ** ((d ** i - d) / (d - 1));
    sum += term;
    if (term < 1e-15) break;
  }
  return sum;
}

/** One theory run: `nodes` one-CPU nodes at `load`, `jobs` arrivals, the first fifth left out (warm-up). */
export function theoryRun(
  policy: 'random' | 'best_of_two',
  options: { nodes: number; jobs: number; load: number; seed: number },
): Promise<SimResult> {
  return simulate({
    nodes: { count: options.nodes, cpuMillicores: 1000 },
    jobs: poissonJobs({ count: options.jobs, rate: options.load * options.nodes, meanDuration: 1, cpu: 1000, seed: options.seed }),
    document: documentFor(policy),
    label: policy,
    seed: options.seed,
    // The supermarket model compares queues as they are: loads are seen after every arrival and departure.
    loadUpdateMs: policy === 'best_of_two' ? 'instant' : 1000,
    warmup: 0.2,
    cooldown: 0.02,
  });
}
