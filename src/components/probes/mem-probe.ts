/**
 * mem_probe (Kerrighed's): free and total RAM of the node in KB, and the resident memory of
 * the largest processes in KB (task_rss, rows by pid).
 */
import { numberAttribute, type ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const KB = 1024;

const memProbe: ProbeType = {
  kind: 'probe',
  name: 'mem_probe',
  description: "Kerrighed's mem_probe: free and total RAM (KB), resident memory of the largest processes (KB)",
  defaultPeriodMs: 1000,
  attributes: [
    numberAttribute('top', 'how many of the largest processes task_rss reports', { default: 64, min: 1, max: 4096, integer: true }),
  ],
  sources: [
    { name: 'ram_free', valueType: 'ulong', description: 'free memory, KB (MemFree)' },
    { name: 'ram_total', valueType: 'ulong', description: 'all memory, KB (MemTotal)' },
    { name: 'task_rss', valueType: 'ulong_by_pid', description: 'resident memory of the largest processes, KB (rows by pid)' },
  ],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    return {
      refresh([free, total, rss]) {
        const memory = stats.memoryInfo();
        free!.setRows(1);
        free!.set(0, 0, Math.floor(memory.freeBytes / KB));
        total!.setRows(1);
        total!.set(0, 0, Math.floor(memory.totalBytes / KB));
        const largest = [...stats.processRss()].sort((a, b) => b.rssBytes - a.rssBytes || a.pid - b.pid).slice(0, ctx.attrs.top as number);
        rss!.setRows(
          largest.length,
          largest.map((p) => String(p.pid)),
        );
        largest.forEach((p, i) => rss!.set(i, 0, Math.floor(p.rssBytes / KB)));
      },
    };
  },
};

export default memProbe;
