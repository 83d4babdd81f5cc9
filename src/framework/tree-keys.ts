/**
 * How the config tree is kept in a store: one key per directory made with mkdir, attribute
 * written and link, each with the sequence number that orders it at restore.
 *
 *   tree/d<path>  a directory made with mkdir   {"seq": n}
 *   tree/a<path>  a configuration attribute     {"value": "<text>", "seq": n}
 *   tree/l<path>  a link                         {"target": "...", "seq": n}
 *   tree/initialized   set once the default tree (or an imported one) was applied
 *   tree/head          in a cluster: rewritten by every change, compared by the next
 *
 * In a cluster the shared keys live in the cluster store and the node-local ones (process-set
 * members by pid or session: a node's own processes) in the node's own store.
 */
import type { StoreOp } from '../cluster/store.js';
import type { Mutation } from './tree.js';

export const DIR = 'tree/d';
export const ATTR = 'tree/a';
export const LINK = 'tree/l';
export const INITIALIZED = 'tree/initialized';
export const HEAD = 'tree/head';

/** Members named by pid or session id are this node's; everything else is the cluster's. */
const NODE_LOCAL = /^\/schedulers\/[^/]+\/process_set\/(single_processes|process_sessions)\/[^/]+$/;

export function isNodeLocal(key: string): boolean {
  const path = pathOfKey(key);
  return path !== null && NODE_LOCAL.test(path);
}

/** The tree path a key stands for, or null for the bookkeeping keys. */
export function pathOfKey(key: string): string | null {
  for (const prefix of [DIR, ATTR, LINK]) if (key.startsWith(prefix)) return key.slice(prefix.length);
  return null;
}

/** The store operations of some mutations; `attrsUnder(path)` lists the stored attribute keys below a removed directory. */
export async function opsOf(mutations: readonly Mutation[], attrsUnder: (path: string) => Promise<string[]>): Promise<StoreOp[]> {
  const ops: StoreOp[] = [];
  for (const m of mutations) {
    switch (m.op) {
      case 'mkdir':
        ops.push({ type: 'put', key: `${DIR}${m.path}`, value: JSON.stringify({ seq: m.seq }) });
        break;
      case 'rmdir':
        ops.push({ type: 'delete', key: `${DIR}${m.path}` });
        for (const key of await attrsUnder(m.path)) ops.push({ type: 'delete', key });
        break;
      case 'write':
        ops.push({ type: 'put', key: `${ATTR}${m.path}`, value: JSON.stringify({ value: m.value, seq: m.seq }) });
        break;
      case 'ln':
        ops.push({ type: 'put', key: `${LINK}${m.path}`, value: JSON.stringify({ target: m.target, seq: m.seq }) });
        break;
      case 'rm':
        ops.push({ type: 'delete', key: `${LINK}${m.path}` });
        break;
    }
  }
  return ops;
}

export interface StoredDir {
  path: string;
  seq: number;
}
export interface StoredAttr {
  key: string;
  path: string;
  value: string;
  seq: number;
}
export interface StoredLink {
  path: string;
  target: string;
  seq: number;
}

/** Directories, attributes and links of stored keys, each in the order they were made. */
export function storedTree(keys: ReadonlyMap<string, string>): { dirs: StoredDir[]; attrs: StoredAttr[]; links: StoredLink[] } {
  const dirs: StoredDir[] = [];
  const attrs: StoredAttr[] = [];
  const links: StoredLink[] = [];
  for (const [key, value] of keys) {
    if (key.startsWith(DIR)) dirs.push({ path: key.slice(DIR.length), seq: parseSeq(value) });
    else if (key.startsWith(ATTR)) attrs.push({ key, path: key.slice(ATTR.length), ...parseAttribute(value) });
    else if (key.startsWith(LINK)) links.push({ path: key.slice(LINK.length), ...parseLink(value) });
  }
  const bySeq = (a: { seq: number }, b: { seq: number }): number => a.seq - b.seq;
  return { dirs: dirs.sort(bySeq), attrs: attrs.sort(bySeq), links: links.sort(bySeq) };
}

export function parseSeq(stored: string): number {
  try {
    const seq = (JSON.parse(stored) as { seq?: unknown }).seq;
    return typeof seq === 'number' ? seq : 0;
  } catch {
    return 0;
  }
}

export function parseAttribute(stored: string): { value: string; seq: number } {
  try {
    const parsed = JSON.parse(stored) as { value?: unknown; seq?: unknown };
    if (typeof parsed.value === 'string' && typeof parsed.seq === 'number') return { value: parsed.value, seq: parsed.seq };
  } catch {
    // not JSON: fall through
  }
  return { value: stored, seq: 0 };
}

export function parseLink(stored: string): { target: string; seq: number } {
  try {
    const parsed = JSON.parse(stored) as { target?: unknown; seq?: unknown };
    if (typeof parsed.target === 'string') return { target: parsed.target, seq: typeof parsed.seq === 'number' ? parsed.seq : 0 };
  } catch {
    // not JSON: fall through
  }
  return { target: '', seq: 0 };
}
