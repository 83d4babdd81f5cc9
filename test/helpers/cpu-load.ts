/**
 * CPU load for tests and benchmarks: busy-loop burners started inside slices through the
 * same path as `slicectl exec`, and each slice's CPU use read straight from the kernel's
 * counters (never from the daemon's own estimates).
 */
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { spawnInSlice, type SliceProcessPlan } from '../../src/kernel/spawn.js';
import type { ApiClient } from '../../src/cli/client.js';
import { KernelGroups, parseCpuUsage } from './cgroups.js';

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

export interface UsageSample {
  /** performance.now() when read. */
  t: number;
  /** Cumulative CPU nanoseconds per slice. */
  u: Map<string, number>;
}

/** Reads each slice's cumulative CPU time from the kernel (cpuacct.usage on v1, cpu.stat on v2). */
export class CpuUsageReader {
  private readonly paths = new Map<string, string>();

  constructor(private readonly api: ApiClient) {}

  async resolve(slices: string[]): Promise<void> {
    const groups = await KernelGroups.of(this.api);
    for (const name of slices) {
      const view = await this.api.get<{ cgroup: string }>(`/v1/slices/${name}`);
      this.paths.set(name, groups.cpuUsageFile(view.cgroup));
    }
  }

  read(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, path] of this.paths) out.set(name, parseCpuUsage(path, readFileSync(path, 'utf8')));
    return out;
  }

  sample(): UsageSample {
    return { t: performance.now(), u: this.read() };
  }
}

/** Percentage of the node (of capacityMillicores) used by each slice between two samples. */
export function nodeShares(from: UsageSample, to: UsageSample, capacityMillicores: number): Map<string, number> {
  const seconds = (to.t - from.t) / 1000;
  const out = new Map<string, number>();
  for (const [name, ns] of to.u) out.set(name, ((ns - (from.u.get(name) ?? 0)) / 1e9 / seconds / (capacityMillicores / 1000)) * 100);
  return out;
}
