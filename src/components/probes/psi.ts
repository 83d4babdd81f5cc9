/**
 * psi: pressure stall information (avg10 of "some" and "full", percent) for CPU, memory and
 * I/O of the node, and per slice from the slices' cgroup2 pressure files (source `slices`).
 * On a kernel without PSI the sources stay empty.
 */
import type { ProbeType } from '../../framework/types.js';
import { need, type PressureResource } from '../../framework/handle.js';
import { fillRows, sliceGroupsOf } from './slice-groups.js';

const RESOURCES: PressureResource[] = ['cpu', 'memory', 'io'];

const psi: ProbeType = {
  kind: 'probe',
  name: 'psi',
  description: 'pressure stall information: share of time tasks waited for CPU, memory or I/O (avg10, percent)',
  defaultPeriodMs: 1000,
  sources: [
    ...RESOURCES.map((r) => ({ name: r, valueType: 'pressure', description: `${r} pressure: some_avg10 full_avg10 (percent)` })),
    {
      name: 'slices',
      valueType: 'slice_pressure',
      description: 'rows slice/<name>: cpu_some memory_some memory_full io_some io_full (avg10, percent)',
    },
  ],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    const slices = sliceGroupsOf(ctx);
    return {
      refresh(outputs) {
        fillRows(outputs[RESOURCES.length]!, slices, (group, row) => {
          const out = outputs[RESOURCES.length]!;
          const cpu = slices!.readPressure(group, 'cpu');
          const memory = slices!.readPressure(group, 'memory');
          const io = slices!.readPressure(group, 'io');
          out.set(row, 0, cpu?.some ?? 0);
          out.set(row, 1, memory?.some ?? 0);
          out.set(row, 2, memory?.full ?? 0);
          out.set(row, 3, io?.some ?? 0);
          out.set(row, 4, io?.full ?? 0);
        });
        RESOURCES.forEach((resource, i) => {
          const p = stats.pressure(resource);
          const out = outputs[i]!;
          if (!p) {
            out.setRows(0);
            return;
          }
          out.setRows(1);
          out.set(0, 0, p.some);
          out.set(0, 1, p.full);
        });
      },
    };
  },
};

export default psi;
