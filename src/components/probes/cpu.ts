/**
 * cpu: CPU load of the node (`node_load`, one row, millicores busy), of each CPU
 * (`cpu_load`, rows cpu0..), and of the busiest processes (`process_load`, rows by pid).
 */
import type { ProbeType } from '../../framework/types.js';
import { need, type NodeStats } from '../../framework/handle.js';
import { ProcessLoadSampler } from './process-load.js';

const cpu: ProbeType = {
  kind: 'probe',
  name: 'cpu',
  description: 'CPU load in millicores: the whole node, each CPU, and the busiest processes',
  defaultPeriodMs: 1000,
  sources: [
    { name: 'node_load', valueType: 'load', description: 'CPU time used per second by the whole node, in millicores' },
    { name: 'cpu_load', valueType: 'load', description: 'CPU time used per second on each CPU, in millicores (rows cpu0, cpu1, ...)' },
    {
      name: 'process_load',
      valueType: 'process_load',
      description: 'CPU time used per second by the busiest processes, in millicores (rows by pid)',
    },
  ],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    const cpus = new CpuBusySampler(stats);
    const processes = new ProcessLoadSampler(stats);
    return {
      refresh([node, perCpu, perProcess], now) {
        const busy = cpus.sample(now);
        perCpu!.setRows(busy.shares.length, busy.labels);
        node!.setRows(1);
        let total = 0;
        for (let i = 0; i < busy.shares.length; i++) {
          const mc = (busy.shares[i] ?? 0) * 1000;
          perCpu!.set(i, 0, Math.round(mc));
          total += mc;
        }
        node!.set(0, 0, Math.round(total));
        processes.sample(perProcess!, now);
      },
    };
  },
};

/** Keeps the previous busy times of the CPUs to turn them into shares; shared with cpu_probe. */
export class CpuBusySampler {
  private last: number[] | null = null;
  private lastAt = 0;
  private labels: string[] = [];

  constructor(private readonly stats: NodeStats) {}

  /**
   * How busy each CPU was since the last sample (1: all the time), labelled cpu0, cpu1, ...;
   * every share 0 at the first sample, which only primes (`primed` false).
   */
  sample(now: number): { shares: number[]; labels: readonly string[]; primed: boolean } {
    const busy = this.stats.cpuBusyNs();
    if (this.labels.length !== busy.length) this.labels = busy.map((_, i) => `cpu${i}`);
    const last = this.last;
    const primed = last !== null && now > this.lastAt;
    const elapsedNs = (now - this.lastAt) * 1e6;
    const shares = busy.map((ns, i) => (primed ? Math.max(0, (ns - (last[i] ?? ns)) / elapsedNs) : 0));
    this.last = busy;
    this.lastAt = now;
    return { shares, labels: this.labels, primed };
  }

  /** Forget the previous sample: the next one only primes. */
  reset(): void {
    this.last = null;
  }
}

export default cpu;
