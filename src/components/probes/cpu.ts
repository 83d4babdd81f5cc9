/**
 * cpu: CPU load of the node (`node_load`, one row, millicores busy), of each CPU
 * (`cpu_load`, rows cpu0..), and of the busiest processes (`process_load`, rows by pid).
 */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';
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
    let last: number[] | null = null;
    let lastAt = 0;
    let labels: string[] = [];
    const processes = new ProcessLoadSampler(stats);
    return {
      refresh([node, perCpu, perProcess], now) {
        const busy = stats.cpuBusyNs();
        if (labels.length !== busy.length) labels = busy.map((_, i) => `cpu${i}`);
        perCpu!.setRows(busy.length, labels);
        node!.setRows(1);
        let total = 0;
        for (let i = 0; i < busy.length; i++) {
          const mc = last && now > lastAt ? ((busy[i]! - (last[i] ?? busy[i]!)) / ((now - lastAt) * 1e6)) * 1000 : 0;
          perCpu!.set(i, 0, Math.max(0, Math.round(mc)));
          total += Math.max(0, mc);
        }
        node!.set(0, 0, Math.round(total));
        last = busy;
        lastAt = now;
        processes.sample(perProcess!, now);
      },
    };
  },
};

export default cpu;
