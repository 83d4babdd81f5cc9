/** Shared helpers for the benchmarks: output conventions and sampling. */
import { readFileSync } from 'node:fs';

export const jsonMode = process.argv.includes('--json');

/** Human-readable progress: stdout normally, stderr with --json (stdout then carries only the result). */
export function say(line = ''): void {
  (jsonMode ? process.stderr : process.stdout).write(`${line}\n`);
}

/** The result: always the last line of stdout, one JSON object. */
export function finish(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function machine(): Record<string, unknown> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown';
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const cpus = cpuinfo.split('\n').filter((l) => l.startsWith('processor')).length;
  return { cpu_model: model, cpus, kernel, node: process.version, date: new Date().toISOString() };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Run `work` over `items` with `concurrency` calls in flight; returns the seconds it took. */
export async function inParallel<T>(items: T[], work: (item: T) => Promise<unknown>, concurrency = 16): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
  return (performance.now() - started) / 1000;
}
