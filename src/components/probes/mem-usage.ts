/**
 * mem_usage: memory of every slice: bytes charged now, the limit (0 when none) and the
 * number of its processes the OOM killer has killed since its group was made.
 */
import type { ProbeType } from '../../framework/types.js';
import { fillRows, sliceGroupsOf } from './slice-groups.js';

const memUsage: ProbeType = {
  kind: 'probe',
  name: 'mem_usage',
  description: 'per slice (rows slice/<name>): memory charged, memory limit (0 = none) and OOM kills',
  defaultPeriodMs: 1000,
  sources: [{ name: 'memory', valueType: 'mem_usage', description: 'rows slice/<name>: bytes limit oom_kills' }],
  create(ctx) {
    const slices = sliceGroupsOf(ctx);
    return {
      refresh([out]) {
        fillRows(out!, slices, (group, row) => {
          const memory = slices!.readMemory(group);
          out!.set(row, 0, memory.currentBytes);
          out!.set(row, 1, memory.limitBytes ?? 0);
          out!.set(row, 2, memory.oomKills ?? 0);
        });
      },
    };
  },
};

export default memUsage;
