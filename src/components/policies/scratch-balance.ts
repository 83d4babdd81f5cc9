/**
 * scratch_balance (the Kerrighed slides' "scratch space balancing"): a new task goes to the
 * node with the most free space under its scratch folder (fs_space, through remote_cache).
 */
import type { PolicyType } from '../../framework/types.js';
import { largestOf, nodeSums } from './nodes.js';

const FREE = 0;

const scratchBalance: PolicyType = {
  kind: 'policy',
  name: 'scratch_balance',
  description: 'new-task placement: each new task goes to the node with the most free scratch space',
  ports: [
    { name: 'node_space', valueType: 'space', description: 'scratch space of the nodes: /probes/fs_space/space, through remote_cache' },
  ],
  create(ctx) {
    let lastChoice: string | null = null;
    return {
      newTaskNode(task) {
        const choice = largestOf(nodeSums(ctx.ports!.node_space ?? null, ctx.services.nodeName, FREE), task.nodes);
        if (choice !== null) lastChoice = choice;
        return choice;
      },
      status: () => ({ lastChoice }),
    };
  },
};

export default scratchBalance;
