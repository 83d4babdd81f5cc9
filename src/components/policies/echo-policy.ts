/**
 * echo_policy: logs every update it receives, as on the Kerrighed slides. Its ports have
 * the shapes of a load balancer's (node_load, process_load), so it can stand in for one.
 */
import type { PolicyType } from '../../framework/types.js';

const echoPolicy: PolicyType = {
  kind: 'policy',
  name: 'echo_policy',
  description: 'logs every value its ports receive (a toy policy for trying the framework)',
  ports: [
    { name: 'node_load', valueType: 'load', description: 'any load value, e.g. /probes/cpu/node_load' },
    { name: 'process_load', valueType: 'process_load', description: 'per-process loads, e.g. /probes/cpu/process_load' },
  ],
  create(ctx) {
    const last: Record<string, string> = {};
    return {
      onUpdate(port, value) {
        const name = port === 0 ? 'node_load' : 'process_load';
        const text = value.format().trim().replace(/\n/g, ', ');
        last[name] = text;
        ctx.log.info({ policy: ctx.path, port: name, value: text }, 'echo_policy: update');
      },
      status: () => ({ last }),
    };
  },
};

export default echoPolicy;
