/**
 * memory_affinity (the Kerrighed slides' "memory affinity"): a new task goes to the node with
 * the most memory available on its node_memory port: what the node has not promised its slices
 * (mem_alloc), or what the kernel says is free (mem), through remote_cache for the others.
 */
import type { PolicyType } from '../../framework/types.js';
import { largestOf, nodeSums } from './nodes.js';

const AVAILABLE = 1;

const memoryAffinity: PolicyType = {
  kind: 'policy',
  name: 'memory_affinity',
  description: 'new-task placement: each new task goes to the node with the most available memory',
  ports: [
    {
      name: 'node_memory',
      valueType: 'memory',
      description: 'memory of the nodes: /probes/mem_alloc/memory or /probes/mem/memory, through remote_cache',
    },
  ],
  create(ctx) {
    let lastChoice: string | null = null;
    return {
      newTaskNode(task) {
        const choice = largestOf(nodeSums(ctx.ports!.node_memory ?? null, ctx.services.nodeName, AVAILABLE), task.nodes);
        if (choice !== null) lastChoice = choice;
        return choice;
      },
      status: () => ({ lastChoice }),
    };
  },
};

export default memoryAffinity;
