/**
 * psi: pressure stall information (avg10 of "some" and "full", percent) for CPU, memory and
 * I/O. On a kernel without PSI the sources stay empty and `available` reads 0.
 */
import type { ProbeType } from '../../framework/types.js';
import { readPressure, type PressureResource } from '../../kernel/node-stats.js';

const RESOURCES: PressureResource[] = ['cpu', 'memory', 'io'];

const psi: ProbeType = {
  kind: 'probe',
  name: 'psi',
  description: 'pressure stall information: share of time tasks waited for CPU, memory or I/O (avg10, percent)',
  defaultPeriodMs: 1000,
  sources: RESOURCES.map((r) => ({ name: r, valueType: 'pressure', description: `${r} pressure: some_avg10 full_avg10 (percent)` })),
  create() {
    return {
      refresh(outputs) {
        RESOURCES.forEach((resource, i) => {
          const p = readPressure(resource);
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
