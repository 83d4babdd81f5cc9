/** mem: memory of the node (/proc/meminfo): total, available and the percentage in use. */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const mem: ProbeType = {
  kind: 'probe',
  name: 'mem',
  description: 'node memory: total and available bytes, percentage used',
  defaultPeriodMs: 1000,
  sources: [{ name: 'memory', valueType: 'memory', description: 'total available used_pct' }],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    return {
      refresh([out]) {
        const m = stats.memoryInfo();
        out!.setRows(1);
        out!.set(0, 0, m.totalBytes);
        out!.set(0, 1, m.availableBytes);
        out!.set(0, 2, m.totalBytes > 0 ? Math.round(((m.totalBytes - m.availableBytes) / m.totalBytes) * 1000) / 10 : 0);
      },
    };
  },
};

export default mem;
