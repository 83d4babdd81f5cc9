/**
 * mosix_probe (Kerrighed's): the node's load as MOSIX measures it, HZ (100) per runnable task
 * on average over each period, smoothed two ways (mean_load rises slowly and drops at once,
 * upper_load rises at once and decays), the load one process adds (single_process_load, HZ),
 * the same normalised by CPU speed (all nodes count as the same speed, as Kerrighed's did
 * without cpuspeed figures), and each process's load. Kerrighed summed the kernel's count of
 * runnable tasks at every tick and published once a second; here /proc/loadavg's count is
 * sampled at every refresh (probe_period, 100 ms by default) and published once a second.
 */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';
import { nextMosixLoads, type MosixLoads } from '../../core/load-balancing.js';
import { ProcessLoadSampler } from './process-load.js';

/** Kerrighed's unit of load: one runnable task all the time is HZ. */
const HZ = 100;
/** The loads are published once per window, as Kerrighed's every second. */
const WINDOW_MS = 1000;

const mosixProbe: ProbeType = {
  kind: 'probe',
  name: 'mosix_probe',
  description: "Kerrighed's mosix_probe: the node's load (100 per runnable task), smoothed, and the load of one process and of each",
  defaultPeriodMs: 100,
  sources: [
    { name: 'mean_load', valueType: 'ulong', description: 'load, rising slowly and dropping at once (100 per runnable task)' },
    { name: 'upper_load', valueType: 'ulong', description: 'load, rising at once and decaying slowly' },
    { name: 'single_process_load', valueType: 'ulong', description: 'the load one process adds: 100' },
    { name: 'norm_mean_load', valueType: 'ulong', description: 'mean_load normalised by CPU speed (the same here)' },
    { name: 'norm_upper_load', valueType: 'ulong', description: 'upper_load normalised by CPU speed (the same here)' },
    { name: 'norm_single_process_load', valueType: 'ulong', description: 'single_process_load normalised by CPU speed (the same here)' },
    {
      name: 'process_load',
      valueType: 'ulong_by_pid',
      description: 'CPU load of the busiest processes, 100 per CPU kept busy (rows by pid)',
    },
  ],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    const processes = new ProcessLoadSampler(stats);
    let runnableSum = 0;
    let samples = 0;
    let windowStart: number | null = null;
    let loads: MosixLoads | null = null;
    return {
      refresh([mean, upper, single, normMean, normUpper, normSingle, perProcess], now) {
        // The reading thread is one of the runnable tasks it counts.
        runnableSum += Math.max(0, stats.loadAverage().runnable - 1);
        samples++;
        windowStart ??= now;
        // Until the window is over the outputs keep what they last published (nothing is sent).
        if (loads !== null && now - windowStart < WINDOW_MS) return;
        loads = nextMosixLoads(loads, (HZ * runnableSum) / samples);
        runnableSum = 0;
        samples = 0;
        windowStart = now;
        for (const [out, figure] of [
          [mean, loads.mean],
          [upper, loads.upper],
          [single, HZ],
          [normMean, loads.mean],
          [normUpper, loads.upper],
          [normSingle, HZ],
        ] as const) {
          out!.setRows(1);
          out!.set(0, 0, Math.round(figure));
        }
        processes.sample(perProcess!, now, 64, HZ);
      },
    };
  },
};

export default mosixProbe;
