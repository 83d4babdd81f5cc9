/**
 * slices_load: the CPU load of this node's slices together, in millicores (their groups'
 * CPU time per second), one row: the node's load as its tenants make it. Unlike cpu's
 * node_load it leaves out what runs outside the slices, and nodes that share one kernel
 * (agents on one machine) each see their own.
 */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const ALL_SLICES: readonly string[] = [];

const slicesLoad: ProbeType = {
  kind: 'probe',
  name: 'slices_load',
  description: "CPU load of this node's slices together, in millicores",
  defaultPeriodMs: 1000,
  sources: [{ name: 'node_load', valueType: 'load', description: "CPU time used per second by this node's slices, in millicores" }],
  create(ctx) {
    const groups = need(ctx, 'sliceGroups');
    let last: { ns: number; at: number } | null = null;
    return {
      refresh([out], now) {
        const ns = groups.readCpuNs(ALL_SLICES);
        out!.setRows(1);
        out!.set(0, 0, last && now > last.at ? Math.max(0, Math.round(((ns - last.ns) / ((now - last.at) * 1e6)) * 1000)) : 0);
        last = { ns, at: now };
      },
    };
  },
};

export default slicesLoad;
