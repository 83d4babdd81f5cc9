/**
 * best_of_two: the power of two choices (Mitzenmacher's supermarket model). Each new task
 * looks at two nodes drawn at random and goes to the less loaded one: nearly the balance of
 * asking every node, for the price of two. As least_loaded, each placement counts
 * `task_load` on its node until the next load update.
 */
import { need } from '../../framework/handle.js';
import type { PolicyType } from '../../framework/types.js';
import { NODE_LOAD_PORT, nodeFigure, nodeIndex, TASK_LOAD_ATTRIBUTE, type NodeIndex } from './nodes.js';

const bestOfTwo: PolicyType = {
  kind: 'policy',
  name: 'best_of_two',
  description: 'new-task placement: of two nodes drawn at random, the less loaded one (and the tasks placed since the last load update)',
  ports: [NODE_LOAD_PORT],
  attributes: [TASK_LOAD_ATTRIBUTE],
  create(ctx) {
    const draw = need(ctx, 'random');
    const placedSinceUpdate = new Map<string, number>();
    let lastChoice: string | null = null;
    return {
      onUpdate() {
        placedSinceUpdate.clear(); // the new loads include what was placed
      },
      newTaskNode(task) {
        const value = ctx.ports!.node_load ?? null;
        if (!value || value.rows === 0) return null; // no loads known yet
        const index: NodeIndex = nodeIndex(value, ctx.services.nodeName);
        // Positions of the candidates in the index: every node, or those of the task's it knows.
        const candidates = task.nodes ? task.nodes.map((n) => index.position.get(n)).filter((i): i is number => i !== undefined) : null;
        const count = candidates ? candidates.length : index.nodes.length;
        if (count === 0) return null; // it knows the load of none of the task's nodes
        const pick = (): number => {
          const k = Math.min(count - 1, Math.floor(draw() * count));
          return candidates ? candidates[k]! : k;
        };
        const taskLoad = ctx.attrs.task_load as number;
        const load = (i: number): number => nodeFigure(value, index, i) + (placedSinceUpdate.get(index.nodes[i]!) ?? 0) * taskLoad;
        const [a, b] = [pick(), pick()];
        const [la, lb] = [load(a), load(b)];
        const [na, nb] = [index.nodes[a]!, index.nodes[b]!];
        lastChoice = la < lb || (la === lb && na <= nb) ? na : nb;
        placedSinceUpdate.set(lastChoice, (placedSinceUpdate.get(lastChoice) ?? 0) + 1);
        return lastChoice;
      },
      status: () => ({ lastChoice }),
    };
  },
};

export default bestOfTwo;
