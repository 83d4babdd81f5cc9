/**
 * least_loaded: places each new task on the node with the lowest load on its node_load port.
 * Loads arrive once a period; tasks placed in between would all go to the same node (a herd).
 * So each placement counts `task_load` on its node until the next load update arrives.
 */
import { numberAttribute, type PolicyType } from '../../framework/types.js';
import { nodeLoads } from './nodes.js';

const leastLoaded: PolicyType = {
  kind: 'policy',
  name: 'least_loaded',
  description: 'new-task placement: each new task goes to the node with the lowest load (and the tasks placed since the last load update)',
  ports: [{ name: 'node_load', valueType: 'load', description: 'node loads (through remote_cache for the other nodes)' }],
  attributes: [
    numberAttribute('task_load', 'millicores a placed task counts on its node until the next load update (0: none)', {
      default: 1000,
      min: 0,
      max: 1_000_000,
    }),
  ],
  create(ctx) {
    let lastChoice: string | null = null;
    const placedSinceUpdate = new Map<string, number>();
    return {
      onUpdate() {
        placedSinceUpdate.clear(); // the new loads include what was placed
      },
      newTaskNode(task) {
        const taskLoad = ctx.attrs.task_load as number;
        let best: [string, number] | null = null;
        for (const [node, measured] of nodeLoads(ctx.ports!.node_load ?? null, ctx.services.nodeName)) {
          if (task.nodes && !task.nodes.includes(node)) continue;
          const load = measured + (placedSinceUpdate.get(node) ?? 0) * taskLoad;
          if (!best || load < best[1] || (load === best[1] && node < best[0])) best = [node, load];
        }
        if (!best) return null; // it knows the load of none of the task's nodes
        lastChoice = best[0];
        placedSinceUpdate.set(lastChoice, (placedSinceUpdate.get(lastChoice) ?? 0) + 1);
        return lastChoice;
      },
      status: () => ({ lastChoice, placedSinceUpdate: Object.fromEntries(placedSinceUpdate) }),
    };
  },
};

export default leastLoaded;
