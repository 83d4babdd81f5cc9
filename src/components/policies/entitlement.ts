/**
 * entitlement: the node agent's CPU controller as a scheduling policy. Each update on its
 * `usage` port (normally linked to /probes/slice_usage/usage) computes every slice's
 * entitlement and writes the cgroup weights that deliver it, so reservations hold under
 * contention. `mode` static writes plain shares instead (what systemd does); `gain` is the
 * strength of the measured-vs-entitled correction.
 */
import { choiceAttribute, numberAttribute, type PolicyType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const entitlement: PolicyType = {
  kind: 'policy',
  name: 'entitlement',
  description: "computes each slice's CPU entitlement from its usage and demand and writes the cgroup weights that deliver it",
  ports: [{ name: 'usage', valueType: 'slice_usage', description: 'per-slice usage and demand, from /probes/slice_usage/usage' }],
  attributes: [
    choiceAttribute(
      'mode',
      '"entitlement" (reservations enforced) or "static" (weights = shares)',
      ['entitlement', 'static'],
      'entitlement',
    ),
    numberAttribute('gain', 'strength of the feedback correction, 0..1', { default: 0.5, min: 0, max: 1 }),
  ],
  create(ctx) {
    const controller = need(ctx, 'cpuController');
    // Start from the controller's current settings (the daemon's configuration), not the type's defaults.
    ctx.attrs.mode = controller.mode;
    ctx.attrs.gain = controller.gain;
    const configure = (): void =>
      controller.configure({ mode: ctx.attrs.mode as 'entitlement' | 'static', gain: ctx.attrs.gain as number });
    configure();
    return {
      onUpdate(_port, value) {
        controller.act(value);
      },
      configure,
      status: () => ({ mode: controller.mode }),
    };
  },
};

export default entitlement;
