/** least_loaded: places each new task on the node with the lowest load on its node_load port. */
import type { PolicyType } from '../../framework/types.js';
import { nodeLoads } from './nodes.js';

const leastLoaded: PolicyType = {
  kind: 'policy',
  name: 'least_loaded',
  description: 'new-task placement: each new task goes to the node with the lowest load',
  ports: [{ name: 'node_load', valueType: 'load', description: 'node loads (through remote_cache for the other nodes)' }],
  create(ctx) {
    let lastChoice: string | null = null;
    return {
      newTaskNode(task) {
        let best: [string, number] | null = null;
        for (const [node, load] of nodeLoads(ctx.ports!.node_load ?? null, ctx.services.nodeName)) {
          if (task.nodes && !task.nodes.includes(node)) continue;
          if (!best || load < best[1] || (load === best[1] && node < best[0])) best = [node, load];
        }
        if (!best) return null; // it knows the load of none of the task's nodes
        lastChoice = best[0];
        return lastChoice;
      },
      status: () => ({ lastChoice }),
    };
  },
};

export default leastLoaded;
