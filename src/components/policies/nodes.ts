/** Helpers for placement policies: which node each row of a (remote_cache'd) load value is about. */
import type { PolicyType, PortSpec } from '../../framework/types.js';
import type { Value } from '../../framework/value.js';

/**
 * Node names and loads from a load value: rows labelled "<node>" or "<node>:<label>" (from
 * remote_cache) are that node's; unlabelled rows are this node's. Loads of one node's rows
 * are summed.
 */
export function nodeLoads(value: Value | null, localNode: string): Map<string, number> {
  if (!value || value.rows === 0) return new Map([[localNode, 0]]);
  return nodeSums(value, localNode, 0);
}

/** Columns `columns` of a value summed per node (rows labelled as nodeLoads reads them); empty for no value. */
export function nodeSums(value: Value | null, localNode: string, columns: number | readonly number[]): Map<string, number> {
  const sums = new Map<string, number>();
  if (!value) return sums;
  const summed = typeof columns === 'number' ? [columns] : columns;
  for (let r = 0; r < value.rows; r++) {
    const label = value.labels[r];
    const node = label === undefined || label === '' || /^cpu\d+$/.test(label) ? localNode : label.split(':')[0]!;
    let figure = sums.get(node) ?? 0;
    for (const c of summed) figure += value.get(r, c);
    sums.set(node, figure);
  }
  return sums;
}

/**
 * The candidate (of the task's nodes, when it names them) with the largest figure, or the
 * smallest; ties by name. Null when no candidate's figure is known.
 */
export function bestOf(
  figures: ReadonlyMap<string, number>,
  nodes: readonly string[] | undefined,
  prefer: 'largest' | 'smallest',
): string | null {
  const sign = prefer === 'largest' ? 1 : -1;
  let best: [string, number] | null = null;
  for (const [node, figure] of figures) {
    if (nodes && !nodes.includes(node)) continue;
    if (!best || sign * figure > sign * best[1] || (figure === best[1] && node < best[0])) best = [node, figure];
  }
  return best?.[0] ?? null;
}

/**
 * A placement policy that sends each new task to the node with the largest (or smallest)
 * figure on its one port: the sum of `columns` of that node's rows.
 */
export function figurePolicy(spec: {
  name: string;
  description: string;
  port: PortSpec;
  columns: readonly number[];
  prefer: 'largest' | 'smallest';
}): PolicyType {
  return {
    kind: 'policy',
    name: spec.name,
    description: spec.description,
    ports: [spec.port],
    create(ctx) {
      let lastChoice: string | null = null;
      return {
        newTaskNode(task) {
          const figures = nodeSums(ctx.ports![spec.port.name] ?? null, ctx.services.nodeName, spec.columns);
          const choice = bestOf(figures, task.nodes, spec.prefer);
          if (choice !== null) lastChoice = choice;
          return choice;
        },
        status: () => ({ lastChoice }),
      };
    },
  };
}
