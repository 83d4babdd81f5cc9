/** process_load: CPU load of the busiest processes of the node, in millicores, rows by pid. */
import type { ProbeType } from '../../framework/types.js';
import type { Value } from '../../framework/value.js';
import { numberAttribute } from '../../framework/types.js';
import { need, type NodeStats } from '../../framework/handle.js';

/** Keeps the previous CPU times to turn them into loads; shared with the cpu probe. */
export class ProcessLoadSampler {
  private previous = new Map<number, number>();
  private previousAt = 0;

  constructor(private readonly stats: NodeStats) {}

  /** Fill `out` with the busiest processes' loads: `perCpu` for one CPU kept busy (1000: millicores; Kerrighed's HZ: 100). */
  sample(out: Value, now: number, top = 64, perCpu = 1000): void {
    const current = new Map<number, number>();
    const loads: Array<[number, number]> = [];
    const seconds = (now - this.previousAt) / 1000;
    for (const p of this.stats.processTimes()) {
      current.set(p.pid, p.cpuNs);
      const before = this.previous.get(p.pid);
      if (before !== undefined && seconds > 0) {
        const load = ((p.cpuNs - before) / 1e9 / seconds) * perCpu;
        if (load > 0) loads.push([p.pid, Math.round(load)]);
      }
    }
    loads.sort((a, b) => b[1] - a[1]);
    const shown = loads.slice(0, top);
    out.setRows(
      shown.length,
      shown.map(([pid]) => String(pid)),
    );
    shown.forEach(([, load], i) => out.set(i, 0, load));
    this.previous = current;
    this.previousAt = now;
  }
}

const processLoad: ProbeType = {
  kind: 'probe',
  name: 'process_load',
  description: 'CPU load of the busiest processes, in millicores (rows by pid)',
  defaultPeriodMs: 1000,
  attributes: [numberAttribute('top', 'how many of the busiest processes to report', { default: 64, min: 1, max: 4096, integer: true })],
  sources: [
    {
      name: 'process_load',
      valueType: 'process_load',
      description: 'CPU time used per second by each of the busiest processes, in millicores',
    },
  ],
  create(ctx) {
    const sampler = new ProcessLoadSampler(need(ctx, 'nodeStats'));
    return {
      refresh([out], now) {
        sampler.sample(out!, now, ctx.attrs.top as number);
      },
    };
  },
};

export default processLoad;
