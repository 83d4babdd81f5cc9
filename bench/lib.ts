/** Shared helpers for the benchmarks: output conventions and sampling. */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

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

/** The value after a command-line flag (`--name VALUE`), or undefined. */
export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** 1, 5 and 15 minute load averages, rounded: every result records the load it ran under. */
export function loadAverage(): number[] {
  return loadavg().map((l) => round(l, 2));
}

type Undo = () => unknown;
const undos: Undo[] = [];
let interrupted = false;

/**
 * Register what must be undone if the benchmark is interrupted (SIGINT, SIGTERM, SIGHUP):
 * the handlers run newest first, then the process exits 128 + signal. Normal and failing
 * paths undo with try/finally and then call the returned function to deregister.
 */
export function onInterrupt(undo: Undo): () => void {
  if (undos.length === 0 && process.listenerCount('SIGINT') === 0) {
    for (const [signal, number] of [
      ['SIGINT', 2],
      ['SIGTERM', 15],
      ['SIGHUP', 1],
    ] as const) {
      process.on(signal, () => {
        if (interrupted) return; // a second signal while undoing: keep undoing
        interrupted = true;
        say(`${signal}: undoing what the benchmark made...`);
        void (async () => {
          for (const u of [...undos].reverse()) {
            try {
              await u();
            } catch (err) {
              process.stderr.write(`while undoing: ${(err as Error).message}\n`);
            }
          }
          process.exit(128 + number);
        })();
      });
    }
  }
  undos.push(undo);
  return () => {
    const i = undos.lastIndexOf(undo);
    if (i >= 0) undos.splice(i, 1);
  };
}
