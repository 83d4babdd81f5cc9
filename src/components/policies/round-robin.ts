/** round_robin: places new tasks on the known nodes in turn (nodes seen on the node_load port, this one when alone). */
import type { PolicyType } from '../../framework/types.js';
import { NODE_NAMES_PORT, ringOf } from './nodes.js';

const roundRobin: PolicyType = {
  kind: 'policy',
  name: 'round_robin',
  description: 'new-task placement: each new task goes to the next node in turn',
  ports: [NODE_NAMES_PORT],
  create(ctx) {
    let next = 0;
    let placed = 0;
    return {
      newTaskNode(task) {
        // A cluster task names its nodes; the turn goes round those.
        const nodes = ringOf(task.nodes, ctx.ports!.node_load ?? null, ctx.services.nodeName);
        if (nodes.length === 0) return null;
        const node = nodes[next % nodes.length]!;
        next = (next + 1) % nodes.length;
        placed++;
        return node;
      },
      status: () => ({ placed }),
    };
  },
};

export default roundRobin;
