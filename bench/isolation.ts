/**
 * Isolation benchmark: how closely measured CPU use follows each slice's entitlement, with
 * sliced's controller and, side by side in the same run, with plain weights-only cgroups
 * (the systemd CPUWeight approach: shares -> weights, limits -> quotas, no controller).
 *
 * Real cgroups, real busy-loop burners (2 per busy slice, so every busy slice could use
 * both CPUs of a 2-CPU node). Ground truth is computeEntitlements over the node's own
 * capacity (its CPU count: machines differ) with the true demands (1000m per burner),
 * never the controller's own estimates.
 *
 *   npm run bench:isolation [-- --json] [-- --quick]
 *
 * Last line of stdout: one JSON object (mean/max absolute error in percentage points of the
 * node, the baseline's, scenario (b) separately, and convergence time).
 */
import { availableParallelism, setPriority } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../test/helpers/daemon.js';
import { computeEntitlements, type EntitlementNode } from '../src/core/entitlement.js';
import { DEFAULT_CPU, type CpuAllocation } from '../src/core/model.js';
import { parseCpu } from '../src/core/units.js';
import { finish, jsonMode, machine, round, say } from './lib.js';
import { Burners, CpuUsageReader, nodeShares, type UsageSample } from '../test/helpers/cpu-load.js';

const quick = process.argv.includes('--quick');
const onlyIndex = process.argv.indexOf('--only');
/** Run only these scenario ids (e.g. "--only bd"), for tuning. */
const only = onlyIndex > 0 ? (process.argv[onlyIndex + 1] ?? '') : 'abcde';
const WARM_MS = quick ? 1500 : 3000;
const MEASURE_MS = quick ? 2500 : 4000;
const SAMPLE_MS = 250;
const WINDOW_MS = 500;
const TOLERANCE_PP = 5;
/** The node's CPUs, as the daemon counts them (machines differ; 2 here). */
const CAPACITY = availableParallelism() * 1000;

interface SliceDef {
  name: string;
  cpu: { reservation?: string; limit?: string; shares?: number };
  domain?: string;
  burners: number;
}
interface DomainDef {
  name: string;
  cpu: { reservation?: string; limit?: string; shares?: number };
}
interface Scenario {
  id: string;
  title: string;
  domains: DomainDef[];
  slices: SliceDef[];
}

const SCENARIOS: Scenario[] = [
  {
    id: 'a',
    title: 'shares 1:2:4, all busy',
    domains: [],
    slices: [
      { name: 'a1', cpu: { shares: 100 }, burners: 2 },
      { name: 'a2', cpu: { shares: 200 }, burners: 2 },
      { name: 'a4', cpu: { shares: 400 }, burners: 2 },
    ],
  },
  {
    id: 'b',
    title: 'reservation 1.2 cores vs two busy slices with 10x its shares',
    domains: [],
    slices: [
      { name: 'res', cpu: { reservation: '1200m', shares: 100 }, burners: 2 },
      { name: 'big1', cpu: { shares: 1000 }, burners: 2 },
      { name: 'big2', cpu: { shares: 1000 }, burners: 2 },
    ],
  },
  {
    id: 'c',
    title: 'limit 0.3 cores while the others idle',
    domains: [],
    slices: [
      { name: 'capped', cpu: { limit: '300m' }, burners: 2 },
      { name: 'idle1', cpu: { shares: 100 }, burners: 0 },
      { name: 'idle2', cpu: { reservation: '500m' }, burners: 0 },
    ],
  },
  {
    id: 'd',
    title: 'domain limited to 0.6 cores with two busy members, next to a busy slice outside',
    domains: [{ name: 'dom', cpu: { limit: '600m' } }],
    slices: [
      { name: 'm1', cpu: { shares: 100 }, domain: 'dom', burners: 2 },
      { name: 'm2', cpu: { shares: 100 }, domain: 'dom', burners: 2 },
      { name: 'outside', cpu: { shares: 100 }, burners: 2 },
    ],
  },
];

const CONVERGENCE: Scenario = {
  id: 'e',
  title: 'demand changes: the reserved slice stops, then restarts',
  domains: [],
  slices: [
    { name: 'rsv', cpu: { reservation: '1000m', shares: 100 }, burners: 2 },
    { name: 'w3', cpu: { shares: 300 }, burners: 2 },
    { name: 'w1', cpu: { shares: 100 }, burners: 2 },
  ],
};

function cpuAllocation(def: { reservation?: string; limit?: string; shares?: number }): CpuAllocation {
  const mc = (v: string | undefined): number | null => {
    if (v === undefined) return null;
    const parsed = parseCpu(v);
    if (!parsed.ok) throw new Error(`bad quantity ${v}`);
    return parsed.value;
  };
  return { reservation: mc(def.reservation) ?? 0, limit: mc(def.limit), shares: def.shares ?? DEFAULT_CPU.shares };
}

/** Entitlement of each slice from the scenario's allocations and its true demand. */
function groundTruth(scenario: Scenario, busy: (slice: SliceDef) => boolean): Map<string, number> {
  const domainNodes = new Map<string, EntitlementNode>();
  for (const d of scenario.domains) domainNodes.set(d.name, { id: d.name, cpu: cpuAllocation(d.cpu), children: [] });
  const roots: EntitlementNode[] = [...domainNodes.values()];
  for (const s of scenario.slices) {
    const node: EntitlementNode = { id: s.name, cpu: cpuAllocation(s.cpu), demand: busy(s) ? s.burners * 1000 : 0 };
    if (s.domain) domainNodes.get(s.domain)!.children!.push(node);
    else roots.push(node);
  }
  const result = computeEntitlements(CAPACITY, roots);
  return new Map(scenario.slices.map((s) => [s.name, result.nodes.get(s.name)!.entitlement]));
}

async function setUp(daemon: TestDaemon, scenario: Scenario, burners: Burners): Promise<CpuUsageReader> {
  for (const d of scenario.domains) await daemon.api.post('/v1/domains', { name: d.name, cpu: d.cpu });
  for (const s of scenario.slices) await daemon.api.post('/v1/slices', { name: s.name, cpu: s.cpu, user: 'nobody', ...(s.domain ? { domain: s.domain } : {}) });
  const reader = new CpuUsageReader(daemon.api);
  await reader.resolve(scenario.slices.map((s) => s.name));
  for (const s of scenario.slices) if (s.burners > 0) await burners.start(s.name, s.burners);
  return reader;
}

async function tearDown(daemon: TestDaemon, scenario: Scenario, burners: Burners): Promise<void> {
  await burners.stopAll();
  for (const s of scenario.slices) await daemon.api.delete(`/v1/slices/${s.name}`);
  for (const d of scenario.domains) await daemon.api.delete(`/v1/domains/${d.name}`);
}

interface SliceResult {
  slice: string;
  entitled_pct: number;
  measured_pct: number;
  error_pp: number;
}

async function steadyState(daemon: TestDaemon, scenario: Scenario, burners: Burners): Promise<SliceResult[]> {
  const reader = await setUp(daemon, scenario, burners);
  try {
    await sleep(WARM_MS);
    const start = reader.sample();
    await sleep(MEASURE_MS);
    const measured = nodeShares(start, reader.sample(), CAPACITY);
    const truth = groundTruth(scenario, (s) => s.burners > 0);
    return scenario.slices.map((s) => {
      const entitled = (truth.get(s.name)! / CAPACITY) * 100;
      const got = measured.get(s.name)!;
      return { slice: s.name, entitled_pct: round(entitled), measured_pct: round(got), error_pp: round(Math.abs(got - entitled)) };
    });
  } finally {
    await tearDown(daemon, scenario, burners);
  }
}

interface ConvergenceResult {
  after_stop_s: number | null;
  after_restart_s: number | null;
  steady: SliceResult[];
}

/** Time from a change until every slice stays within the tolerance of its new entitlement. */
async function watchConvergence(reader: CpuUsageReader, truth: Map<string, number>, durationMs: number): Promise<{ seconds: number | null; last: Map<string, number> }> {
  const changed = performance.now();
  const samples: UsageSample[] = [{ t: changed, u: reader.read() }];
  while (performance.now() - changed < durationMs) {
    await sleep(SAMPLE_MS);
    samples.push(reader.sample());
  }
  const perWindow = Math.round(WINDOW_MS / SAMPLE_MS);
  const ok: Array<{ end: number; within: boolean }> = [];
  for (let i = perWindow; i < samples.length; i++) {
    const r = nodeShares(samples[i - perWindow]!, samples[i]!, CAPACITY);
    let within = true;
    for (const [name, entitled] of truth) if (Math.abs(r.get(name)! - (entitled / CAPACITY) * 100) > TOLERANCE_PP) within = false;
    ok.push({ end: samples[i]!.t, within });
  }
  // Converged at the first window after which every window is within tolerance.
  let seconds: number | null = null;
  for (let i = ok.length - 1; i >= 0 && ok[i]!.within; i--) seconds = (ok[i]!.end - changed) / 1000;
  const tail = Math.min(samples.length - 1, Math.round(2000 / SAMPLE_MS));
  return { seconds, last: nodeShares(samples[samples.length - 1 - tail]!, samples[samples.length - 1]!, CAPACITY) };
}

async function convergence(daemon: TestDaemon, burners: Burners): Promise<ConvergenceResult> {
  const scenario = CONVERGENCE;
  const reader = await setUp(daemon, scenario, burners);
  try {
    await sleep(WARM_MS);
    const stopped = groundTruth(scenario, (s) => s.name !== 'rsv');
    await burners.stop('rsv');
    const afterStop = await watchConvergence(reader, stopped, quick ? 4000 : 5000);
    const all = groundTruth(scenario, () => true);
    await burners.start('rsv', 2);
    const afterRestart = await watchConvergence(reader, all, quick ? 5000 : 6000);
    const steady = scenario.slices.map((s) => {
      const entitled = (all.get(s.name)! / CAPACITY) * 100;
      const got = afterRestart.last.get(s.name)!;
      return { slice: s.name, entitled_pct: round(entitled), measured_pct: round(got), error_pp: round(Math.abs(got - entitled)) };
    });
    return {
      after_stop_s: afterStop.seconds === null ? null : round(afterStop.seconds),
      after_restart_s: afterRestart.seconds === null ? null : round(afterRestart.seconds),
      steady,
    };
  } finally {
    await tearDown(daemon, scenario, burners);
  }
}

async function runMode(mode: 'entitlement' | 'static'): Promise<{ scenarios: Record<string, SliceResult[]>; convergence: ConvergenceResult }> {
  // SLICED_BENCH_ARGS passes extra daemon flags (e.g. "--feedback-gain 0") when tuning.
  const extra = (process.env.SLICED_BENCH_ARGS ?? '').split(' ').filter(Boolean);
  const daemon = await TestDaemon.start(['--cpu-control', mode, '--stop-grace', '200', ...extra]);
  const burners = new Burners(daemon.api);
  try {
    const scenarios: Record<string, SliceResult[]> = {};
    for (const scenario of SCENARIOS.filter((s) => only.includes(s.id))) {
      scenarios[scenario.id] = await steadyState(daemon, scenario, burners);
      say(`  (${scenario.id}) ${scenario.title}`);
      for (const r of scenarios[scenario.id]!) say(`      ${r.slice.padEnd(8)} entitled ${r.entitled_pct.toFixed(1).padStart(5)}%  measured ${r.measured_pct.toFixed(1).padStart(5)}%  error ${r.error_pp.toFixed(1)} pp`);
    }
    const conv = only.includes('e') ? await convergence(daemon, burners) : { after_stop_s: null, after_restart_s: null, steady: [] };
    say(`  (e) ${CONVERGENCE.title}: converged ${conv.after_stop_s ?? 'never'} s after the stop, ${conv.after_restart_s ?? 'never'} s after the restart`);
    for (const r of conv.steady) say(`      ${r.slice.padEnd(8)} entitled ${r.entitled_pct.toFixed(1).padStart(5)}%  measured ${r.measured_pct.toFixed(1).padStart(5)}%  error ${r.error_pp.toFixed(1)} pp`);
    return { scenarios, convergence: conv };
  } finally {
    await burners.stopAll();
    await daemon.destroy();
  }
}

function errors(run: { scenarios: Record<string, SliceResult[]>; convergence: ConvergenceResult }): number[] {
  return [...Object.values(run.scenarios).flat(), ...run.convergence.steady].map((r) => r.error_pp);
}

try {
  setPriority(-5); // sample on time even with every CPU busy
} catch {
  // not root: the daemon start below reports that anyway
}
say(`isolation benchmark (${quick ? 'quick' : 'full'}): warm-up ${WARM_MS} ms, window ${MEASURE_MS} ms, capacity ${CAPACITY}m`);
say('sliced controller (entitlement):');
const controlled = await runMode('entitlement');
say('baseline: weights-only cgroups (shares -> weights, limits -> quotas):');
const baseline = await runMode('static');

const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const ce = errors(controlled);
const be = errors(baseline);
const bError = (run: typeof controlled): number | null => (run.scenarios.b ? round(Math.max(...run.scenarios.b.map((r) => r.error_pp))) : null);
const conv = (c: ConvergenceResult): number | null => (c.after_stop_s === null || c.after_restart_s === null ? null : Math.max(c.after_stop_s, c.after_restart_s));
const result = {
  bench: 'isolation',
  mean_abs_error_pp: round(mean(ce)),
  max_abs_error_pp: round(Math.max(...ce)),
  baseline_mean_abs_error_pp: round(mean(be)),
  baseline_max_abs_error_pp: round(Math.max(...be)),
  scenario_b_max_error_pp: bError(controlled),
  baseline_scenario_b_max_error_pp: bError(baseline),
  convergence_s: conv(controlled.convergence),
  baseline_convergence_s: conv(baseline.convergence),
  convergence_tolerance_pp: TOLERANCE_PP,
  control_period_s: 1,
  controlled: { scenarios: controlled.scenarios, convergence: controlled.convergence },
  baseline: { scenarios: baseline.scenarios, convergence: baseline.convergence },
  machine: machine(),
  quick,
  only,
};
if (!jsonMode) say();
finish(result);
