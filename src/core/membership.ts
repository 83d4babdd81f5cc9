/**
 * Cluster membership, the pure part: what a node record holds, how a node's status follows
 * from its records, and the validation of names and labels that come from outside. Pure; no
 * I/O (src/cluster/membership.ts keeps the records in the store).
 *
 * A node has two records: its spec (labels, cordoned), written by operators and kept until
 * the node is removed; and its live record (capacity, addresses, version, start time),
 * written by its agent under a lease that the agent renews. When the agent stops renewing
 * (dead, paused, cut off), the store deletes the live record at the lease's end: the node is
 * then `down`, and `up` again as soon as its agent registers anew.
 */
import { SlicedError } from './errors.js';

export interface NodeResources {
  /** Millicores the node offers to slices. */
  cpuMillicores: number;
  cpus: number;
  memoryBytes: number;
}

/** Written by operators; survives the node's absences. */
export interface NodeSpec {
  labels: Record<string, string>;
  /** A cordoned node takes no new slivers or tasks; what runs there stays. */
  cordoned: boolean;
}

/** Written by the node's agent under its lease. */
export interface NodeLive {
  capacity: NodeResources;
  /** Where the node's agent can be reached (its host addresses). */
  addresses: string[];
  /** sliced's version on the node. */
  version: string;
  /** When the agent registered, ms since the epoch. */
  since: number;
  /** The URL of its node-to-node channel (task logs and signals), or null when it has none. */
  peer: string | null;
}

export type NodeStatus = 'up' | 'down';

export interface NodeView extends NodeSpec {
  name: string;
  status: NodeStatus;
  /** What the agent last registered; null when the node is down. */
  live: NodeLive | null;
}

export const EMPTY_SPEC: NodeSpec = { labels: {}, cordoned: false };

/** A node's view from its records; either may be missing (a node known only by one of them). */
export function nodeView(name: string, spec: NodeSpec | undefined, live: NodeLive | undefined): NodeView {
  const s = spec ?? EMPTY_SPEC;
  return { name, labels: { ...s.labels }, cordoned: s.cordoned, status: live ? 'up' : 'down', live: live ?? null };
}

/** Node names: what a host name label allows, so that a name is also a path segment and a key. */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkNodeName(name: string): string {
  if (!NODE_NAME.test(name) || name === '.' || name === '..' || name.includes('..')) {
    throw new SlicedError(
      'EINVAL',
      `node name ${JSON.stringify(name)}: 1-64 letters, digits, "_", "." or "-", starting with a letter or digit`,
    );
  }
  return name;
}

/** Label keys as Kubernetes has them: an optional DNS prefix and "/", then a name. */
const LABEL_KEY = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/;
/** More labels than any scheduler reads would only bloat every node record. */
export const MAX_LABELS = 64;

export function checkLabel(key: string, value: string): void {
  if (!LABEL_KEY.test(key)) {
    throw new SlicedError(
      'EINVAL',
      `label key ${JSON.stringify(key)}: up to 63 letters, digits, "_", "." or "-" (starting and ending with a letter or digit), ` +
        `optionally after a DNS prefix and "/" (e.g. example.com/rack)`,
    );
  }
  if (!LABEL_VALUE.test(value)) {
    throw new SlicedError(
      'EINVAL',
      `label ${key}: value ${JSON.stringify(value)}: empty, or up to 63 letters, digits, "_", "." or "-" starting and ending with a letter or digit`,
    );
  }
}

export interface LabelChanges {
  set: Record<string, string>;
  remove: string[];
}

/**
 * Label arguments as kubectl takes them: "key=value" sets, "key-" removes. A key both set and
 * removed, or given twice, is refused: the caller's intent is not clear.
 */
export function parseLabelArgs(args: readonly string[]): LabelChanges {
  const changes: LabelChanges = { set: {}, remove: [] };
  const seen = new Set<string>();
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq >= 0 ? arg.slice(0, eq) : arg.endsWith('-') ? arg.slice(0, -1) : null;
    if (key === null) throw new SlicedError('EINVAL', `label ${JSON.stringify(arg)}: give KEY=VALUE to set a label or KEY- to remove it`);
    if (seen.has(key)) throw new SlicedError('EINVAL', `label ${key} is given more than once`);
    seen.add(key);
    if (eq >= 0) {
      const value = arg.slice(eq + 1);
      checkLabel(key, value);
      changes.set[key] = value;
    } else {
      checkLabel(key, '');
      changes.remove.push(key);
    }
  }
  return changes;
}

/** The labels after `changes`; refuses to grow past MAX_LABELS. */
export function applyLabelChanges(labels: Record<string, string>, changes: LabelChanges): Record<string, string> {
  const next = { ...labels };
  for (const key of changes.remove) delete next[key];
  Object.assign(next, changes.set);
  const count = Object.keys(next).length;
  if (count > MAX_LABELS)
    throw new SlicedError('EINVAL', `a node may carry at most ${MAX_LABELS} labels; these changes would give it ${count}`);
  return next;
}

/** A spec read from the store; anything malformed is refused with the key's name. */
export function parseNodeSpec(key: string, text: string): NodeSpec {
  const value = parseObject(key, text);
  const labels = value.labels;
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || typeof value.cordoned !== 'boolean') {
    throw new SlicedError('EINVAL', `${key}: not a node spec (needs labels, an object, and cordoned, a boolean)`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new SlicedError('EINVAL', `${key}: label ${k} is not a string`);
    checkLabel(k, v);
    out[k] = v;
  }
  return { labels: out, cordoned: value.cordoned };
}

export function parseNodeLive(key: string, text: string): NodeLive {
  const value = parseObject(key, text);
  const capacity = value.capacity as Partial<NodeResources> | undefined;
  const number = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;
  if (
    typeof capacity !== 'object' ||
    capacity === null ||
    !number(capacity.cpuMillicores) ||
    !number(capacity.cpus) ||
    !number(capacity.memoryBytes) ||
    !Array.isArray(value.addresses) ||
    !value.addresses.every((a) => typeof a === 'string') ||
    typeof value.version !== 'string' ||
    !number(value.since)
  ) {
    throw new SlicedError('EINVAL', `${key}: not a node's live record (needs capacity, addresses, version and since)`);
  }
  return {
    capacity: { cpuMillicores: capacity.cpuMillicores, cpus: capacity.cpus, memoryBytes: capacity.memoryBytes },
    addresses: value.addresses as string[],
    version: value.version,
    since: value.since,
    // Records of agents before the channel existed have none.
    peer: typeof value.peer === 'string' ? value.peer : null,
  };
}

function parseObject(key: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SlicedError('EINVAL', `${key}: not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SlicedError('EINVAL', `${key}: not a JSON object`);
  return value as Record<string, unknown>;
}
