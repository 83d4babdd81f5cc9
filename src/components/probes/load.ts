/** load: the kernel's load averages and the number of runnable tasks (/proc/loadavg). */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const load: ProbeType = {
  kind: 'probe',
  name: 'load',
  description: 'load averages over 1, 5 and 15 minutes and runnable tasks (/proc/loadavg)',
  defaultPeriodMs: 1000,
  sources: [{ name: 'loadavg', valueType: 'loadavg', description: 'load1 load5 load15 runnable' }],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    return {
      refresh([out]) {
        const l = stats.loadAverage();
        out!.setRows(1);
        out!.set(0, 0, l.load1);
        out!.set(0, 1, l.load5);
        out!.set(0, 2, l.load15);
        out!.set(0, 3, l.runnable);
      },
    };
  },
};

export default load;
