/** Helpers for placement policies: which node each row of a (remote_cache'd) load value is about. */
import type { Value } from '../../framework/value.js';

/**
 * Node names and loads from a load value: rows labelled "<node>" or "<node>:<label>" (from
 * remote_cache) are that node's; unlabelled rows are this node's. Loads of one node's rows
 * are summed.
 */
export function nodeLoads(value: Value | null, localNode: string): Map<string, number> {
  const loads = new Map<string, number>();
  if (!value || value.rows === 0) return loads.set(localNode, 0);
  for (let r = 0; r < value.rows; r++) {
    const label = value.labels[r];
    const node = label === undefined || /^cpu\d+$/.test(label) ? localNode : label.split(':')[0]!;
    loads.set(node, (loads.get(node) ?? 0) + value.get(r, 0));
  }
  return loads;
}
