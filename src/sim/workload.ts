/**
 * Workloads for the simulator: jobs that arrive, run for a duration at a CPU demand (and
 * optional memory), and leave. Held as columns of typed arrays, so a million jobs cost tens of
 * megabytes. Made by generators (Poisson arrivals, exponential service) or read from traces:
 * the Standard Workload Format, PlanetLab's per-VM CPU curves, and a generic CSV. Pure: the
 * readers take the text; the caller reads the files.
 */
import { SlicedError } from '../core/errors.js';
import { prng, streamSeed } from '../core/prng.js';

export interface Workload {
  count: number;
  /** Arrival times in seconds, ascending. */
  arrival: Float64Array;
  /** Run time in seconds at its full demand, alone on a node. */
  duration: Float64Array;
  /** CPU demand in millicores. */
  cpu: Float64Array;
  /** Memory in bytes (0: none asked). */
  memory: Float64Array;
  /** Index into `slices`, or -1 for none. */
  slice: Int32Array;
  slices: string[];
  /**
   * Jobs whose demand follows a curve (PlanetLab's VMs): the job's demand in millicores over
   * each `curveStep` seconds from its arrival; it ends by time, after its last step, whatever
   * it got. Absent, or null for a job: a job of `duration` seconds of work at `cpu`.
   */
  curves?: Array<Float64Array | null>;
  curveStep?: number;
}

/** One job as the engine reads it. */
export interface Job {
  arrival: number;
  duration: number;
  cpu: number;
  memory: number;
  /** Index into the source's slices, or -1. */
  slice: number;
  /** Demand over time, millicores a step (Workload.curves), or null: `duration` of work at `cpu`. */
  curve: Float64Array | null;
  curveStep: number;
}

/** Jobs in arrival order, read once: a workload held in memory, or one generated as it is read. */
export interface JobSource {
  readonly count: number;
  /** About when the last job arrives (or, for jobs with demand curves, ends), seconds: sampling covers it. */
  readonly span: number;
  readonly slices: readonly string[];
  /** Fill `job` with the next job; false when there is none left. */
  next(job: Job): boolean;
}

/** A workload held in memory, read in order. */
export function jobsOf(w: Workload): JobSource {
  let k = 0;
  return {
    count: w.count,
    span: spanOf(w),
    slices: w.slices,
    next(job) {
      if (k >= w.count) return false;
      job.arrival = w.arrival[k]!;
      job.duration = w.duration[k]!;
      job.cpu = w.cpu[k]!;
      job.memory = w.memory[k]!;
      job.slice = w.slice[k]!;
      job.curve = w.curves?.[k] ?? null;
      job.curveStep = w.curveStep ?? 0;
      k++;
      return true;
    },
  };
}

function spanOf(w: Workload): number {
  let span = w.count > 0 ? w.arrival[w.count - 1]! : 0;
  if (w.curves) for (let k = 0; k < w.count; k++) if (w.curves[k]) span = Math.max(span, w.arrival[k]! + w.duration[k]!);
  return span;
}

function emptyWorkload(count: number): Workload {
  return {
    count,
    arrival: new Float64Array(count),
    duration: new Float64Array(count),
    cpu: new Float64Array(count),
    memory: new Float64Array(count),
    slice: new Int32Array(count).fill(-1),
    slices: [],
  };
}

/** The generated workload's random stream of the run's seed (the policies have their own, engine.ts). */
const WORKLOAD_STREAM = 1;

/** An exponential variate of mean `mean` from a uniform one. */
function exponential(random: () => number, mean: number): number {
  return -mean * Math.log(1 - random());
}

/**
 * `count` jobs with Poisson arrivals at `rate` per second and exponential durations of mean
 * `meanDuration` seconds, each asking `cpu` millicores (the M/M/· workload of queueing theory),
 * made as they are read: millions of jobs take no memory.
 */
export function poissonJobs(options: { count: number; rate: number; meanDuration: number; cpu: number; seed: number }): JobSource {
  const { count, rate, meanDuration, cpu } = options;
  for (const [name, v] of Object.entries({ count, rate, meanDuration, cpu }))
    if (!(Number.isFinite(v) && v > 0)) throw new SlicedError('EINVAL', `${name} ${v}: must be a positive number`);
  const random = prng(streamSeed(options.seed, WORKLOAD_STREAM));
  let t = 0;
  let made = 0;
  const total = Math.floor(count);
  return {
    count: total,
    span: total / rate,
    slices: [],
    next(job) {
      if (made >= total) return false;
      made++;
      t += exponential(random, 1 / rate);
      job.arrival = t;
      job.duration = exponential(random, meanDuration);
      job.cpu = cpu;
      job.memory = 0;
      job.slice = -1;
      job.curve = null;
      return true;
    },
  };
}

/**
 * The Standard Workload Format (Parallel Workloads Archive): 18 whitespace-separated fields a
 * line, `;` starts a comment. Field 2 is the submit time, 4 the run time, 5 the processors
 * allocated (8 the requested ones when 5 is missing), 12 the user (its slice). A job of k
 * processors becomes k tasks of `cpuPerProcessor` millicores arriving together, each placed
 * on its own (no gang scheduling: a node here is one machine, not a partition). Jobs without
 * a positive run time or size are skipped and counted.
 */
export function readSwf(text: string, options: { cpuPerProcessor?: number; origin?: string } = {}): Workload & { skipped: number } {
  const perProcessor = options.cpuPerProcessor ?? 1000;
  const rows: Array<[number, number, number, string]> = [];
  let skipped = 0;
  let lineNo = 0;
  for (const line of text.split('\n')) {
    lineNo++;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith(';')) continue;
    const f = trimmed.split(/\s+/).map(Number);
    if (f.length < 18 || f.some((v) => Number.isNaN(v)))
      throw new SlicedError(
        'EINVAL',
        `${options.origin ?? 'SWF'} line ${lineNo}: expected 18 numbers, got ${JSON.stringify(trimmed.slice(0, 80))}`,
      );
    const [submit, runtime] = [f[1]!, f[3]!];
    const size = f[4]! > 0 ? f[4]! : f[7]!;
    if (!(runtime > 0) || !(size > 0) || submit < 0) {
      skipped++;
      continue;
    }
    for (let p = 0; p < size; p++) rows.push([submit, runtime, perProcessor, String(f[11]!)]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  const w = emptyWorkload(rows.length);
  const users = new Map<string, number>();
  rows.forEach(([submit, runtime, cpu, user], i) => {
    w.arrival[i] = submit;
    w.duration[i] = runtime;
    w.cpu[i] = cpu;
    let u = users.get(user);
    if (u === undefined) users.set(user, (u = users.size));
    w.slice[i] = u;
  });
  w.slices = [...users.keys()].map((u) => `user${u}`);
  return { ...w, skipped };
}

/**
 * A generic CSV: a header naming the columns arrival, duration, cpu (millicores), and
 * optionally memory (bytes) and slice; one job a line. Times in seconds.
 */
export function readCsvWorkload(text: string, origin = 'CSV'): Workload {
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  if (lines.length === 0) throw new SlicedError('EINVAL', `${origin}: no header line (arrival,duration,cpu[,memory][,slice])`);
  const header = lines[0]!.split(',').map((h) => h.trim().toLowerCase());
  const col = (name: string): number => header.indexOf(name);
  for (const required of ['arrival', 'duration', 'cpu'])
    if (col(required) < 0) throw new SlicedError('EINVAL', `${origin}: the header has no ${required} column (it has ${header.join(', ')})`);
  const rows = lines.slice(1).map((line, i) => {
    const cells = line.split(',').map((c) => c.trim());
    const num = (name: string, min: number): number => {
      const at = col(name);
      if (at < 0) return 0;
      const v = Number(cells[at]);
      if (!Number.isFinite(v) || v < min)
        throw new SlicedError(
          'EINVAL',
          `${origin} line ${i + 2}: ${name} ${JSON.stringify(cells[at] ?? '')} must be a number of at least ${min}`,
        );
      return v;
    };
    const slice = col('slice') >= 0 ? (cells[col('slice')] ?? '') : '';
    return { arrival: num('arrival', 0), duration: num('duration', 0), cpu: num('cpu', 1), memory: num('memory', 0), slice };
  });
  rows.sort((a, b) => a.arrival - b.arrival);
  const w = emptyWorkload(rows.length);
  const slices = new Map<string, number>();
  rows.forEach((r, i) => {
    w.arrival[i] = r.arrival;
    w.duration[i] = r.duration;
    w.cpu[i] = r.cpu;
    w.memory[i] = r.memory;
    if (r.slice !== '') {
      let s = slices.get(r.slice);
      if (s === undefined) slices.set(r.slice, (s = slices.size));
      w.slice[i] = s;
    }
  });
  w.slices = [...slices.keys()];
  return w;
}

/** PlanetLab (CoMon) traces sample each VM's CPU every 300 s. */
export const PLANETLAB_STEP_SECONDS = 300;

/**
 * PlanetLab's per-VM CPU curves (CloudSim's workload): a file per VM, one whole percent (0 to
 * 100) of a CPU a line, sampled every 300 s. Each VM becomes a job that arrives at 0 and asks,
 * over each step, its percent of `cpuPerVm` millicores (1000: one CPU), ending by time after
 * its last sample. Files with no sample are skipped and counted; a line that is not a percent
 * is an error naming the file and line.
 */
export function readPlanetLab(
  files: ReadonlyArray<{ name: string; text: string }>,
  options: { cpuPerVm?: number } = {},
): Workload & { skipped: number } {
  const perVm = options.cpuPerVm ?? 1000;
  const curves: Float64Array[] = [];
  let skipped = 0;
  for (const { name, text } of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const samples: number[] = [];
    text.split('\n').forEach((line, i) => {
      const trimmed = line.trim();
      if (trimmed === '') return;
      const pct = Number(trimmed);
      if (!/^\d+$/.test(trimmed) || pct > 100)
        throw new SlicedError(
          'EINVAL',
          `PlanetLab trace ${name} line ${i + 1}: ${JSON.stringify(trimmed.slice(0, 40))} is not a percent from 0 to 100`,
        );
      samples.push((pct / 100) * perVm);
    });
    if (samples.length === 0) skipped++;
    else curves.push(Float64Array.from(samples));
  }
  const w = emptyWorkload(curves.length);
  curves.forEach((curve, k) => {
    w.duration[k] = curve.length * PLANETLAB_STEP_SECONDS;
    w.cpu[k] = curve[0]!;
  });
  return { ...w, curves, curveStep: PLANETLAB_STEP_SECONDS, skipped };
}
