/**
 * Isolation benchmark: how closely measured CPU use follows each slice's entitlement, with
 * sliced's controller and, side by side in the same run, two baselines without it:
 *
 * - weights-only: plain cgroups as systemd's CPUWeight=/CPUQuota= give them (shares ->
 *   weights, limits -> quotas, reservations not expressible);
 * - operator: what a careful operator configures by hand: static weights proportional to
 *   each slice's (and domain's) entitlement when every slice is busy, computed from the
 *   reservations and shares with the same computeEntitlements, plus quotas for limits.
 *   Exact as long as every slice is busy; it cannot follow a change of the busy set.
 *
 * Real cgroups, real busy loops. A busy slice runs one busy task per CPU (so it could use the
 * whole node), scenario (g) 200 against 2. Ground truth is computeEntitlements over the
 * node's capacity (from the daemon: the CPUs it may use) with the true demands, never the
 * controller's own estimates. Errors are in percentage points of the node, over the slices
 * busy in each phase.
 *
 *   npm run bench:isolation [-- --json] [--quick | --short] [--only abcdefg] [--v2] [--check]
 *
 * --short: the controller and both baselines on (b), (f) and (g) with short windows, for the
 * test command's v2 run (a few minutes in the emulated VM). --v2: after the run here, the same
 * run inside scripts/v2-vm (pure cgroup v2), its figures in the same last line as v2_*.
 * --check: exit 1 when the controller misses a target (the figures are printed first).
 *
 * Last line of stdout: one JSON object.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../test/helpers/daemon.js';
import { computeEntitlements, type EntitlementNode } from '../src/core/entitlement.js';
import { DEFAULT_CPU, SHARES_MAX, SHARES_MIN, type CpuAllocation } from '../src/core/model.js';
import { parseCpu } from '../src/core/units.js';
import { spawnInSlice, type SliceProcessPlan } from '../src/kernel/spawn.js';
import { argValue, finish, jsonMode, loadAverage, machine, onInterrupt, round, say } from './lib.js';
import { CpuUsageReader, nodeShares, type UsageSample } from '../test/helpers/cpu-load.js';

const started = performance.now();
const elapsed = (): string => `${Math.round((performance.now() - started) / 1000)} s`;
/** --trace: print when each step of a scenario ends (where the time goes, e.g. in the VM). */
const trace = (what: string): void => (process.argv.includes('--trace') ? say(`      ... ${what} [${elapsed()}]`) : undefined);
const quick = process.argv.includes('--quick');
const short = process.argv.includes('--short');
const inVm = process.env.SLICED_IN_V2_VM === '1';
const alsoV2 = process.argv.includes('--v2') && !inVm;
const check = process.argv.includes('--check');
const resultFile = argValue('--result-file');
/** Run only these scenario ids (e.g. "--only bf"). */
const only = argValue('--only') ?? (short ? 'bfg' : 'abcdefg');
const WARM_MS = quick || short ? 1500 : 3000;
const MEASURE_MS = quick || short ? 2500 : 4000;
const SAMPLE_MS = 250;
const WINDOW_MS = 500;
const TOLERANCE_PP = 5;
const MANY_TASKS = 200;
const FEW_TASKS = 2;
// Targets of issue 12, checked by --check.
const TARGET = { meanPp: 1, maxPp: 3, convergencePeriods: 3 };

interface CpuSpec {
  reservation?: string;
  limit?: string;
  shares?: number;
}
interface SliceDef {
  name: string;
  cpu: CpuSpec;
  domain?: string;
  /** Busy tasks while the slice is busy (0: never busy). */
  tasks: number;
}
interface DomainDef {
  name: string;
  cpu: CpuSpec;
}
interface Phase {
  label: string;
  /** Slices busy in this phase. */
  busy: string[];
}
interface Scenario {
  id: string;
  title: string;
  domains: DomainDef[];
  slices: SliceDef[];
  /** Busy sets one after the other; the first is measured from the start, the others from the change. */
  phases: Phase[];
}

type Mode = 'controller' | 'weights' | 'operator';
const MODE_TITLE: Record<Mode, string> = {
  controller: "sliced's controller (--cpu-control entitlement)",
  weights: 'baseline: weights-only cgroups (shares -> weights, limits -> quotas; --cpu-control static)',
  operator:
    "baseline: the operator's static weights (entitlement with every slice busy -> weights, limits -> quotas; --cpu-control static)",
};

/** The scenarios, in amounts relative to the node's capacity (millicores) and CPU count. */
function scenarios(capacity: number, cpus: number): Scenario[] {
  const part = (fraction: number): string => `${Math.round(fraction * capacity)}m`;
  const steady = (s: Omit<Scenario, 'phases'>): Scenario => ({
    ...s,
    phases: [{ label: 'steady', busy: s.slices.filter((x) => x.tasks > 0).map((x) => x.name) }],
  });
  return [
    steady({
      id: 'a',
      title: 'shares 1:2:4, all busy',
      domains: [],
      slices: [
        { name: 'a1', cpu: { shares: 100 }, tasks: cpus },
        { name: 'a2', cpu: { shares: 200 }, tasks: cpus },
        { name: 'a4', cpu: { shares: 400 }, tasks: cpus },
      ],
    }),
    steady({
      id: 'b',
      title: `reservation ${part(0.6)} (60%) vs two busy slices with 10x its shares`,
      domains: [],
      slices: [
        { name: 'res', cpu: { reservation: part(0.6), shares: 100 }, tasks: cpus },
        { name: 'big1', cpu: { shares: 1000 }, tasks: cpus },
        { name: 'big2', cpu: { shares: 1000 }, tasks: cpus },
      ],
    }),
    steady({
      id: 'c',
      title: `limit ${part(0.15)} (15%) while the others idle`,
      domains: [],
      slices: [
        { name: 'capped', cpu: { limit: part(0.15) }, tasks: cpus },
        { name: 'idle1', cpu: { shares: 100 }, tasks: 0 },
        { name: 'idle2', cpu: { reservation: part(0.25) }, tasks: 0 },
      ],
    }),
    steady({
      id: 'd',
      title: `domain limited to ${part(0.3)} (30%) with two busy members, next to a busy slice outside`,
      domains: [{ name: 'dom', cpu: { limit: part(0.3) } }],
      slices: [
        { name: 'm1', cpu: { shares: 100 }, domain: 'dom', tasks: cpus },
        { name: 'm2', cpu: { shares: 100 }, domain: 'dom', tasks: cpus },
        { name: 'outside', cpu: { shares: 100 }, tasks: cpus },
      ],
    }),
    {
      id: 'e',
      title: `demand changes: the slice with a reservation of ${part(0.5)} (50%) stops, then restarts`,
      domains: [],
      slices: [
        { name: 'rsv', cpu: { reservation: part(0.5), shares: 100 }, tasks: cpus },
        { name: 'w3', cpu: { shares: 300 }, tasks: cpus },
        { name: 'w1', cpu: { shares: 100 }, tasks: cpus },
      ],
      phases: [
        { label: 'all busy', busy: ['rsv', 'w3', 'w1'] },
        { label: 'rsv stopped', busy: ['w3', 'w1'] },
        { label: 'rsv restarted', busy: ['rsv', 'w3', 'w1'] },
      ],
    },
    {
      id: 'f',
      title: `the busy set changes: reservation ${part(0.5)} (50%) with three others; a fourth slice wakes up, then two go idle`,
      domains: [],
      slices: [
        { name: 'bdfr', cpu: { reservation: part(0.5), shares: 100 }, tasks: cpus },
        { name: 'bdf1', cpu: { shares: 100 }, tasks: cpus },
        { name: 'bdf2', cpu: { shares: 100 }, tasks: cpus },
        { name: 'bdf4', cpu: { shares: 300 }, tasks: cpus },
      ],
      phases: [
        { label: 'three busy', busy: ['bdfr', 'bdf1', 'bdf2'] },
        { label: 'bdf4 wakes up', busy: ['bdfr', 'bdf1', 'bdf2', 'bdf4'] },
        { label: 'bdf1, bdf2 idle', busy: ['bdfr', 'bdf4'] },
      ],
    },
    steady({
      id: 'g',
      title: `many tasks: ${MANY_TASKS} busy tasks against ${FEW_TASKS}, equal shares`,
      domains: [],
      slices: [
        { name: 'bdmany', cpu: { shares: 100 }, tasks: MANY_TASKS },
        { name: 'bdfew', cpu: { shares: 100 }, tasks: FEW_TASKS },
      ],
    }),
  ];
}

function cpuAllocation(def: CpuSpec): CpuAllocation {
  const mc = (v: string | undefined): number | null => {
    if (v === undefined) return null;
    const parsed = parseCpu(v);
    if (!parsed.ok) throw new Error(`bad CPU quantity ${v}`);
    return parsed.value;
  };
  return { reservation: mc(def.reservation) ?? 0, limit: mc(def.limit), shares: def.shares ?? DEFAULT_CPU.shares };
}

/** Entitlements (millicores) of every slice and domain, for a demand per slice. */
function entitlements(scenario: Scenario, capacity: number, demand: (slice: SliceDef) => number): Map<string, number> {
  const domainNodes = new Map<string, EntitlementNode>();
  for (const d of scenario.domains) domainNodes.set(d.name, { id: d.name, cpu: cpuAllocation(d.cpu), children: [] });
  const roots: EntitlementNode[] = [...domainNodes.values()];
  for (const s of scenario.slices) {
    const node: EntitlementNode = { id: s.name, cpu: cpuAllocation(s.cpu), demand: demand(s) };
    if (s.domain) domainNodes.get(s.domain)!.children!.push(node);
    else roots.push(node);
  }
  const result = computeEntitlements(capacity, roots);
  return new Map([...result.nodes].map(([id, n]) => [id, n.entitlement]));
}

/**
 * The operator's configuration: shares proportional to the entitlement each slice and domain
 * has when every slice is busy (each sibling group scaled so its largest is SHARES_MAX, for
 * resolution), limits as quotas, no reservations (plain cgroups cannot express them).
 */
function operatorSpecs(
  scenario: Scenario,
  capacity: number,
  cpus: number,
): { slices: Map<string, CpuSpec>; domains: Map<string, CpuSpec> } {
  const all = entitlements(scenario, capacity, (s) => Math.max(s.tasks, cpus) * 1000);
  const group = (members: Array<{ name: string; cpu: CpuSpec }>): Map<string, CpuSpec> => {
    const top = Math.max(...members.map((m) => all.get(m.name)!));
    return new Map(
      members.map((m) => [
        m.name,
        {
          shares: Math.max(SHARES_MIN, Math.min(SHARES_MAX, Math.round((all.get(m.name)! / top) * SHARES_MAX))),
          ...(m.cpu.limit ? { limit: m.cpu.limit } : {}),
        },
      ]),
    );
  };
  const slices = new Map<string, CpuSpec>();
  const domains = new Map<string, CpuSpec>();
  for (const [name, spec] of group([...scenario.domains, ...scenario.slices.filter((s) => !s.domain)])) {
    (scenario.domains.some((d) => d.name === name) ? domains : slices).set(name, spec);
  }
  for (const d of scenario.domains)
    for (const [name, spec] of group(scenario.slices.filter((s) => s.domain === d.name))) slices.set(name, spec);
  return { slices, domains };
}

/**
 * Busy tasks in a slice: one shell that forks them (each a busy loop, waiting at a barrier
 * on the shared stdin until all exist, so the forking shell is not starved by its own
 * children); stopped by killing the whole process group.
 */
class Load {
  private readonly running = new Map<string, ChildProcess>();

  constructor(private readonly daemon: TestDaemon) {}

  async start(slice: string, tasks: number): Promise<void> {
    const plan = await this.daemon.api.post<SliceProcessPlan>(`/v1/slices/${slice}/exec-plan`, { pid: process.pid });
    // Background jobs of a non-interactive shell read /dev/null unless redirected: hence fd 3.
    const script = 'exec 3<&0; i=0; while [ $i -lt $1 ]; do (read go <&3; while :; do :; done) & i=$((i+1)); done; echo ready; wait';
    const child = spawnInSlice(plan, ['/bin/sh', '-c', script, 'load', String(tasks)], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.running.set(slice, child);
    await new Promise<void>((resolvePromise, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.once('line', () => resolvePromise());
      child.once('exit', (code) => reject(new Error(`the load in ${slice} exited with ${code} before it started`)));
    });
    child.stdin!.write('go\n'.repeat(tasks));
  }

  async stop(slice: string): Promise<void> {
    const child = this.running.get(slice);
    if (!child) return;
    this.running.delete(slice);
    const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    try {
      process.kill(-child.pid!, 'SIGKILL'); // the shell and every task it forked (its session's group)
    } catch {
      // Gone already.
    }
    await exited;
  }

  async stopAll(): Promise<void> {
    for (const slice of [...this.running.keys()]) await this.stop(slice);
  }
}

interface SliceResult {
  slice: string;
  busy: boolean;
  /** Entitlement over the capacity the slices had (see watch), in % of the node. */
  entitled_pct: number;
  measured_pct: number;
  error_pp: number;
  /** Error against the entitlement over the node's full capacity (the definition before 2026-12-06). */
  error_full_pp: number;
}
interface PhaseResult {
  label: string;
  /** What all the slices together used, in % of the node. */
  slices_total_pct: number;
  /** Whether the busy slices could use the whole node (then the truth is over what they used together). */
  saturated: boolean;
  /** Seconds from the change until every 500 ms window stayed within the tolerance, judged as the steady state is (null: never; absent for the first phase). */
  convergence_s?: number | null;
  slices: SliceResult[];
}

/**
 * Sample for WARM_MS + MEASURE_MS from a change; the first WARM_MS are for convergence, the
 * rest is the steady state.
 *
 * Ground truth: when the busy slices could use the whole node ("saturated"), the
 * entitlements over what they used together; otherwise over the node. The slices never get
 * the whole node: the system, the daemon and this benchmark use some of it (1-3% here; in
 * the v2 VM emulation makes them 20x as expensive, and its clocks lose ticks, so their use
 * cannot be measured there and 10-30% of the node goes missing). What is measured is then
 * how the CPU the slices got was divided. `slices_total_pct` shows what they got in all
 * (a controller that wasted CPU would show there), and `error_full_pp` is the error against
 * the entitlements over the full node, as this benchmark computed it before.
 */
async function watch(
  reader: CpuUsageReader,
  capacity: number,
  truthFor: (capacity: number) => Map<string, number>,
): Promise<{
  seconds: number | null;
  steady: Map<string, number>;
  total: number;
  saturated: boolean;
  truthPct: Map<string, number>;
  fullPct: Map<string, number>;
}> {
  const first = reader.sample();
  const changed = first.t;
  const samples: UsageSample[] = [first];
  while (performance.now() - changed < WARM_MS + MEASURE_MS) {
    await sleep(SAMPLE_MS);
    samples.push(reader.sample());
  }
  const from = samples.find((s) => s.t - changed >= WARM_MS) ?? samples[0]!;
  const steady = nodeShares(from, samples.at(-1)!, capacity);
  const total = [...steady.values()].reduce((a, b) => a + b, 0);
  const full = truthFor(capacity);
  const saturated = [...full.entries()].filter(([name]) => steady.has(name)).reduce((a, [, mc]) => a + mc, 0) >= capacity - 1;
  const pct = (truth: Map<string, number>): Map<string, number> => new Map([...truth].map(([name, mc]) => [name, (mc / capacity) * 100]));
  const truthPct = pct(saturated ? truthFor(Math.min(capacity, (total / 100) * capacity)) : full);
  const fullPct = pct(full);
  const perWindow = Math.round(WINDOW_MS / SAMPLE_MS);
  const ok: Array<{ end: number; within: boolean }> = [];
  for (let i = perWindow; i < samples.length; i++) {
    const shares = nodeShares(samples[i - perWindow]!, samples[i]!, capacity);
    // Each window is judged as the steady state is: when saturated, over what the slices got
    // together in that window. What the system takes varies from window to window (in the v2
    // VM by 10 pp and more: emulation), and that is not the controller's error.
    const windowTotal = [...shares.values()].reduce((a, b) => a + b, 0);
    const windowTruth = saturated ? pct(truthFor(Math.min(capacity, (windowTotal / 100) * capacity))) : truthPct;
    let within = true;
    for (const [name, share] of shares) if (Math.abs(share - windowTruth.get(name)!) > TOLERANCE_PP) within = false;
    ok.push({ end: samples[i]!.t, within });
  }
  // Converged at the first window after which every window is within the tolerance.
  let seconds: number | null = null;
  for (let i = ok.length - 1; i >= 0 && ok[i]!.within; i--) seconds = (ok[i]!.end - changed) / 1000;
  return { seconds, steady, total, saturated, truthPct, fullPct };
}

async function runScenario(
  daemon: TestDaemon,
  mode: Mode,
  scenario: Scenario,
  capacity: number,
  cpus: number,
  load: Load,
): Promise<PhaseResult[]> {
  const operator = mode === 'operator' ? operatorSpecs(scenario, capacity, cpus) : null;
  const created: { slices: string[]; domains: string[] } = { slices: [], domains: [] };
  try {
    for (const d of scenario.domains) {
      await daemon.api.post('/v1/domains', { name: d.name, cpu: operator?.domains.get(d.name) ?? d.cpu });
      created.domains.push(d.name);
    }
    for (const s of scenario.slices) {
      await daemon.api.post('/v1/slices', {
        name: s.name,
        cpu: operator?.slices.get(s.name) ?? s.cpu,
        user: 'nobody',
        ...(s.domain ? { domain: s.domain } : {}),
      });
      created.slices.push(s.name);
    }
    const reader = new CpuUsageReader(daemon.api);
    await reader.resolve(scenario.slices.map((s) => s.name));
    trace(`(${scenario.id}) slices made`);
    const results: PhaseResult[] = [];
    let busyNow = new Set<string>();
    for (const [index, phase] of scenario.phases.entries()) {
      const busy = new Set(phase.busy);
      for (const name of busyNow) if (!busy.has(name)) await load.stop(name);
      for (const s of scenario.slices) if (busy.has(s.name) && !busyNow.has(s.name)) await load.start(s.name, s.tasks);
      busyNow = busy;
      trace(`(${scenario.id}) ${phase.label}: load started`);
      const truthFor = (c: number): Map<string, number> => entitlements(scenario, c, (s) => (busy.has(s.name) ? s.tasks * 1000 : 0));
      const { seconds, steady, total, saturated, truthPct, fullPct } = await watch(reader, capacity, truthFor);
      results.push({
        label: phase.label,
        slices_total_pct: round(total),
        saturated,
        ...(index > 0 ? { convergence_s: seconds === null ? null : round(seconds) } : {}),
        slices: scenario.slices.map((s) => {
          const entitled = truthPct.get(s.name)!;
          const got = steady.get(s.name)!;
          return {
            slice: s.name,
            busy: busy.has(s.name),
            entitled_pct: round(entitled),
            measured_pct: round(got),
            error_pp: round(Math.abs(got - entitled)),
            error_full_pp: round(Math.abs(got - fullPct.get(s.name)!)),
          };
        }),
      });
    }
    return results;
  } finally {
    trace(`(${scenario.id}) measured`);
    await load.stopAll();
    trace(`(${scenario.id}) load stopped`);
    for (const name of created.slices.reverse()) await daemon.api.delete(`/v1/slices/${name}`);
    for (const name of created.domains.reverse()) await daemon.api.delete(`/v1/domains/${name}`);
    trace(`(${scenario.id}) slices deleted`);
  }
}

type ModeRun = Record<string, PhaseResult[]>;

async function runMode(mode: Mode, ids: string): Promise<{ run: ModeRun; capacity: number; cpus: number; backend: string }> {
  // SLICED_BENCH_ARGS passes extra daemon flags (e.g. "--feedback-gain 0") when tuning.
  const extra = (process.env.SLICED_BENCH_ARGS ?? '').split(' ').filter(Boolean);
  const daemon = await TestDaemon.start([
    '--cpu-control',
    mode === 'controller' ? 'entitlement' : 'static',
    '--stop-grace',
    '200',
    '--log-level',
    'warn',
    ...extra,
  ]);
  const load = new Load(daemon);
  const undo = onInterrupt(async () => {
    await load.stopAll();
    await daemon.destroy();
  });
  try {
    const node = await daemon.api.get<{ cpu: { capacity: number }; backend: string }>('/v1/node');
    const capacity = node.cpu.capacity;
    const cpus = Math.ceil(capacity / 1000);
    say(`${MODE_TITLE[mode]}, capacity ${capacity}m, backend ${node.backend} [${elapsed()}]:`);
    const run: ModeRun = {};
    for (const scenario of scenarios(capacity, cpus).filter((s) => ids.includes(s.id))) {
      run[scenario.id] = await runScenario(daemon, mode, scenario, capacity, cpus, load);
      say(`  (${scenario.id}) ${scenario.title} [${elapsed()}]`);
      for (const phase of run[scenario.id]!) {
        say(
          `    ${phase.label}: the slices used ${phase.slices_total_pct.toFixed(1)}% of the node${phase.convergence_s !== undefined ? `, converged after ${phase.convergence_s ?? 'never'} s` : ''}`,
        );
        for (const r of phase.slices) {
          say(
            `      ${r.slice.padEnd(8)} entitled ${r.entitled_pct.toFixed(1).padStart(5)}%  measured ${r.measured_pct.toFixed(1).padStart(5)}%  error ${r.error_pp.toFixed(1)} pp${r.busy ? '' : '  (idle)'}`,
          );
        }
      }
    }
    return { run, capacity, cpus, backend: node.backend };
  } finally {
    await load.stopAll();
    await daemon.destroy();
    undo();
    trace('daemon destroyed');
  }
}

/** Errors of the slices busy in each phase (an idle slice's ~0 would flatter the mean). */
function errors(run: ModeRun, ids?: string, full = false): number[] {
  return Object.entries(run)
    .filter(([id]) => ids === undefined || ids.includes(id))
    .flatMap(([, phases]) => phases.flatMap((p) => p.slices.filter((s) => s.busy).map((s) => (full ? s.error_full_pp : s.error_pp))));
}
const mean = (v: number[]): number | null => (v.length === 0 ? null : round(v.reduce((a, b) => a + b, 0) / v.length));
const max = (v: number[]): number | null => (v.length === 0 ? null : round(Math.max(...v)));
/** Slowest convergence after a change, or null if some change never converged (or none ran). */
function convergence(run: ModeRun): number | null {
  const times = Object.values(run).flatMap((phases) =>
    phases.filter((p) => p.convergence_s !== undefined).map((p) => p.convergence_s as number | null),
  );
  return times.length === 0 || times.includes(null) ? null : round(Math.max(...(times as number[])));
}

/** Figures of one mode, named with a prefix ("" for the controller, "baseline_", "operator_baseline_"). */
function figures(prefix: string, run: ModeRun): Record<string, number | null> {
  const g = run.g?.[0]?.slices;
  const many = g?.find((s) => s.slice === 'bdmany')?.measured_pct;
  const few = g?.find((s) => s.slice === 'bdfew')?.measured_pct;
  return {
    [`${prefix}mean_abs_error_pp`]: mean(errors(run)),
    [`${prefix}max_abs_error_pp`]: max(errors(run)),
    [`${prefix}mean_abs_error_full_capacity_pp`]: mean(errors(run, undefined, true)),
    [`${prefix}max_abs_error_full_capacity_pp`]: max(errors(run, undefined, true)),
    // Least the slices got together in a phase where they could use the whole node.
    [`${prefix}saturated_slices_total_pct_min`]: (() => {
      const totals = Object.values(run).flatMap((phases) => phases.filter((p) => p.saturated).map((p) => p.slices_total_pct));
      return totals.length === 0 ? null : round(Math.min(...totals));
    })(),
    [`${prefix}scenario_b_max_error_pp`]: max(errors(run, 'b')),
    [`${prefix}scenario_f_mean_error_pp`]: mean(errors(run, 'f')),
    [`${prefix}scenario_f_max_error_pp`]: max(errors(run, 'f')),
    [`${prefix}scenario_g_max_error_pp`]: max(errors(run, 'g')),
    // Share of the node the 200-task slice got per share of the 2-task one (1 = the shares hold).
    [`${prefix}scenario_g_ratio`]: many !== undefined && few !== undefined && few > 0 ? round(many / few, 3) : null,
    [`${prefix}convergence_s`]: convergence(run),
  };
}

/**
 * The same benchmark inside the v2 VM; its result line's figures, each prefixed "v2_". It runs
 * there bundled (scripts/bundle-tests.mjs, as scripts/test-v2 runs it: tsx under emulation
 * costs seconds and its WebAssembly lexer crashes now and then), and once more when node dies
 * of SIGSEGV in the guest (QEMU's software emulation, see scripts/test-v2), saying so.
 */
async function runInVm(): Promise<Record<string, unknown>> {
  const root = resolve(import.meta.dirname, '..');
  // The checkout is the guest's only writable share: the bundle and the result go there.
  const work = join(root, '.tmp', `bench-isolation-v2-${process.pid}`);
  const file = join(work, 'result.json');
  const args = process.argv.slice(2).filter((a) => a !== '--v2' && a !== '--check');
  const env = { ...process.env };
  delete env.SLICED_TEST_PREFIX; // a host path under /tmp: the guest's /tmp is its own disk
  const undo = onInterrupt(() => rmSync(work, { recursive: true, force: true }));
  try {
    const bundled = spawnSync(process.execPath, [join(root, 'scripts', 'bundle-tests.mjs'), work, 'bench/isolation.ts'], {
      cwd: root,
      encoding: 'utf8',
    });
    if (bundled.status !== 0) throw new Error(`bundling bench/isolation.ts for the guest failed: ${bundled.stderr}`);
    say(`the same run on pure cgroup v2 (scripts/v2-vm): ${args.join(' ')}`);
    const once =
      'for attempt in 1 2; do "$@" && exit 0; rc=$?; if [ "$rc" -ne 139 ] || [ "$attempt" -eq 2 ]; then exit "$rc"; fi; ' +
      'echo "bench: node died of SIGSEGV under emulation (exit 139); running it once more"; done';
    const command = ['/bin/sh', '-c', once, 'sh', process.execPath, join(work, 'bench', 'isolation.mjs'), ...args, '--result-file', file];
    const code = await new Promise<number>((resolvePromise, reject) => {
      const child = spawn(join(root, 'scripts', 'v2-vm'), ['--timeout', '3600', '--', ...command], {
        cwd: root,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // The guest's output is progress here: it goes where our progress goes.
      child.stdout.on('data', (d: Buffer) => (jsonMode ? process.stderr : process.stdout).write(d));
      child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
      child.on('error', reject);
      child.on('close', (c) => resolvePromise(c ?? 1));
    });
    if (code !== 0) throw new Error(`the v2 run failed: scripts/v2-vm exited ${code}`);
    const inner = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(inner)) if (key !== 'bench') out[`v2_${key}`] = value;
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
    undo();
  }
}

try {
  setPriority(-5); // sample on time even with every CPU busy
} catch {
  // not root: the daemon start below reports that anyway
}
const loadBefore = loadAverage();
const modes = (argValue('--modes') ?? (short ? 'controller' : 'controller,weights,operator')).split(',') as Mode[];
for (const m of modes)
  if (!(m in MODE_TITLE))
    throw new Error(`--modes: unknown mode ${JSON.stringify(m)} (allowed: ${Object.keys(MODE_TITLE).join(', ')}, comma-separated)`);
say(
  `isolation benchmark (${short ? 'short' : quick ? 'quick' : 'full'}, scenarios ${only}): warm-up ${WARM_MS} ms, window ${MEASURE_MS} ms; load average ${loadBefore.join(' ')}`,
);
const runs: Record<Mode, ModeRun> = { controller: {}, weights: {}, operator: {} };
let nodeInfo = { capacity: 0, cpus: 0, backend: '' };
for (const mode of modes) {
  const { run, ...info } = await runMode(mode, only);
  runs[mode] = run;
  nodeInfo = info;
}
const loadAfter = loadAverage();
const result: Record<string, unknown> = {
  bench: 'isolation',
  ...figures('', runs.controller),
  ...figures('baseline_', runs.weights),
  ...figures('operator_baseline_', runs.operator),
  convergence_tolerance_pp: TOLERANCE_PP,
  control_period_s: 1,
  backend: nodeInfo.backend,
  capacity_mc: nodeInfo.capacity,
  controlled: runs.controller,
  baseline: runs.weights,
  operator_baseline: runs.operator,
  machine: machine(),
  load_before: loadBefore,
  load_after: loadAfter,
  mode: short ? 'short' : quick ? 'quick' : 'full',
  modes,
  only,
};

/** What the controller misses of issue 12's targets (empty: all met). Baselines are compared only when they ran. */
function missed(r: Record<string, unknown>, prefix: string): string[] {
  const n = (key: string): number | null => (r[`${prefix}${key}`] as number | null | undefined) ?? null;
  const out: string[] = [];
  const atMost = (key: string, limit: number): void => {
    const v = n(key);
    if (v === null || v > limit) out.push(`${prefix}${key} ${v} (target ≤ ${limit})`);
  };
  const below = (key: string, baseline: string): void => {
    const [v, b] = [n(key), n(baseline)];
    if (b !== null && (v === null || v >= b)) out.push(`${prefix}${key} ${v} not below ${prefix}${baseline} ${b}`);
  };
  atMost('mean_abs_error_pp', TARGET.meanPp);
  atMost('max_abs_error_pp', TARGET.maxPp);
  if (only.includes('e') || only.includes('f')) atMost('convergence_s', TARGET.convergencePeriods);
  if (only.includes('b')) below('scenario_b_max_error_pp', 'baseline_scenario_b_max_error_pp');
  if (only.includes('f')) below('scenario_f_max_error_pp', 'operator_baseline_scenario_f_max_error_pp');
  return out;
}

if (alsoV2) Object.assign(result, await runInVm());
if (resultFile) writeFileSync(resultFile, JSON.stringify(result));
if (!jsonMode) say();
finish(result);
if (check) {
  const misses = [...missed(result, ''), ...(alsoV2 ? missed(result, 'v2_') : [])];
  for (const m of misses) process.stderr.write(`target missed: ${m}\n`);
  if (misses.length > 0) process.exit(1);
}
