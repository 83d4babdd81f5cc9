/**
 * The CPU control loop, run by the framework: the slice_usage probe calls sample() every
 * probe_period, and the entitlement policy calls act() when its port receives the sample
 * (src/components/). Every period it reads each slice's CPU time (cpuacct / cpu.stat) and
 * the time its threads spent runnable but waiting (/proc/<tid>/schedstat); usage plus
 * waiting is the slice's demand: how much it would have run had a CPU been free. It then
 * computes entitlements and writes the weights that make the kernel deliver them.
 *
 * The capacity divided among slices is the node minus what the system itself used in the
 * last period, but never less than the node minus the system reserve: past its reserve the
 * system competes with slices like anyone else.
 */
import type { Logger } from 'pino';
import type { SliceAgent } from './agent.js';
import { groupKey, type GroupPath } from '../kernel/cgroup/backend.js';
import { procSchedProbe, type SchedProbe } from '../kernel/procfs.js';
import { controlStep, sliceDemand, type CpuControlMode } from '../core/cpu-control.js';
import { domainGroup, domainKey, parseKey, sliceGroup, sliceKey } from '../core/layout.js';
import { Value, BUILTIN_VALUE_TYPES } from '../framework/value.js';

const SLICE_USAGE_TYPE = BUILTIN_VALUE_TYPES.find((t) => t.name === 'slice_usage')!;

export interface ControllerOptions {
  /** The period of the slice_usage probe that drives the loop (for display). */
  periodMs: number;
  mode: CpuControlMode;
  gain: number;
  log: Logger;
  /** Source of scheduler statistics; /proc unless a test simulates the kernel. */
  probe?: SchedProbe;
  /** Monotonic clock in nanoseconds; process.hrtime unless a test simulates time. */
  clock?: () => bigint;
}

export interface NodeSample {
  /** Measured CPU use over the last period, millicores. */
  usage: number;
  /** Estimated demand, millicores. */
  demand: number;
  entitlement: number;
  /** Weight last written (cgroup v2 units). */
  weight: number;
}

export interface ControllerSnapshot {
  /** Wall-clock time of the sample (ms since the epoch). */
  at: number;
  intervalMs: number;
  /** Millicores divided among slices in this period. */
  capacity: number;
  /** Millicores used outside sliced's groups (smoothed). */
  systemUsage: number;
  nodes: Map<string, NodeSample>;
}

const LOOP_HISTORY = 1024;

export class CpuController {
  private readonly agent: SliceAgent;
  private readonly opts: ControllerOptions;
  private readonly probe: SchedProbe;
  private readonly clock: () => bigint;
  private lastTime = 0n;
  private lastUptime = 0;
  private lastMachineBusy = 0;
  private lastRootUsage = 0;
  private systemUsage = 0;
  private lastUsage = new Map<string, number>();
  private lastWait = new Map<number, number>();
  private corrections = new Map<string, number>();
  private contended = new Map<string, boolean>();
  /** Weight last written per group, with the group's creation stamp at the time. */
  private readonly writtenWeights = new Map<string, { weight: number; epoch: number }>();
  private readonly loopMs = new Float64Array(LOOP_HISTORY);
  private loops = 0;
  private latest: ControllerSnapshot | null = null;
  private readonly passListeners = new Set<() => void>();
  private passStarted: bigint | null = null;
  private lastInterval: { first: boolean; elapsedNs: number } | null = null;
  /** The table tick() samples into when the loop runs outside the framework. */
  private readonly scratch = new Value(SLICE_USAGE_TYPE);

  constructor(agent: SliceAgent, options: ControllerOptions) {
    this.agent = agent;
    this.opts = options;
    this.probe = options.probe ?? procSchedProbe;
    this.clock = options.clock ?? (() => process.hrtime.bigint());
  }

  get mode(): CpuControlMode {
    return this.opts.mode;
  }

  get gain(): number {
    return this.opts.gain;
  }

  /** The period the loop runs at: that of the slice_usage probe driving it (the configured one until it has run). */
  get periodMs(): number {
    return this.opts.periodMs;
  }

  snapshot(): ControllerSnapshot | null {
    return this.latest;
  }

  /** Durations of recent loop passes in milliseconds (most recent last). */
  loopDurations(): number[] {
    const count = Math.min(this.loops, LOOP_HISTORY);
    const out: number[] = [];
    for (let i = this.loops - count; i < this.loops; i++) out.push(this.loopMs[i % LOOP_HISTORY]!);
    return out;
  }

  /**
   * One pass of the loop outside the framework (tests, or a tree without the entitlement
   * policy wired): sample, then act on the sample.
   */
  tick(): void {
    this.sample(this.scratch);
    this.act(this.scratch);
  }

  /**
   * Measure every slice and domain into `out` (a slice_usage value): rows "slice/<name>" and
   * "domain/<name>" with CPU used (NaN before the first interval) and estimated demand
   * (Infinity until there is an interval) in millicores, and a row "system" with the CPU
   * used outside sliced's groups. This is the slice_usage probe's refresh.
   */
  sample(out: Value): void {
    this.passStarted = process.hrtime.bigint();
    try {
      this.measure(this.clock(), out);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'slice usage sampling failed');
    }
  }

  /**
   * Compute entitlements from a slice_usage value and write the weights that deliver them.
   * This is what the entitlement policy does when its port receives an update.
   */
  act(table: Value): void {
    try {
      this.control(table);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'control loop pass failed');
    }
    const started = this.passStarted ?? process.hrtime.bigint();
    this.loopMs[this.loops % LOOP_HISTORY] = Number(process.hrtime.bigint() - started) / 1e6;
    this.loops++;
    this.passStarted = null;
    for (const listener of this.passListeners) listener();
  }

  /** Call `listener` after every pass (the dashboard's live frames); returns the unsubscribe. */
  onPass(listener: () => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  configure(options: { mode?: CpuControlMode; gain?: number; periodMs?: number }): void {
    if (options.periodMs !== undefined) this.opts.periodMs = options.periodMs;
    if (options.mode !== undefined) this.opts.mode = options.mode;
    if (options.gain !== undefined) this.opts.gain = options.gain;
  }

  private measure(now: bigint, out: Value): void {
    const state = this.agent.state;
    const backend = this.agent.backend;
    const first = this.lastTime === 0n;

    const elapsedNs = first ? 0 : Number(now - this.lastTime);
    const toMillicores = (ns: number): number => (elapsedNs > 0 ? (ns / elapsedNs) * 1000 : 0);
    const uptime = this.probe.uptimeSeconds();

    const machineBusy = this.probe.machineBusyNs();
    const rootUsage = backend.readCpuUsageNs([]);
    if (!first) {
      const system = Math.max(0, toMillicores(machineBusy - this.lastMachineBusy - (rootUsage - this.lastRootUsage)));
      this.systemUsage = this.systemUsage === 0 ? system : 0.5 * this.systemUsage + 0.5 * system;
    }

    const rows: Array<[string, number, number]> = [];
    const nextUsage = new Map<string, number>();
    const nextWait = new Map<number, number>();

    for (const slice of state.slices.values()) {
      const id = sliceKey(slice.name);
      const path = sliceGroup(state, slice.name);
      const previousUsage = this.lastUsage.get(id);
      let used: number;
      let tids: number[];
      try {
        used = backend.readCpuUsageNs(path);
        // A slice that ran for no time at all in a whole period has nothing runnable (the
        // scheduler lets every runnable group run within a period), so it has no demand.
        tids = previousUsage === used ? [] : backend.threads(path);
      } catch {
        continue; // being created or deleted right now
      }
      nextUsage.set(id, used);
      let waitedNs = 0;
      for (const tid of tids) {
        const stat = this.probe.schedStat(tid);
        if (!stat) continue;
        nextWait.set(tid, stat.waitNs);
        const previous = this.lastWait.get(tid);
        if (previous !== undefined) waitedNs += stat.waitNs - previous;
        else if (!first && this.probe.startedSince(tid, this.lastUptime)) waitedNs += Math.min(stat.waitNs, elapsedNs);
      }
      // A slice seen for the first time has no interval yet: no usage to correct against,
      // and a demand that depends on whether it has threads at all (see sliceDemand).
      const fresh = first || previousUsage === undefined;
      const usedMc = fresh ? NaN : toMillicores(used - previousUsage);
      rows.push([id, usedMc, sliceDemand({ fresh, tasks: tids.length, usedMc, waitedMc: toMillicores(waitedNs) })]);
    }
    for (const domain of state.domains.values()) {
      const id = domainKey(domain.name);
      try {
        const used = backend.readCpuUsageNs(domainGroup(state, domain.name));
        nextUsage.set(id, used);
        const previous = this.lastUsage.get(id);
        rows.push([id, previous === undefined ? NaN : toMillicores(used - previous), NaN]);
      } catch {
        continue;
      }
    }
    rows.push(['system', this.systemUsage, NaN]);

    const labels = rows.map((r) => r[0]);
    out.setRows(rows.length, sameLabels(out.labels, labels) ? out.labels : labels);
    rows.forEach(([, usage, demand], i) => {
      out.set(i, 0, usage);
      out.set(i, 1, demand);
    });
    this.lastInterval = { first, elapsedNs };
    this.lastTime = now;
    this.lastUptime = uptime;
    this.lastMachineBusy = machineBusy;
    this.lastRootUsage = rootUsage;
    this.lastUsage = nextUsage;
    this.lastWait = nextWait;
  }

  private control(table: Value): void {
    const state = this.agent.state;
    const backend = this.agent.backend;
    const node = this.agent.node;
    const usage = new Map<string, number>();
    const demand = new Map<string, number>();
    let systemUsage = 0;
    for (let row = 0; row < table.rows; row++) {
      const id = table.labels[row]!;
      const used = table.get(row, 0);
      if (id === 'system') {
        systemUsage = Number.isFinite(used) ? used : 0;
        continue;
      }
      if (!Number.isNaN(used)) usage.set(id, used);
      const named = parseKey(id);
      if (named?.kind === 'slice') demand.set(named.name, table.get(row, 1));
    }
    const first = this.lastInterval?.first ?? true;

    const capacity = node.cpuMillicores - Math.min(systemUsage, node.systemReserveMillicores);
    const out = controlStep({
      state,
      capacity,
      demand,
      usage: first ? new Map() : usage,
      mode: this.opts.mode,
      gain: this.opts.gain,
      corrections: this.corrections,
      contended: this.contended,
    });
    this.corrections = out.corrections;
    this.contended = out.contended;

    const changed: Record<string, { weight: number; correction: number; entitlement: number; demand: number; usage: number }> = {};
    for (const [id, weight] of out.weights) {
      const named = parseKey(id);
      const path = named && groupIfExists(() => (named.kind === 'slice' ? sliceGroup(state, named.name) : domainGroup(state, named.name)));
      if (!path) continue;
      const key = groupKey(path);
      const epoch = this.agent.groupEpoch(key);
      const last = this.writtenWeights.get(key);
      if (last && last.weight === weight && last.epoch === epoch) continue;
      try {
        backend.setCpuWeight(path, weight);
        this.writtenWeights.set(key, { weight, epoch });
        const result = out.result.nodes.get(id)!;
        changed[id] = {
          weight,
          correction: round(out.corrections.get(id) ?? 1),
          entitlement: round(result.entitlement),
          demand: round(result.effectiveDemand),
          usage: round(usage.get(id) ?? 0),
        };
      } catch {
        this.writtenWeights.delete(key); // group vanished; retried next pass if it comes back
      }
    }
    if (Object.keys(changed).length > 0) this.opts.log.debug({ capacity: round(out.capacity), changed }, 'weights written');

    const nodes = new Map<string, NodeSample>();
    for (const [id, result] of out.result.nodes) {
      const named = parseKey(id);
      nodes.set(id, {
        usage: usage.get(id) ?? 0,
        demand: named?.kind === 'slice' ? finiteOr(demand.get(named.name), 0) : result.effectiveDemand,
        entitlement: result.entitlement,
        weight: out.weights.get(id) ?? 0,
      });
    }
    this.latest = { at: Date.now(), intervalMs: (this.lastInterval?.elapsedNs ?? 0) / 1e6, capacity: out.capacity, systemUsage, nodes };
  }
}

function sameLabels(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function groupIfExists(path: () => GroupPath): GroupPath | null {
  try {
    return path();
  } catch {
    return null; // deleted since the sample
  }
}

function finiteOr(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) ? value : fallback;
}

function round(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 10) / 10 : value;
}
