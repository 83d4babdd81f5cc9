/**
 * Replaying the stored tree onto a live one: all its keys at restore, or the events of other
 * nodes' commits in a cluster. The callers keep these mutations from being stored again.
 */
import type { StoreEvent, StoreOp } from '../cluster/store.js';
import type { ConfigTree } from './tree.js';
import type { Logger } from './types.js';
import { ATTR, DIR, LINK, isNodeLocal, parseAttribute, parseLink, parseSeq, pathOfKey, storedTree } from './tree-keys.js';

/**
 * Build a tree from stored keys (restore): directories, attributes, links, each in creation
 * order. Returns the keys that could not be restored.
 */
export async function replayKeys(tree: ConfigTree, keys: ReadonlyMap<string, string>, log: Logger): Promise<StoreOp[]> {
  const stale: StoreOp[] = [];
  const { dirs, attrs, links } = storedTree(keys);
  for (const { path, seq } of dirs) {
    try {
      await tree.mkdir(path, { seq });
    } catch (err) {
      log.warn({ path, err: (err as Error).message }, 'config tree: cannot restore a directory; dropped');
      stale.push({ type: 'delete', key: `${DIR}${path}` });
    }
  }
  // Two passes: an attribute checked against another (hysteresis low <= high) may need
  // the other one restored first. In the order they were written (handle_all's attach
  // order is stacking precedence).
  let left = attrs;
  for (const pass of [1, 2]) {
    const refused: typeof attrs = [];
    for (const attr of left) {
      try {
        tree.write(attr.path, attr.value);
      } catch (err) {
        if (pass === 1) {
          refused.push(attr);
          continue;
        }
        log.warn({ path: attr.path, err: (err as Error).message }, 'config tree: cannot restore an attribute; dropped');
        stale.push({ type: 'delete', key: attr.key });
      }
    }
    left = refused;
  }
  for (const { path, target, seq } of links) {
    try {
      tree.symlink(target, path, { seq });
    } catch (err) {
      log.warn({ path, target, err: (err as Error).message }, 'config tree: cannot restore a link; dropped');
      stale.push({ type: 'delete', key: `${LINK}${path}` });
    }
  }
  return stale;
}

/** Other nodes' changes, in the order committed, onto the live tree. */
export async function replayEvents(tree: ConfigTree, events: readonly StoreEvent[], log: Logger): Promise<void> {
  for (const e of events) {
    const path = pathOfKey(e.key);
    if (path === null) continue;
    try {
      if (e.key.startsWith(DIR)) {
        if (e.value !== null && !tree.exists(path)) await tree.mkdir(path, { seq: parseSeq(e.value) });
        else if (e.value === null && tree.exists(path)) tree.rmdir(path);
      } else if (e.key.startsWith(ATTR)) {
        if (e.value !== null) tree.write(path, parseAttribute(e.value).value);
      } else if (e.key.startsWith(LINK)) {
        if (tree.exists(path)) tree.unlink(path);
        if (e.value !== null) {
          const link = parseLink(e.value);
          tree.symlink(link.target, path, { seq: link.seq });
        }
      }
    } catch (err) {
      // The same change passed the same checks on the node that made it: say loudly that this tree now differs.
      log.error(
        { path, change: e.type, err: (err as Error).message },
        'config tree: a change from the cluster cannot be applied on this node',
      );
    }
  }
}

/** Paths whose stored entries differ between two sets of tree keys (sequence numbers aside). */
export function treeDifferences(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): string[] {
  const meaning = (key: string, value: string | undefined): string =>
    value === undefined ? '' : key.startsWith(ATTR) ? parseAttribute(value).value : key.startsWith(LINK) ? parseLink(value).target : 'dir';
  const keys = new Set([...a.keys(), ...b.keys()].filter((k) => pathOfKey(k) !== null && !isNodeLocal(k)));
  return [...keys]
    .filter((k) => meaning(k, a.get(k)) !== meaning(k, b.get(k)))
    .map((k) => pathOfKey(k)!)
    .sort();
}
