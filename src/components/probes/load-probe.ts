/**
 * load_probe (Kerrighed's): the number of runnable tasks of the node now (the kernel's
 * nr_running, from /proc/loadavg, the reading thread left out). Kerrighed's process_jiffies
 * (time since each process last became runnable) has no /proc counterpart and is not offered.
 */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const loadProbe: ProbeType = {
  kind: 'probe',
  name: 'load_probe',
  description: "Kerrighed's load_probe: runnable tasks of the node now",
  defaultPeriodMs: 1000,
  sources: [{ name: 'active_tasks', valueType: 'ulong', description: 'runnable tasks (nr_running), the reader left out' }],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    return {
      refresh([active]) {
        active!.setRows(1);
        active!.set(0, 0, Math.max(0, stats.loadAverage().runnable - 1));
      },
    };
  },
};

export default loadProbe;
