/** Shared helpers for the benchmarks: output conventions, sampling, burners. */
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { spawnInSlice, type SliceProcessPlan } from '../src/kernel/spawn.js';
import type { ApiClient } from '../src/cli/client.js';

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

/** CPU burners (busy shell loops) started inside a slice through the same path as `slicectl exec`. */
export class Burners {
  private readonly children = new Map<string, ChildProcess[]>();

  constructor(private readonly api: ApiClient) {}

  async start(slice: string, count: number): Promise<void> {
    const plan = await this.api.post<SliceProcessPlan>(`/v1/slices/${slice}/exec-plan`, { pid: process.pid });
    const list = this.children.get(slice) ?? [];
    for (let i = 0; i < count; i++) list.push(spawnInSlice(plan, ['/bin/sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
    this.children.set(slice, list);
  }

  async stop(slice: string): Promise<void> {
    const list = this.children.get(slice) ?? [];
    await Promise.all(
      list.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    this.children.delete(slice);
  }

  async stopAll(): Promise<void> {
    for (const slice of [...this.children.keys()]) await this.stop(slice);
  }
}
