/**
 * least_loaded: places each new task on the node with the lowest load on its node_load port.
 * Loads arrive once a period; tasks placed in between would all go to the same node (a herd).
 * So each placement counts `task_load` on its node until the next load update arrives.
 * Between updates the nodes are kept in a heap by load (nodes.ts), so a decision does not read
 * every node.
 */
import type { PolicyType } from '../../framework/types.js';
import { LeastLoadedHeap, NODE_LOAD_PORT, nodeFigure, nodeIndex, TASK_LOAD_ATTRIBUTE, type NodeIndex } from './nodes.js';

const leastLoaded: PolicyType = {
  kind: 'policy',
  name: 'least_loaded',
  description: 'new-task placement: each new task goes to the node with the lowest load (and the tasks placed since the last load update)',
  ports: [NODE_LOAD_PORT],
  attributes: [TASK_LOAD_ATTRIBUTE],
  create(ctx) {
    let lastChoice: string | null = null;
    const placedSinceUpdate = new Map<string, number>();
    // Between two load updates, every node's load in a heap: a decision among thousands of
    // nodes without reading them all (made at the first decision after an update).
    let heap: LeastLoadedHeap | null = null;
    const placed = (node: string, index: NodeIndex | null, taskLoad: number): string => {
      lastChoice = node;
      placedSinceUpdate.set(node, (placedSinceUpdate.get(node) ?? 0) + 1);
      const i = index?.position.get(node);
      if (heap && i !== undefined) heap.add(i, taskLoad);
      return node;
    };
    return {
      onUpdate() {
        placedSinceUpdate.clear(); // the new loads include what was placed
        heap = null;
      },
      newTaskNode(task) {
        const taskLoad = ctx.attrs.task_load as number;
        const value = ctx.ports!.node_load ?? null;
        const local = ctx.services.nodeName;
        const index = value && value.rows > 0 ? nodeIndex(value, local) : null;
        if (index && !task.nodes) {
          heap ??= new LeastLoadedHeap(value!, index, (node) => (placedSinceUpdate.get(node) ?? 0) * taskLoad);
          return placed(index.nodes[heap.least()]!, index, taskLoad);
        }
        // A task that may go only to some nodes: one pass over those.
        const allowed = task.nodes ? new Set(task.nodes) : null;
        let best: string | null = null;
        let bestLoad = Infinity;
        const count = index ? index.nodes.length : 1;
        for (let i = 0; i < count; i++) {
          const node = index ? index.nodes[i]! : local;
          if (allowed && !allowed.has(node)) continue;
          const load = (index ? nodeFigure(value!, index, i) : 0) + (placedSinceUpdate.get(node) ?? 0) * taskLoad;
          if (best === null || load < bestLoad || (load === bestLoad && node < best)) {
            best = node;
            bestLoad = load;
          }
        }
        if (best === null) return null; // it knows the load of none of the task's nodes
        return placed(best, index, taskLoad);
      },
      status: () => ({ lastChoice, placedSinceUpdate: Object.fromEntries(placedSinceUpdate) }),
    };
  },
};

export default leastLoaded;
