/**
 * round_robin_balancer (Kerrighed's): each new task goes to the node after the last target in
 * the ring of nodes (after this node the first time). The ring is the task's candidate nodes
 * in name order; a task that names none goes round the nodes its node_load port sees, when it
 * is wired (Kerrighed's node_set: the cluster's nodes, as the simulator wires it). Unwired, a
 * local new task gets no answer, so that the schedulers below decide.
 * Kerrighed's read-only `last_target` attribute is in `status`.
 */
import type { PolicyType } from '../../framework/types.js';
import { NODE_NAMES_PORT, ringOf } from './nodes.js';

/** The node after `after` in the ring `nodes` (sorted), wrapping round. */
export function nextInRing(nodes: readonly string[], after: string): string | undefined {
  return nodes.find((n) => n > after) ?? nodes[0];
}

const roundRobinBalancer: PolicyType = {
  kind: 'policy',
  name: 'round_robin_balancer',
  description: "Kerrighed's round_robin_balancer: each new task goes to the next node in the ring after the last target",
  ports: [NODE_NAMES_PORT],
  create(ctx) {
    let lastTarget: string | null = null;
    return {
      newTaskNode(task) {
        const seen = ctx.ports!.node_load ?? null;
        if (!task.nodes && seen === null) return null;
        const ring = ringOf(task.nodes, seen, ctx.services.nodeName);
        const target = nextInRing(ring, lastTarget ?? ctx.services.nodeName);
        if (target === undefined) return null;
        lastTarget = target;
        return target;
      },
      status: () => ({ last_target: lastTarget }),
    };
  },
};

export default roundRobinBalancer;
