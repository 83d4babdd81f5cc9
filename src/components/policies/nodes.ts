/** Helpers for placement policies: which node each row of a (remote_cache'd) load value is about. */
import { numberAttribute, type PolicyType, type PortSpec } from '../../framework/types.js';
import type { Value } from '../../framework/value.js';

/** The port of the placement policies that weigh nodes by load. */
export const NODE_LOAD_PORT: PortSpec = {
  name: 'node_load',
  valueType: 'load',
  description: 'node loads (through remote_cache for the other nodes)',
};

/** The same port, for the placement policies that use only the node names it lists. */
export const NODE_NAMES_PORT: PortSpec = {
  ...NODE_LOAD_PORT,
  description: 'node loads (through remote_cache for the other nodes); only the node names are used',
};

/** What a placed task counts on its node until the loads are updated (against herds between updates). */
export const TASK_LOAD_ATTRIBUTE = numberAttribute(
  'task_load',
  'millicores a placed task counts on its node until the next load update (0: none)',
  {
    default: 1000,
    min: 0,
    max: 1_000_000,
  },
);

/**
 * The nodes of a value's rows, and the rows of each node (rows of node i are
 * rows[first[i]] .. rows[first[i + 1] - 1]). A value's labels are replaced as a whole when its
 * rows change, so the index is kept per labels array and reused for every update of the same
 * rows: a decision among thousands of nodes reads their loads without building anything.
 */
export interface NodeIndex {
  nodes: readonly string[];
  /** Position of each node in `nodes`. */
  position: ReadonlyMap<string, number>;
  first: Int32Array;
  rows: Int32Array;
}

const indexes = new WeakMap<readonly string[], { localNode: string; index: NodeIndex }>();

/** Rows labelled "<node>" or "<node>:<label>" (from remote_cache) are that node's; unlabelled rows and CPUs' are this node's. */
function nodeOfLabel(label: string | undefined, localNode: string): string {
  return label === undefined || label === '' || /^cpu\d+$/.test(label) ? localNode : label.split(':')[0]!;
}

export function nodeIndex(value: Value, localNode: string): NodeIndex {
  const labelled = value.labels.length >= value.rows && value.rows > 0;
  const cached = labelled ? indexes.get(value.labels) : undefined;
  if (cached && cached.localNode === localNode) return cached.index;
  const byNode = new Map<string, number[]>();
  for (let r = 0; r < value.rows; r++) {
    const node = nodeOfLabel(value.labels[r], localNode);
    const rows = byNode.get(node);
    if (rows) rows.push(r);
    else byNode.set(node, [r]);
  }
  const nodes = [...byNode.keys()];
  const first = new Int32Array(nodes.length + 1);
  const rows = new Int32Array(value.rows);
  let at = 0;
  nodes.forEach((node, i) => {
    first[i] = at;
    for (const r of byNode.get(node)!) rows[at++] = r;
  });
  first[nodes.length] = at;
  const index: NodeIndex = { nodes, position: new Map(nodes.map((n, i) => [n, i])), first, rows };
  if (labelled) indexes.set(value.labels, { localNode, index });
  return index;
}

/** Column `column` of node i's rows, summed (read live from the value's cells). */
export function nodeFigure(value: Value, index: NodeIndex, i: number, column = 0): number {
  let sum = 0;
  for (let k = index.first[i]!; k < index.first[i + 1]!; k++) sum += value.data[index.rows[k]! * value.width + column]!;
  return sum;
}

/**
 * The nodes of a load value in a binary heap by load, ties by name: the least loaded one at
 * once and a placement counted in O(log n), where a scan reads every node for every
 * decision (thousands of nodes: bench:simulate). Built from the value's cells as they are, plus
 * what `extra` adds; valid until the value's next update (a policy drops it in onUpdate).
 */
export class LeastLoadedHeap {
  private readonly heap: Int32Array;
  private readonly at: Int32Array;
  private readonly load: Float64Array;
  private readonly rank: Int32Array;

  constructor(value: Value, index: NodeIndex, extra: (node: string) => number) {
    const n = index.nodes.length;
    this.load = new Float64Array(n);
    for (let i = 0; i < n; i++) this.load[i] = nodeFigure(value, index, i) + extra(index.nodes[i]!);
    this.rank = nameRanks(index);
    this.heap = new Int32Array(n);
    this.at = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.heap[i] = i;
      this.at[i] = i;
    }
    for (let h = (n >> 1) - 1; h >= 0; h--) this.down(h);
  }

  /** Position (in the index's nodes) of the least loaded node. */
  least(): number {
    return this.heap[0]!;
  }

  /** Count `amount` more on node i (a task placed there). */
  add(i: number, amount: number): void {
    this.load[i] = this.load[i]! + amount;
    this.down(this.at[i]!);
  }

  private before(a: number, b: number): boolean {
    return this.load[a]! < this.load[b]! || (this.load[a] === this.load[b] && this.rank[a]! < this.rank[b]!);
  }

  private down(h: number): void {
    const n = this.heap.length;
    const node = this.heap[h]!;
    for (;;) {
      const left = 2 * h + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(this.heap[right]!, this.heap[left]!) ? right : left;
      if (!this.before(this.heap[child]!, node)) break;
      this.heap[h] = this.heap[child]!;
      this.at[this.heap[h]!] = h;
      h = child;
    }
    this.heap[h] = node;
    this.at[node] = h;
  }
}

const ranks = new WeakMap<NodeIndex, Int32Array>();

/** Each node's place in name order (kept with the index: the names change only with it). */
function nameRanks(index: NodeIndex): Int32Array {
  let rank = ranks.get(index);
  if (!rank) {
    const order = index.nodes.map((_, i) => i).sort((a, b) => (index.nodes[a]! < index.nodes[b]! ? -1 : 1));
    rank = new Int32Array(order.length);
    order.forEach((i, r) => (rank![i] = r));
    ranks.set(index, rank);
  }
  return rank;
}

/** The nodes a load value knows (this one alone when there is no value). */
export function nodeNames(value: Value | null, localNode: string): readonly string[] {
  if (!value || value.rows === 0) return [localNode];
  return nodeIndex(value, localNode).nodes;
}

const sortedNames = new WeakMap<NodeIndex, readonly string[]>();

/** The node names of a load value in name order (the ring of the round-robin policies), sorted once per index. */
function sortedNodeNames(value: Value | null, localNode: string): readonly string[] {
  if (!value || value.rows === 0) return [localNode];
  const index = nodeIndex(value, localNode);
  let sorted = sortedNames.get(index);
  if (sorted === undefined) sortedNames.set(index, (sorted = [...index.nodes].sort()));
  return sorted;
}

/** The ring a round-robin policy goes round: the task's own nodes when it names them, else the load value's, in name order. */
export function ringOf(taskNodes: readonly string[] | undefined, value: Value | null, localNode: string): readonly string[] {
  return taskNodes ? [...taskNodes].sort() : sortedNodeNames(value, localNode);
}

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
    const node = nodeOfLabel(value.labels[r], localNode);
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
