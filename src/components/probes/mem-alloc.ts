/** mem_alloc: this node's memory and what it has promised its slices (their memory limits), as a memory value. */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const memAlloc: ProbeType = {
  kind: 'probe',
  name: 'mem_alloc',
  description: "the node's memory: total, not yet promised to slices (available: total minus their memory limits), and the share promised",
  defaultPeriodMs: 1000,
  sources: [{ name: 'memory', valueType: 'memory', description: 'total, available (not promised), used_pct (promised)' }],
  create(ctx) {
    const allocation = need(ctx, 'nodeAllocation');
    return {
      refresh([out]) {
        const { capacityBytes, promisedBytes } = allocation.memory();
        out!.setRows(1);
        out!.set(0, 0, capacityBytes);
        out!.set(0, 1, Math.max(0, capacityBytes - promisedBytes));
        out!.set(0, 2, capacityBytes > 0 ? Math.min(100, (100 * promisedBytes) / capacityBytes) : 0);
      },
    };
  },
};

export default memAlloc;
