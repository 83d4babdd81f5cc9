/**
 * Simulator benchmark (issue 18): how fast placement decides at scale with the daemon's own
 * policy modules, how fast a real trace replays, and whether the simulator agrees with
 * queueing theory.
 *
 *   npm run bench:simulate [-- --json] [-- --arrivals N] [-- --seed S]
 *
 * - decisions at 5,000 nodes: least_loaded and best_of_two each place N arrivals (default
 *   1,000,000; Poisson at load 0.9 a node, exponential durations, loads seen once a second)
 *   through ConfigTree.placeNewTask(), as the daemon places a task. decisions_per_s counts the
 *   time spent deciding (target >= 50,000/s with the policy modules). Baselines in the same
 *   run: the same least-loaded choice by plain code over a Float64Array, no framework, as a
 *   scan and as a heap (the strongest): what the framework's layers cost per decision.
 * - sim_speedup: the NASA iPSC/860 trace (../shared/traces, sha256 checked against
 *   SOURCES.md; skipped with the reason when absent) replayed on 128 one-CPU nodes with
 *   least_loaded: simulated seconds per wall second.
 * - theory: random placement (M/M/1, 10.0) and best_of_two (supermarket model, 2.614) on 1,000
 *   nodes at load 0.9, as test/unit/sim-theory.test.ts runs them, with their relative errors.
 * - planetlab: PlanetLab's 1,052 VM curves (a day, sha256 checked) on 100 two-CPU nodes,
 *   loads seen every 5 s (as agents publish them): random placement alone, and random then
 *   every node's mosix_load_balancer (examples/simulate/mosix-balance.yaml, a tree per node):
 *   the share of the demand served, node time over capacity, migrations, wall seconds.
 * - rss_mb: the process's peak resident memory (target <= 500).
 *
 * Last line of stdout: one JSON object.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { documentFor, simulate } from '../src/sim/engine.js';
import { mm1Sojourn, supermarketSojourn, theoryRun } from '../src/sim/theory.js';
import { jobsOf, poissonJobs, readSwf } from '../src/sim/workload.js';
import { loadWorkload } from '../src/sim/run.js';
import { parseTreeYaml } from '../src/framework/document.js';
import type { SimResult } from '../src/sim/metrics.js';
import { prng } from '../src/core/prng.js';
import { argValue, finish, loadAverage, machine, round, say } from './lib.js';
import { publishedTrace } from '../test/helpers/traces.js';

const ARRIVALS = Number(argValue('--arrivals') ?? 1_000_000);
const SEED = Number(argValue('--seed') ?? 1);
const NODES = 5000;
const NASA = 'NASA-iPSC-1993-3.1-cln.swf.gz';
const PLANETLAB = 'planetlab-20110303.tar.gz';

async function decisionsAt5k(policy: 'least_loaded' | 'best_of_two'): Promise<{ perSecond: number; wallSeconds: number }> {
  const r = await simulate({
    nodes: { count: NODES, cpuMillicores: 1000 },
    jobs: poissonJobs({ count: ARRIVALS, rate: 0.9 * NODES, meanDuration: 1, cpu: 1000, seed: SEED }),
    document: documentFor(policy),
    label: policy,
    seed: SEED,
    loadUpdateMs: 1000,
  });
  say(
    `${policy} at ${NODES} nodes: ${Math.round(r.decisionsPerSecond)} decisions/s (${r.decisions} in ${r.wallSeconds.toFixed(1)} s of run)`,
  );
  return { perSecond: r.decisionsPerSecond, wallSeconds: r.wallSeconds };
}

/**
 * The baseline: the same least-loaded choice (lowest load, ties to the lower index, each
 * placement counted) by plain code over a Float64Array, no framework, in the two ways one
 * would write it: a scan of every node, and a binary heap rebuilt at each load update.
 */
function baselineDecisions(): { scan: number; heap: number } {
  const loads = new Float64Array(NODES);
  const random = prng(SEED);
  const update = (): void => {
    for (let i = 0; i < NODES; i++) loads[i] = Math.floor(random() * 4) * 1000;
  };
  const perUpdate = 4500; // arrivals a second at load 0.9 on 5,000 nodes, loads updated once a second
  const decisions = Math.min(ARRIVALS, 200_000);
  let started = performance.now();
  for (let d = 0; d < decisions; d++) {
    if (d % perUpdate === 0) update();
    let best = 0;
    for (let i = 1; i < NODES; i++) if (loads[i]! < loads[best]!) best = i;
    loads[best] = loads[best]! + 1000;
  }
  const scan = decisions / ((performance.now() - started) / 1000);
  const heap = new Int32Array(NODES);
  const before = (a: number, b: number): boolean => loads[a]! < loads[b]! || (loads[a] === loads[b] && a < b);
  const down = (h: number): void => {
    const node = heap[h]!;
    for (;;) {
      const left = 2 * h + 1;
      if (left >= NODES) break;
      const child = left + 1 < NODES && before(heap[left + 1]!, heap[left]!) ? left + 1 : left;
      if (!before(heap[child]!, node)) break;
      heap[h] = heap[child]!;
      h = child;
    }
    heap[h] = node;
  };
  started = performance.now();
  for (let d = 0; d < ARRIVALS; d++) {
    if (d % perUpdate === 0) {
      update();
      for (let i = 0; i < NODES; i++) heap[i] = i;
      for (let h = (NODES >> 1) - 1; h >= 0; h--) down(h);
    }
    const best = heap[0]!;
    loads[best] = loads[best]! + 1000;
    down(0);
  }
  return { scan, heap: ARRIVALS / ((performance.now() - started) / 1000) };
}

/** PlanetLab's curves placed at random, without and with every node's mosix_load_balancer. */
async function planetLabRuns(): Promise<Record<string, unknown>> {
  const trace = publishedTrace(PLANETLAB);
  if ('skipped' in trace) {
    say(`planetlab skipped: ${trace.skipped}`);
    return { skipped: trace.skipped };
  }
  const { jobs } = await loadWorkload(`planetlab:${trace.path}`, SEED);
  const example = join(import.meta.dirname, '..', 'examples', 'simulate', 'mosix-balance.yaml');
  const figures = (r: SimResult): Record<string, number> => ({
    served: round(r.curves!.servedFraction, 4),
    overloaded: round(r.overloadedFraction, 4),
    migrations: r.migrations,
    wall_s: round(r.wallSeconds, 2),
  });
  const out: Record<string, unknown> = {};
  for (const [label, document] of [
    ['random', documentFor('random')],
    ['random_then_mosix', parseTreeYaml(readFileSync(example, 'utf8'), example)],
  ] as const) {
    const r = await simulate({ nodes: { count: 100, cpuMillicores: 2000 }, jobs: jobs(), document, label, seed: SEED, loadUpdateMs: 5000 });
    out[label] = figures(r);
    say(`PlanetLab, 100 two-CPU nodes, ${label}: ${JSON.stringify(out[label])}`);
  }
  return out;
}

async function main(): Promise<void> {
  const load = loadAverage();
  say(`machine: ${JSON.stringify(machine())}, load ${load.join(' ')}`);
  const leastLoaded = await decisionsAt5k('least_loaded');
  const bestOfTwo = await decisionsAt5k('best_of_two');
  const baseline = baselineDecisions();
  say(`baselines (plain code, least loaded of ${NODES}): scan ${Math.round(baseline.scan)}, heap ${Math.round(baseline.heap)} decisions/s`);

  const trace = publishedTrace(NASA);
  let speedup: number | null = null;
  let traceJobs: number | null = null;
  if ('skipped' in trace) say(`sim_speedup skipped: ${trace.skipped}`);
  else {
    const w = readSwf(gunzipSync(readFileSync(trace.path)).toString('utf8'), { origin: NASA });
    const r = await simulate({
      nodes: { count: 128, cpuMillicores: 1000 },
      jobs: jobsOf(w),
      document: documentFor('least_loaded'),
      label: 'nasa',
      seed: SEED,
      loadUpdateMs: 1000,
    });
    speedup = r.speedup;
    traceJobs = r.jobs;
    say(
      `NASA trace on 128 nodes (least_loaded): ${r.jobs} jobs, ${Math.round(r.simulatedSeconds)} simulated s in ${r.wallSeconds.toFixed(2)} s: x${Math.round(r.speedup)}`,
    );
  }

  const planetlab = await planetLabRuns();

  const random = await theoryRun('random', { nodes: 1000, jobs: 8_000_000, load: 0.9, seed: SEED });
  const jsq2 = await theoryRun('best_of_two', { nodes: 1000, jobs: 1_000_000, load: 0.9, seed: SEED });
  const randomError = random.sojourn.mean / mm1Sojourn(0.9) - 1;
  const jsq2Error = jsq2.sojourn.mean / supermarketSojourn(0.9, 2) - 1;
  say(
    `random: ${random.sojourn.mean.toFixed(4)} (${(100 * randomError).toFixed(2)}% from 10.0); best_of_two: ${jsq2.sojourn.mean.toFixed(4)} (${(100 * jsq2Error).toFixed(2)}% from 2.614)`,
  );
  const rssMb = process.resourceUsage().maxRSS / 1024;

  finish({
    decisions_per_s_5k_nodes: { least_loaded: Math.round(leastLoaded.perSecond), best_of_two: Math.round(bestOfTwo.perSecond) },
    baseline_decisions_per_s_5k_nodes: { plain_scan: Math.round(baseline.scan), plain_heap: Math.round(baseline.heap) },
    least_loaded_over_plain_heap: round(leastLoaded.perSecond / baseline.heap, 2),
    arrivals: ARRIVALS,
    sim_speedup: speedup === null ? null : Math.round(speedup),
    ...(speedup === null && 'skipped' in trace ? { sim_speedup_skipped: trace.skipped } : {}),
    trace_jobs: traceJobs,
    mm1_random_sojourn: round(random.sojourn.mean, 4),
    mm1_relative_error: round(randomError, 4),
    jsq2_sojourn: round(jsq2.sojourn.mean, 4),
    jsq2_relative_error: round(jsq2Error, 4),
    planetlab,
    rss_mb: Math.round(rssMb),
    seed: SEED,
    load_average: load,
    ...machine(),
  });
}

await main();
