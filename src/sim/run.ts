/**
 * The simulator's entry point (slicectl simulate, bench:simulate, and programs that import it):
 * read the workload a spec names and the policy documents, run each policy on the same
 * workload and nodes, and return the results side by side.
 *
 * Workload specs:
 *   swf:PATH[.gz]          Standard Workload Format (a processor = 1000 millicores)
 *   csv:PATH               arrival,duration,cpu[,memory][,slice] with a header
 *   planetlab:PATH         PlanetLab's per-VM CPU curves: a folder of files, or a .tar[.gz]/.tgz of one
 *   poisson:rate=R,duration=D,count=N[,cpu=C]   generated: Poisson arrivals, exponential durations
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { SlicedError } from '../core/errors.js';
import { parseTreeYaml, type TreeDocument } from '../framework/document.js';
import { documentFor, simulate, type SimulateOptions } from './engine.js';
import type { SimResult } from './metrics.js';
import { jobsOf, poissonJobs, readCsvWorkload, readPlanetLab, readSwf, type JobSource } from './workload.js';

export type { SimResult } from './metrics.js';
export { documentFor, simulate } from './engine.js';
export { resultCharts } from './charts.js';

/** The built-in placement policies a run may name instead of a document. */
export const NAMED_POLICIES = ['random', 'round_robin', 'least_loaded', 'best_of_two', 'round_robin_balancer'] as const;

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

function readBytes(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new SlicedError('ENOENT', `cannot read ${path}: ${(err as Error).message}`);
  }
  return /\.(gz|tgz)$/.test(path) ? gunzipSync(bytes) : bytes;
}

const readText = (path: string): string => readBytes(path).toString('utf8');

/** A trace's data files: not hidden files, nor the README.md a trace folder carries. */
const isTraceFile = (name: string): boolean => !name.startsWith('.') && name !== 'README.md';

/** The trace files of a folder, or of a tar archive (gzip-compressed or not), by name. */
async function readFiles(path: string): Promise<Array<{ name: string; text: string }>> {
  let folder: boolean;
  try {
    folder = statSync(path).isDirectory();
  } catch (err) {
    throw new SlicedError('ENOENT', `cannot read ${path}: ${(err as Error).message}`);
  }
  if (folder)
    return readdirSync(path, { withFileTypes: true })
      .filter((e) => e.isFile() && isTraceFile(e.name))
      .map((e) => ({ name: e.name, text: readFileSync(join(path, e.name), 'utf8') }));
  const files: Array<{ name: string; text: string }> = [];
  const archive = extract();
  const done = new Promise<void>((resolve, reject) => {
    archive.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        const name = basename(header.name);
        if (header.type === 'file' && isTraceFile(name)) files.push({ name, text: Buffer.concat(chunks).toString('utf8') });
        next();
      });
    });
    archive.on('finish', resolve);
    archive.on('error', (err: Error) => reject(new SlicedError('EINVAL', `${path} is not a tar archive: ${err.message}`)));
  });
  archive.end(readBytes(path));
  await done;
  return files;
}

/** A workload spec read: a new source of its jobs each call (a source is read once), and the jobs its reader skipped. */
export interface LoadedWorkload {
  jobs: () => JobSource;
  skipped: number;
}

/** The jobs a workload spec names. */
export async function loadWorkload(spec: string, seed: number): Promise<LoadedWorkload> {
  const colon = spec.indexOf(':');
  const [kind, rest] = colon < 0 ? [spec, ''] : [spec.slice(0, colon), spec.slice(colon + 1)];
  switch (kind) {
    case 'swf': {
      const w = readSwf(readText(rest), { origin: rest });
      return { jobs: () => jobsOf(w), skipped: w.skipped };
    }
    case 'csv': {
      const w = readCsvWorkload(readText(rest), rest);
      return { jobs: () => jobsOf(w), skipped: 0 };
    }
    case 'planetlab': {
      const w = readPlanetLab(await readFiles(rest));
      if (w.count === 0) throw new SlicedError('EINVAL', `${rest}: no PlanetLab trace file with samples in it`);
      return { jobs: () => jobsOf(w), skipped: w.skipped };
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
      return { jobs: () => poissonJobs(options), skipped: 0 };
    }
    default:
      throw new SlicedError(
        'EINVAL',
        `workload ${JSON.stringify(spec)}: give swf:PATH, csv:PATH, planetlab:PATH or poisson:rate=R,duration=D,count=N[,cpu=C]`,
      );
  }
}

/** Run every policy on the same workload and nodes, one after the other; `skipped`: the workload's jobs its reader left out. */
export async function runSimulations(spec: RunSpec): Promise<{ results: SimResult[]; skipped: number }> {
  if (spec.policies.length === 0)
    throw new SlicedError('EINVAL', `name at least one policy: a YAML file, or one of ${NAMED_POLICIES.join(', ')}`);
  const { jobs, skipped } = await loadWorkload(spec.workload, spec.seed);
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
  return { results, skipped };
}
