/**
 * The what-if simulator: N nodes run the jobs of a workload, placed by the same component
 * modules the daemon loads, wired by a tree document as `slicectl dump` prints it. Discrete
 * events: arrivals (from the workload), completions (one pending event per node, made stale
 * by a version when the node's set of tasks changes) and the tree's own timers on a simulated
 * clock (probe periods). A node divides its CPU among its tasks with the node agent's
 * entitlement maths (share.ts); a task runs at its entitlement until the set changes. Node
 * state lives in typed arrays, running tasks in slots that are reused, and jobs are read as
 * they arrive and counted as they end: memory does not grow with the number of jobs.
 *
 * A job with a demand curve (PlanetLab's VMs) asks a new demand at each step (a second heap
 * of step events, one per such task) and ends by time after its last step: what it asks and
 * what it gets are added up, and so is the time nodes spend asked for more than they have.
 *
 * Balancers move tasks through the `taskMigration` service, as in the daemon. A balancer
 * decides for its own node (mosix_load_balancer unloads the node it runs on), so when a
 * component of the document takes that service, every node gets a tree of its own, named as
 * the node, that sees its own tasks through the probe `sim_tasks` (process_load: each task's
 * CPU in millicores, rows by a pid the simulator gives it), and whose timers tick i/n of a
 * load period after the first node's (nodes are not in step). Arrivals are placed by the
 * first node's tree, as if all were submitted there (so a document places as it does without
 * its balancer, and the two compare). A move is made at once and keeps the task's progress (a
 * live migration, as Kerrighed's and MOSIX's; sliced's own tasks restart on their target
 * instead). Without a balancer one tree does all the placing.
 *
 * The trees see the nodes through the probe `sim_nodes` (source node_load: each node's
 * runnable demand in millicores, a row per node), refreshed every `loadUpdateMs` of simulated
 * time, or after every arrival and departure ("instant"). A new task is placed as the daemon
 * places one: ConfigTree.placeNewTask(), schedulers with handle_all first.
 */
import { SlicedError } from '../core/errors.js';
import { prng, streamSeed } from '../core/prng.js';
import { BUILTIN_TYPES } from '../components/builtins.js';
import { executePlan, planApply, type TreeDocument } from '../framework/document.js';
import type { Timers } from '../framework/instances.js';
import { TypeRegistry } from '../framework/registry.js';
import { ConfigTree } from '../framework/tree.js';
import type { ProbeType } from '../framework/types.js';
import type { TaskMigration } from '../framework/handle.js';
import { EventHeap } from './event-heap.js';
import { JobFigures, meanOf, type SimResult } from './metrics.js';
import { shareWithSlices, waterFill } from './share.js';
import type { Job, JobSource } from './workload.js';

export interface SimulateOptions {
  /** Identical nodes: how many, their CPU (millicores) and memory (bytes; 0: not limited). */
  nodes: { count: number; cpuMillicores: number; memoryBytes?: number };
  jobs: JobSource;
  /** The policy's tree (probes: sim_nodes; schedulers: ... with handle_all). */
  document: TreeDocument;
  /** A label for the result (the policy file's name, say). */
  label?: string;
  seed: number;
  /** How often the tree sees new node loads: simulated milliseconds, or "instant". */
  loadUpdateMs: number | 'instant';
  /** Fractions of the jobs, by arrival, left out of the statistics at the start and at the end. */
  warmup?: number;
  cooldown?: number;
  /** Utilisation and imbalance samples over the run. */
  samples?: number;
  /** Directories of sliced-plugin-* packages (as the daemon's pluginDirs). */
  pluginDirs?: string[];
}

/** The probe that shows the simulated nodes to the tree. */
export const SIM_PROBE = 'sim_nodes';
/** The probe that shows a node's tree the tasks on its node (when the document balances). */
export const SIM_TASKS_PROBE = 'sim_tasks';
/** The policies' random stream of the run's seed (a generated workload has its own, workload.ts). */
const POLICY_STREAM = 2;
const INSTANT_PERIOD_MS = 3_600_000; // the longest period a probe takes; in "instant" mode the engine refreshes after each event

/** A tree that places every new task with the built-in policy `name`, its node_load port on the simulated nodes. */
export function documentFor(name: string): TreeDocument {
  return {
    probes: { [SIM_PROBE]: {} },
    schedulers: { place: { process_set: { handle_all: 1 }, [name]: { node_load: { nodes: `-> /probes/${SIM_PROBE}/node_load` } } } },
  };
}

/** Timers on the simulated clock: the engine fires them between its events. */
class SimClock implements Timers {
  nowMs = 0;
  private readonly intervals = new Map<number, { fn: () => void; ms: number; next: number }>();
  private nextHandle = 1;

  setInterval(fn: () => void, ms: number, phaseMs = 0): unknown {
    const handle = this.nextHandle++;
    this.intervals.set(handle, { fn, ms, next: this.nowMs + ms + (phaseMs % ms) });
    return handle;
  }

  /** The same clock for one node's tree, its intervals shifted by `phaseMs` (nodes' timers are not in step). */
  phased(phaseMs: number): Timers {
    return {
      setInterval: (fn, ms) => this.setInterval(fn, ms, phaseMs),
      clearInterval: (handle) => this.clearInterval(handle),
      now: () => this.now(),
    };
  }

  clearInterval(handle: unknown): void {
    this.intervals.delete(handle as number);
  }

  now(): number {
    return this.nowMs;
  }

  /** When the next timer is due (ms), Infinity when none is set. */
  nextDue(): number {
    let next = Infinity;
    for (const t of this.intervals.values()) if (t.next < next) next = t.next;
    return next;
  }

  /** Fire the timers due at or before now. */
  fireDue(): void {
    for (const t of [...this.intervals.values()]) {
      if (t.next > this.nowMs) continue;
      t.next += t.ms;
      t.fn();
    }
  }

  /** Fire every timer now (instant load updates). */
  fireAll(): void {
    for (const t of [...this.intervals.values()]) t.fn();
  }
}

export async function simulate(options: SimulateOptions): Promise<SimResult> {
  const { jobs: source, nodes: spec } = options;
  const n = Math.floor(spec.count);
  if (!(n >= 1 && n <= 1_000_000)) throw new SlicedError('EINVAL', `nodes ${spec.count}: must be a whole number from 1 to 1000000`);
  if (!(spec.cpuMillicores > 0)) throw new SlicedError('EINVAL', `node CPU ${spec.cpuMillicores}: must be more than 0 millicores`);
  const capacity = spec.cpuMillicores;
  const memoryBytes = spec.memoryBytes ?? 0;
  const width = String(n - 1).length;
  const names = Array.from({ length: n }, (_, i) => `n${String(i).padStart(width, '0')}`);
  const nodeOf = new Map(names.map((name, i) => [name, i]));

  // Node state.
  const demand = new Float64Array(n); // runnable demand, millicores
  const used = new Float64Array(n); // what its tasks get, millicores
  const memory = new Float64Array(n);
  const since = new Float64Array(n); // when its tasks' remaining work was last brought up to date
  const version = new Int32Array(n);
  const tasksOn: number[][] = Array.from({ length: n }, () => []);
  // Running tasks, in slots reused once a task ends.
  const slots = new TaskSlots();

  const clock = new SimClock();
  const lastMove = new Float64Array(n).fill(NaN); // simulated ms of each node's last move away
  const moves: Array<{ pid: number; to: number }> = [];
  /** The taskMigration service of node i's tree: its tasks by pid; a move is queued and made after the trees' turn. */
  const migrationFrom = (i: number): TaskMigration => ({
    taskOf: (pid) => {
      const k = slots.slotOf(pid);
      return k !== undefined && slots.node[k] === i ? String(pid) : null;
    },
    migrate(task, node) {
      const pid = Number(task);
      const to = nodeOf.get(node);
      const k = slots.slotOf(pid);
      if (to === undefined || k === undefined || slots.node[k] !== i)
        return Promise.reject(new SlicedError('ENOENT', `no task ${task} on ${names[i]}, or no node ${node}`));
      moves.push({ pid, to });
      lastMove[i] = clock.nowMs;
      return Promise.resolve();
    },
    lastMigration: () => (Number.isNaN(lastMove[i]) ? null : lastMove[i]!),
    migrationsUnderWay: () => 0,
  });
  const tasksOf = (i: number): { pids: Int32Array; load: Float64Array; count: number } => {
    const tasks = tasksOn[i]!;
    const pids = new Int32Array(tasks.length);
    const load = new Float64Array(tasks.length);
    tasks.forEach((k, q) => {
      pids[q] = slots.pid[k]!;
      load[q] = slots.rate[k]!;
    });
    return { pids, load, count: tasks.length };
  };
  const trees = await buildTrees(options, clock, nodeOf, demand, migrationFrom, tasksOf);

  // Tasks with demand curves: CPU asked and got (millicore-seconds), and node time over capacity.
  let curveAsked = 0;
  let curveServed = 0;
  let overloadedNodeSeconds = 0;
  /** Bring node i's tasks' remaining work (and the curves' sums) up to time t. */
  const advance = (i: number, t: number): void => {
    const dt = t - since[i]!;
    since[i] = t;
    if (dt <= 0) return;
    if (demand[i]! > capacity * (1 + 1e-9)) overloadedNodeSeconds += dt;
    for (const k of tasksOn[i]!) {
      if (slots.curve[k] === null) slots.remaining[k] = slots.remaining[k]! - slots.rate[k]! * dt;
      else {
        curveAsked += slots.cpu[k]! * dt;
        curveServed += slots.rate[k]! * dt;
      }
    }
  };
  const heap = new EventHeap();
  const steps = new EventHeap(); // (time, slot, generation): a curve task's next step
  let scratchDemand = new Float64Array(64);
  let scratchRate = new Float64Array(64);
  let scratchOrder = new Int32Array(64);
  /** Divide node i's CPU among its tasks and set its next completion. */
  const share = (i: number, t: number): void => {
    const tasks = tasksOn[i]!;
    const count = tasks.length;
    if (count > scratchDemand.length) {
      scratchDemand = new Float64Array(count * 2);
      scratchRate = new Float64Array(count * 2);
      scratchOrder = new Int32Array(count * 2);
    }
    let total = 0;
    let sliced = false;
    for (let q = 0; q < count; q++) {
      const k = tasks[q]!;
      scratchDemand[q] = slots.cpu[k]!;
      total += slots.cpu[k]!;
      if (slots.slice[k]! >= 0) sliced = true;
    }
    demand[i] = total;
    if (!sliced) waterFill(capacity, scratchDemand, count, scratchRate, scratchOrder);
    else
      shareWithSlices(
        capacity,
        tasks.map((k) => slots.cpu[k]!),
        tasks.map((k) => slots.slice[k]!),
      ).forEach((r, q) => (scratchRate[q] = r));
    let u = 0;
    let next = Infinity;
    for (let q = 0; q < count; q++) {
      const k = tasks[q]!;
      const r = scratchRate[q]!;
      slots.rate[k] = r;
      u += r;
      if (r > 0) next = Math.min(next, t + Math.max(0, slots.remaining[k]!) / r);
    }
    used[i] = u;
    version[i]!++;
    if (next < Infinity) heap.push(next, i, version[i]!);
  };

  // Statistics over the run.
  const figures = new JobFigures();
  const measureFrom = Math.floor((options.warmup ?? 0) * source.count);
  const measureTo = Math.ceil((1 - (options.cooldown ?? 0)) * source.count);
  const samples = Math.max(2, options.samples ?? 200);
  const utilisation: Array<[number, number]> = [];
  const imbalance: Array<[number, number]> = [];
  const sampleEvery = source.span > 0 ? source.span / samples : Infinity;
  let nextSample = 0;
  let refused = 0;
  let unplaced = 0;
  let violations = 0;
  let decisions = 0;
  let decisionMs = 0;
  const refusals = new Map<string, number>();
  const sample = (t: number): void => {
    let u = 0;
    let max = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      u += used[i]!;
      sum += demand[i]!;
      if (demand[i]! > max) max = demand[i]!;
    }
    utilisation.push([t, u / (n * capacity)]);
    imbalance.push([t, sum > 0 ? max / (sum / n) : 1]);
  };

  let migrations = 0;
  /** Make the moves the balancers asked for during the trees' turn. */
  const makeMoves = (t: number): void => {
    for (const { pid, to } of moves) {
      const k = slots.slotOf(pid);
      if (k === undefined) continue; // ended since
      const from = slots.node[k]!;
      if (from === to) continue;
      advance(from, t);
      advance(to, t);
      const leaving = tasksOn[from]!;
      leaving.splice(leaving.indexOf(k), 1);
      tasksOn[to]!.push(k);
      memory[from] = memory[from]! - slots.memory[k]!;
      memory[to] = memory[to]! + slots.memory[k]!;
      if (memoryBytes > 0 && memory[to]! > memoryBytes) violations++;
      slots.node[k] = to;
      migrations++;
      share(from, t);
      share(to, t);
    }
    moves.length = 0;
  };

  const started = performance.now();
  const event = { time: 0, node: 0, version: 0 };
  const instant = options.loadUpdateMs === 'instant';
  const job: Job = { arrival: 0, duration: 0, cpu: 0, memory: 0, slice: -1, curve: null, curveStep: 0 };
  let curveTasks = 0;
  let pending = source.next(job);
  let lastArrival = 0;
  clock.fireAll(); // the first loads
  moves.length = 0; // nothing to move yet
  for (;;) {
    const tArrival = pending ? job.arrival : Infinity;
    const tDone = Math.min(heap.peekTime(), steps.peekTime());
    if (tArrival === Infinity && tDone === Infinity) break; // the timers alone would tick for ever
    const tTimerMs = clock.nextDue();
    const tTimer = tTimerMs / 1000;
    const t = Math.min(tArrival, tDone, tTimer);
    while (t >= nextSample && nextSample <= source.span) {
      sample(nextSample);
      nextSample += sampleEvery;
    }
    clock.nowMs = t * 1000;
    if (tTimer <= tArrival && tTimer <= tDone) {
      clock.nowMs = tTimerMs; // exactly: t * 1000 can round below it, and the timer would never be due
      clock.fireDue();
      makeMoves(t);
      continue;
    }
    if (tDone <= tArrival && steps.peekTime() <= heap.peekTime()) {
      steps.pop(event);
      const k = event.node;
      if (event.version !== slots.generation[k]) continue; // the slot's task ended and the slot was reused
      const i = slots.node[k]!;
      advance(i, t);
      const curve = slots.curve[k]!;
      const j = slots.step[k]!;
      if (j < curve.length) {
        slots.cpu[k] = curve[j]!;
        slots.step[k] = j + 1;
        steps.push(t + slots.duration[k]! / curve.length, k, slots.generation[k]!);
      } else {
        const tasks = tasksOn[i]!;
        tasks.splice(tasks.indexOf(k), 1);
        memory[i] = memory[i]! - slots.memory[k]!;
        slots.free(k);
      }
      share(i, t);
    } else if (tDone <= tArrival) {
      heap.pop(event);
      const i = event.node;
      if (event.version !== version[i]) continue; // the node's tasks changed since
      advance(i, t);
      // Done: what is left is what rounding of the clock leaves (times grow, their precision shrinks).
      const tolerance = 1e-9 + t * 1e-12;
      const tasks = tasksOn[i]!;
      let kept = 0;
      for (const k of tasks) {
        if (slots.remaining[k]! > slots.rate[k]! * tolerance) {
          tasks[kept++] = k;
          continue;
        }
        memory[i] = memory[i]! - slots.memory[k]!;
        if (slots.measured[k]) figures.add(t - slots.arrival[k]!, slots.duration[k]!);
        slots.free(k);
      }
      tasks.length = kept;
      share(i, t);
    } else {
      const index = decisions++; // every arrival is one decision
      lastArrival = job.arrival;
      const sliceName = job.slice >= 0 ? source.slices[job.slice]! : null;
      const before = performance.now();
      const answer = trees[0]!.placeNewTask({ parentPid: 1, sessionId: null, slice: sliceName });
      decisionMs += performance.now() - before;
      const i = answer.node === null ? undefined : nodeOf.get(answer.node);
      if (answer.refused !== null) {
        refused++;
        refusals.set(answer.refused, (refusals.get(answer.refused) ?? 0) + 1);
      } else if (i === undefined) {
        unplaced++; // no scheduler answered, or it named no simulated node
      } else {
        const measured = index >= measureFrom && index < measureTo && job.curve === null;
        if (job.duration <= 0) {
          if (measured) figures.add(0, 0);
        } else {
          advance(i, t);
          const k = slots.take(job, measured, i);
          if (job.curve !== null) {
            curveTasks++;
            steps.push(t + job.curveStep, k, slots.generation[k]!);
          }
          tasksOn[i]!.push(k);
          memory[i] = memory[i]! + job.memory;
          if (memoryBytes > 0 && memory[i]! > memoryBytes) violations++;
          share(i, t);
        }
      }
      pending = source.next(job);
    }
    if (instant) {
      clock.fireAll();
      makeMoves(t);
    }
  }
  sample(Math.max(lastArrival, clock.nowMs / 1000));
  const wallSeconds = (performance.now() - started) / 1000;
  for (const tree of trees) tree.destroyAll();
  const simulatedSeconds = clock.nowMs / 1000;
  return {
    label: options.label ?? 'policy',
    nodes: n,
    jobs: decisions,
    measured: figures.sojourn.count,
    sojourn: figures.sojourn.summary(),
    slowdown: figures.slowdown.summary(),
    wait: figures.wait.summary(),
    slowdownCdf: figures.slowdown.cdf(),
    utilisation,
    utilisationMean: meanOf(utilisation),
    imbalance,
    imbalanceMean: meanOf(imbalance),
    migrations,
    curves:
      curveTasks === 0
        ? null
        : { tasks: curveTasks, askedCpuSeconds: curveAsked / 1000, servedFraction: curveAsked > 0 ? curveServed / curveAsked : 1 },
    overloadedFraction: simulatedSeconds > 0 ? overloadedNodeSeconds / (n * simulatedSeconds) : 0,
    refused,
    refusals: Object.fromEntries(refusals),
    unplaced,
    reservationViolations: violations,
    decisions,
    decisionsPerSecond: decisionMs > 0 ? decisions / (decisionMs / 1000) : Infinity,
    simulatedSeconds,
    wallSeconds,
    speedup: wallSeconds > 0 ? simulatedSeconds / wallSeconds : Infinity,
  };
}

/**
 * The policy document's trees on the simulated clock, seeing the nodes through sim_nodes: one
 * (named as the first node) when no component of the document takes the taskMigration
 * service; else one per node, named as it, its tasks on sim_tasks.
 */
async function buildTrees(
  options: SimulateOptions,
  clock: SimClock,
  nodeOf: ReadonlyMap<string, number>,
  demand: Float64Array,
  migrationFrom: (node: number) => TaskMigration,
  tasksOf: (node: number) => { pids: Int32Array; load: Float64Array; count: number },
): Promise<ConfigTree[]> {
  const names = [...nodeOf.keys()];
  const n = names.length;
  const simNodes: ProbeType = {
    kind: 'probe',
    name: SIM_PROBE,
    description: "the simulator's nodes: each node's runnable CPU demand (millicores), a row per node",
    sources: [{ name: 'node_load', valueType: 'load', description: 'runnable demand of each simulated node, millicores' }],
    defaultPeriodMs: 1000,
    create: () => ({
      refresh(outputs) {
        const out = outputs[0]!;
        out.setRows(n, names);
        for (let i = 0; i < n; i++) out.data[i] = demand[i]!;
      },
    }),
  };
  const simTasks: ProbeType = {
    kind: 'probe',
    name: SIM_TASKS_PROBE,
    description: "the tasks on this tree's simulated node: the CPU each gets (millicores), rows by pid",
    sources: [{ name: 'process_load', valueType: 'process_load', description: 'CPU of each task on the node, millicores, rows by pid' }],
    defaultPeriodMs: 1000,
    create(ctx) {
      const node = nodeOf.get(ctx.services.nodeName) ?? 0;
      return {
        refresh(outputs) {
          const out = outputs[0]!;
          const { pids, load, count } = tasksOf(node);
          out.setRows(count, Array.from(pids, String));
          out.data.set(load.subarray(0, count));
        },
      };
    },
  };
  const registry = new TypeRegistry({ builtins: BUILTIN_TYPES, pluginDirs: options.pluginDirs ?? [] });
  registry.add(simNodes, 'the simulator');
  registry.add(simTasks, 'the simulator');
  const random = prng(streamSeed(options.seed, POLICY_STREAM));
  const silent = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
  let balances = false;
  const treeOf = async (i: number): Promise<ConfigTree> => {
    const taskMigration = migrationFrom(i);
    const services = {
      nodeName: names[i]!,
      log: silent,
      random,
      // Taken by a component when it is made: a sign that the document balances.
      get taskMigration(): TaskMigration {
        balances = true;
        return taskMigration;
      },
    };
    // Nodes' timers are not in step: node i's ticks come i/n of a load period after the first's.
    const period = options.loadUpdateMs === 'instant' ? INSTANT_PERIOD_MS : Math.max(1, Math.round(options.loadUpdateMs));
    const tree = new ConfigTree({ registry, services, timers: i === 0 ? clock : clock.phased(Math.floor((i * period) / n)) });
    try {
      const steps = await planApply(tree, registry, options.document);
      await executePlan(tree, steps).catch((err: Error) => {
        throw new SlicedError('EINVAL', `the policy document does not apply: ${err.message}`);
      });
      const probe = `/probes/${SIM_PROBE}`;
      if (!tree.exists(probe))
        throw new SlicedError('EINVAL', `the policy document has no ${probe}: link the policies' node_load ports to ${probe}/node_load`);
      for (const name of [SIM_PROBE, SIM_TASKS_PROBE])
        if (tree.exists(`/probes/${name}`)) tree.write(`/probes/${name}/probe_period`, String(period));
    } catch (err) {
      tree.destroyAll();
      throw err;
    }
    return tree;
  };
  const trees = [await treeOf(0)];
  try {
    if (balances) for (let i = 1; i < n; i++) trees.push(await treeOf(i));
  } catch (err) {
    for (const tree of trees) tree.destroyAll();
    throw err;
  }
  return trees;
}

/** Running tasks' figures in columns; a slot is reused once its task ends. */
class TaskSlots {
  remaining = new Float64Array(1024); // millicore-seconds
  rate = new Float64Array(1024);
  arrival = new Float64Array(1024);
  duration = new Float64Array(1024);
  cpu = new Float64Array(1024);
  memory = new Float64Array(1024);
  slice = new Int32Array(1024);
  measured = new Uint8Array(1024);
  /** The node it runs on; its demand curve (null: work at a steady cpu) and the curve's next step. */
  node = new Int32Array(1024);
  curve: Array<Float64Array | null> = [];
  step = new Int32Array(1024);
  /** Counts the tasks a slot has held, so that a step event of an ended task is known as stale. */
  generation = new Int32Array(1024);
  /** The task's pid for the trees (sim_tasks, taskMigration): never reused in a run. */
  pid = new Int32Array(1024);
  private freeList: number[] = [];
  private used = 0;
  private nextPid = 1000;
  private readonly byPid = new Map<number, number>();

  take(job: Job, measured: boolean, node: number): number {
    const k = this.freeList.pop() ?? this.used++;
    if (k >= this.remaining.length) this.grow();
    // A curve task ends by time (a step event), never by work done.
    this.remaining[k] = job.curve === null ? job.duration * job.cpu : Infinity;
    this.rate[k] = 0;
    this.arrival[k] = job.arrival;
    this.duration[k] = job.duration;
    this.cpu[k] = job.cpu;
    this.memory[k] = job.memory;
    this.slice[k] = job.slice;
    this.measured[k] = measured ? 1 : 0;
    this.node[k] = node;
    this.curve[k] = job.curve;
    this.step[k] = 1;
    this.generation[k] = this.generation[k]! + 1;
    this.pid[k] = this.nextPid++;
    this.byPid.set(this.pid[k]!, k);
    return k;
  }

  /** The slot of the running task `pid`, or undefined once it has ended. */
  slotOf(pid: number): number | undefined {
    return this.byPid.get(pid);
  }

  free(k: number): void {
    this.byPid.delete(this.pid[k]!);
    this.curve[k] = null;
    this.freeList.push(k);
  }

  private grow(): void {
    const size = this.remaining.length * 2;
    this.remaining = grown(this.remaining, size);
    this.rate = grown(this.rate, size);
    this.arrival = grown(this.arrival, size);
    this.duration = grown(this.duration, size);
    this.cpu = grown(this.cpu, size);
    this.memory = grown(this.memory, size);
    this.slice = grown(this.slice, size);
    this.node = grown(this.node, size);
    this.step = grown(this.step, size);
    this.generation = grown(this.generation, size);
    this.pid = grown(this.pid, size);
    this.measured = grown(this.measured, size);
  }
}

/** A copy of `a` in a new array of its kind, `size` long. */
function grown<T extends Float64Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>>(a: T, size: number): T {
  const b = new (a.constructor as new (length: number) => T)(size);
  b.set(a);
  return b;
}
