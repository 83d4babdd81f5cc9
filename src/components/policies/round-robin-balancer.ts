/**
 * round_robin_balancer (Kerrighed's): each new task goes to the node after the last target in
 * the ring of nodes (after this node the first time). The ring is the task's candidate nodes
 * in name order (Kerrighed's was the scheduler's node_set); a local new task (no candidates)
 * gets no answer.
 * Kerrighed's read-only `last_target` attribute is in `status`.
 */
import type { PolicyType } from '../../framework/types.js';

/** The node after `after` in the ring `nodes` (sorted), wrapping round. */
export function nextInRing(nodes: readonly string[], after: string): string | undefined {
  return nodes.find((n) => n > after) ?? nodes[0];
}

const roundRobinBalancer: PolicyType = {
  kind: 'policy',
  name: 'round_robin_balancer',
  description: "Kerrighed's round_robin_balancer: each new task goes to the next node in the ring after the last target",
  ports: [],
  create(ctx) {
    let lastTarget: string | null = null;
    return {
      newTaskNode(task) {
        if (!task.nodes) return null;
        const target = nextInRing([...task.nodes].sort(), lastTarget ?? ctx.services.nodeName);
        if (target === undefined) return null;
        lastTarget = target;
        return target;
      },
      status: () => ({ last_target: lastTarget }),
    };
  },
};

export default roundRobinBalancer;
