/**
 * The simulator's entry point (slicectl simulate, bench:simulate, and programs that import it):
 * read the workload a spec names and the policy documents, run each policy on the same
 * workload and nodes, and return the results side by side.
 *
 * Workload specs:
 *   swf:PATH[.gz]          Standard Workload Format (a processor = 1000 millicores)
 *   csv:PATH               arrival,duration,cpu[,memory][,slice] with a header
 *   poisson:rate=R,duration=D,count=N[,cpu=C]   generated: Poisson arrivals, exponential durations
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SlicedError } from '../core/errors.js';
import { parseTreeYaml, type TreeDocument } from '../framework/document.js';
import { documentFor, simulate, type SimulateOptions } from './engine.js';
import type { SimResult } from './metrics.js';
import { jobsOf, poissonJobs, readCsvWorkload, readSwf, type JobSource } from './workload.js';

export type { SimResult } from './metrics.js';
export { documentFor, simulate } from './engine.js';
export { resultCharts } from './charts.js';

/** The built-in placement policies a run may name instead of a document. */
export const NAMED_POLICIES = ['random', 'round_robin', 'least_loaded', 'best_of_two'] as const;

export interface RunSpec {
  nodes: SimulateOptions['nodes'];
  workload: string;
  /** Policy documents (YAML files) or names of built-in policies. */
  policies: string[];
  seed: number;
  loadUpdateMs: number | 'instant';
  warmup?: number;
  cooldown?: number;
  pluginDirs?: string[];
}

function readText(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new SlicedError('ENOENT', `cannot read ${path}: ${(err as Error).message}`);
  }
  return (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
}

/** The jobs a workload spec names; a new source each call (a source is read once). */
export function workloadSource(spec: string, seed: number): () => JobSource {
  const colon = spec.indexOf(':');
  const [kind, rest] = colon < 0 ? [spec, ''] : [spec.slice(0, colon), spec.slice(colon + 1)];
  switch (kind) {
    case 'swf': {
      const w = readSwf(readText(rest), { origin: rest });
      return () => jobsOf(w);
    }
    case 'csv': {
      const w = readCsvWorkload(readText(rest), rest);
      return () => jobsOf(w);
    }
    case 'poisson': {
      const params = new Map(
        rest
          .split(',')
          .filter((p) => p !== '')
          .map((p) => {
            const [k, v] = p.split('=');
            return [k!.trim(), Number(v)] as const;
          }),
      );
      for (const key of params.keys())
        if (!['rate', 'duration', 'count', 'cpu'].includes(key))
          throw new SlicedError('EINVAL', `poisson workload: unknown parameter ${key} (rate, duration, count, cpu)`);
      const options = {
        rate: params.get('rate') ?? NaN,
        meanDuration: params.get('duration') ?? NaN,
        count: params.get('count') ?? NaN,
        cpu: params.get('cpu') ?? 1000,
        seed,
      };
      poissonJobs(options); // checks the numbers now, before any run
      return () => poissonJobs(options);
    }
    default:
      throw new SlicedError(
        'EINVAL',
        `workload ${JSON.stringify(spec)}: give swf:PATH, csv:PATH or poisson:rate=R,duration=D,count=N[,cpu=C]`,
      );
  }
}

/** Run every policy on the same workload and nodes, one after the other. */
export async function runSimulations(spec: RunSpec): Promise<SimResult[]> {
  if (spec.policies.length === 0)
    throw new SlicedError('EINVAL', `name at least one policy: a YAML file, or one of ${NAMED_POLICIES.join(', ')}`);
  const jobs = workloadSource(spec.workload, spec.seed);
  const documents = spec.policies.map((p): [string, TreeDocument] =>
    (NAMED_POLICIES as readonly string[]).includes(p) ? [p, documentFor(p)] : [basename(p), parseTreeYaml(readText(p), p)],
  );
  const results: SimResult[] = [];
  for (const [label, document] of documents) {
    results.push(
      await simulate({
        nodes: spec.nodes,
        jobs: jobs(),
        document,
        label,
        seed: spec.seed,
        loadUpdateMs: spec.loadUpdateMs,
        ...(spec.warmup !== undefined ? { warmup: spec.warmup } : {}),
        ...(spec.cooldown !== undefined ? { cooldown: spec.cooldown } : {}),
        ...(spec.pluginDirs ? { pluginDirs: spec.pluginDirs } : {}),
      }),
    );
  }
  return results;
}
