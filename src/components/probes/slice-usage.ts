/**
 * slice_usage: CPU used and demanded by every slice and domain, measured by the node
 * agent's controller (cpuacct/cpu.stat and the runnable-waiting time of the slices'
 * threads). Its probe_period is the control period; the entitlement policy acts on it.
 */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const sliceUsage: ProbeType = {
  kind: 'probe',
  name: 'slice_usage',
  description: "per slice and domain: CPU used and estimated demand in millicores (the control loop's measurement)",
  defaultPeriodMs: 1000,
  // The entitlement policy must run every period even when nothing changed: weights are
  // rewritten only when they change, but the feedback correction needs every sample.
  notifyUnchanged: true,
  sources: [
    { name: 'usage', valueType: 'slice_usage', description: 'rows slice/<name>, domain/<name> and system: usage demand (millicores)' },
  ],
  create(ctx) {
    const controller = need(ctx, 'cpuController');
    return {
      refresh([out]) {
        controller.sample(out!);
      },
    };
  },
};

export default sliceUsage;
