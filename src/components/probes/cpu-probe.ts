/**
 * cpu_probe (Kerrighed's): how busy each CPU was over the last period, in percent (rows cpuN).
 * As in Kerrighed it measures and publishes only while `active` is 1 (0 by default).
 */
import { numberAttribute, type ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';
import { CpuBusySampler } from './cpu.js';

const cpuProbe: ProbeType = {
  kind: 'probe',
  name: 'cpu_probe',
  description: "Kerrighed's cpu_probe: percent busy of each CPU over the last period, while `active` is 1",
  defaultPeriodMs: 1000,
  attributes: [
    numberAttribute('active', '1: measure and publish; 0 (the default): stay silent', { default: 0, min: 0, max: 1, integer: true }),
  ],
  sources: [{ name: 'cpu_usage', valueType: 'ulong', description: 'percent busy over the last period (rows cpu0, cpu1, ...)' }],
  create(ctx) {
    const cpus = new CpuBusySampler(need(ctx, 'nodeStats'));
    return {
      refresh([usage], now) {
        if (ctx.attrs.active !== 1) {
          cpus.reset(); // the next active period starts afresh
          return; // the output keeps what it last published: nothing new is sent
        }
        const busy = cpus.sample(now);
        if (!busy.primed) return;
        usage!.setRows(busy.shares.length, busy.labels);
        busy.shares.forEach((share, i) => usage!.set(i, 0, Math.min(100, Math.round(share * 100))));
      },
    };
  },
};

export default cpuProbe;
