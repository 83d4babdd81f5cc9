/** random: places each new task on a node drawn uniformly from the known ones (the task's nodes when it names them). */
import { need } from '../../framework/handle.js';
import type { PolicyType } from '../../framework/types.js';
import { NODE_NAMES_PORT, nodeNames } from './nodes.js';

const random: PolicyType = {
  kind: 'policy',
  name: 'random',
  description: 'new-task placement: each new task goes to a node drawn at random (uniformly)',
  ports: [NODE_NAMES_PORT],
  create(ctx) {
    const draw = need(ctx, 'random');
    let placed = 0;
    return {
      newTaskNode(task) {
        const nodes = task.nodes ?? nodeNames(ctx.ports!.node_load ?? null, ctx.services.nodeName);
        if (nodes.length === 0) return null;
        placed++;
        return nodes[Math.min(nodes.length - 1, Math.floor(draw() * nodes.length))]!;
      },
      status: () => ({ placed }),
    };
  },
};

export default random;
