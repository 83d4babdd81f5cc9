/**
 * Slices across nodes, the pure part. In a cluster a slice is one spec with a sliver on each
 * of its nodes (PlanetLab's slices): reservations, limits and shares apply per node, so each
 * node has its own desired state and its own admission. This file resolves where a new
 * slice or domain goes (its placement) and plans a change on each node it concerns with the
 * same planChange a single node uses; a refusal on any node refuses the whole change and
 * names the node. No I/O (src/cluster/slice-catalog.ts keeps the states and the catalogue
 * of which nodes hold what in etcd, and commits plans atomically).
 */
import type { NodeCapacity } from './admission.js';
import { planChange, type ChangeKind, type ChangeResults, type StateChange } from './change-kinds.js';
import { SlicedError } from './errors.js';
import { checkLabel, checkNodeName, type NodeView } from './membership.js';
import type { DesiredState } from './model.js';

/** Where a new slice (or domain) gets slivers. */
export type Placement = { nodes: string[] } | { selector: Record<string, string> } | { all: true };

/** How far a node has got with its sliver: realised, not yet, could not (with why), or the node is down. */
export type SliverState = 'ready' | 'pending' | 'failed' | 'down';

export interface SliverView {
  node: string;
  state: SliverState;
  /** Why the node could not realise it, when it failed. */
  error?: string;
}

/** What the API accepts as `placement`: the same, validated (node names, labels). */
export function parsePlacement(value: unknown): Placement | null {
  if (value === undefined || value === null) return null;
  const allowed = 'allowed: {"nodes": ["a", "b"]}, {"selector": {"key": "value"}} or {"all": true}';
  if (typeof value !== 'object' || Array.isArray(value)) throw new SlicedError('EINVAL', `placement ${JSON.stringify(value)}: ${allowed}`);
  const keys = Object.keys(value);
  const record = value as Record<string, unknown>;
  if (keys.length !== 1) throw new SlicedError('EINVAL', `placement ${JSON.stringify(value)} must have exactly one key; ${allowed}`);
  if (keys[0] === 'nodes') {
    const nodes = record['nodes'];
    if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every((n): n is string => typeof n === 'string')) {
      throw new SlicedError('EINVAL', `placement.nodes ${JSON.stringify(nodes)} must be a non-empty list of node names`);
    }
    return { nodes: [...new Set(nodes.map(checkNodeName))] };
  }
  if (keys[0] === 'selector') {
    const selector = record['selector'];
    if (typeof selector !== 'object' || selector === null || Array.isArray(selector) || Object.keys(selector).length === 0) {
      throw new SlicedError('EINVAL', `placement.selector ${JSON.stringify(selector)} must be a non-empty object of labels`);
    }
    for (const [k, v] of Object.entries(selector)) {
      if (typeof v !== 'string') throw new SlicedError('EINVAL', `placement.selector.${k} ${JSON.stringify(v)} must be a string`);
      checkLabel(k, v);
    }
    return { selector: { ...(selector as Record<string, string>) } };
  }
  if (keys[0] === 'all' && record['all'] === true) return { all: true };
  throw new SlicedError('EINVAL', `placement ${JSON.stringify(value)}: ${allowed}`);
}

/** The placement in words, for messages and listings. */
export function describePlacement(placement: Placement | null, self: string): string {
  if (placement === null) return `node ${self} (where it was created)`;
  if ('nodes' in placement) return `nodes ${placement.nodes.join(', ')}`;
  if ('selector' in placement) return `nodes labelled ${labelsText(placement.selector)}`;
  return 'all nodes';
}

const labelsText = (labels: Record<string, string>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/**
 * The nodes a placement names now, sorted. Named nodes must be members, up and not cordoned;
 * a selector and "all" take the members that are up and not cordoned (and match).
 */
export function resolvePlacement(placement: Placement | null, members: readonly NodeView[], self: string): string[] {
  const byName = new Map(members.map((m) => [m.name, m]));
  const usable = (m: NodeView): boolean => m.status === 'up' && !m.cordoned;
  if (placement === null || 'nodes' in placement) {
    const names = placement === null ? [self] : placement.nodes;
    for (const name of names) {
      const member = byName.get(name);
      if (!member) {
        throw new SlicedError('ENOENT', `node ${name} is not a member of the cluster (members: ${[...byName.keys()].sort().join(', ')})`);
      }
      if (member.status !== 'up') throw new SlicedError('EBUSY', `node ${name} is down: a sliver can be placed only on a node that is up`);
      if (member.cordoned)
        throw new SlicedError('EBUSY', `node ${name} is cordoned: it takes no new slivers (slicectl node uncordon ${name})`);
    }
    return [...names].sort();
  }
  const chosen = members.filter(
    (m) => usable(m) && ('all' in placement || Object.entries(placement.selector).every(([k, v]) => m.labels[k] === v)),
  );
  if (chosen.length === 0) {
    throw new SlicedError('ENOENT', `no node that is up and not cordoned matches ${describePlacement(placement, self)}`);
  }
  return chosen.map((m) => m.name).sort();
}

/** The name a change is about, and whether that is a slice or a domain (for finding the nodes that hold it). */
export function changeSubject(change: StateChange): { kind: 'slice' | 'domain' | 'member' | 'reservation'; name: string } {
  switch (change.kind) {
    case 'slice.create':
      return { kind: 'slice', name: change.input.name };
    case 'slice.update':
    case 'slice.delete':
      return { kind: 'slice', name: change.name };
    case 'domain.create':
      return { kind: 'domain', name: change.input.name };
    case 'domain.update':
    case 'domain.delete':
      return { kind: 'domain', name: change.name };
    case 'member.move':
      return { kind: 'member', name: change.member };
    case 'port.reserve':
      return { kind: 'slice', name: change.input.slice };
    case 'port.release':
      return { kind: 'reservation', name: `${String(change.input.protocol)}/${String(change.input.address)}/${String(change.input.port)}` };
  }
}

export interface NodePlanInput {
  state: DesiredState;
  capacity: NodeCapacity;
}

export interface NodesPlan<K extends ChangeKind> {
  /** The next state of each node the change touches. */
  next: Map<string, DesiredState>;
  /** What the change reports on the first node (the spec is the same on every node, but for the network address). */
  result: ChangeResults[K];
}

/**
 * Plan `change` on every node of `targets`: all of them admit it, or it is refused with every
 * node's reason ("node b: ..."). A port release is planned on the nodes that hold the port.
 */
export function planOnNodes<K extends ChangeKind>(
  nodes: ReadonlyMap<string, NodePlanInput>,
  targets: readonly string[],
  change: StateChange<K>,
): NodesPlan<K> {
  const next = new Map<string, DesiredState>();
  const refusals: Array<{ node: string; err: SlicedError }> = [];
  let result: ChangeResults[K] | undefined;
  for (const node of targets) {
    const input = nodes.get(node);
    if (!input) throw new SlicedError('ENOENT', `node ${node} has no capacity on record: it is not up`);
    try {
      const planned = planChange(input.state, change, input.capacity);
      next.set(node, planned.next);
      result ??= planned.result;
    } catch (err) {
      if (!(err instanceof SlicedError)) throw err;
      if (change.kind === 'port.release' && err.code === 'ENOENT') continue;
      refusals.push({ node, err });
    }
  }
  if (refusals.length > 0) {
    const text = refusals.map(({ node, err }) => `node ${node}: ${err.message}`).join('; ');
    throw new SlicedError(
      refusals[0]!.err.code,
      targets.length > 1 ? `refused on ${refusals.length} of ${targets.length} nodes: ${text}` : text,
    );
  }
  if (result === undefined) throw new SlicedError('ENOENT', `no node holds ${changeSubject(change as StateChange).name}`);
  return { next, result };
}

/** What a node's allocation record says: written with every change of the node's state, and compared by the next. */
export interface AllocationSummary {
  slices: number;
  domains: number;
  /** CPU reserved at the node level (slices and domains directly under the node), millicores. */
  cpuReservedMillicores: number;
}

/** The memory limits of the node's top-level slices and domains together (bytes): what it has promised. */
export function memoryPromised(state: DesiredState): number {
  let bytes = 0;
  for (const slice of state.slices.values()) if (slice.domain === null) bytes += slice.memory.limit ?? 0;
  for (const domain of state.domains.values()) if (domain.parent === null) bytes += domain.memory.limit ?? 0;
  return bytes;
}

export function allocationSummary(state: DesiredState): AllocationSummary {
  let cpu = 0;
  for (const slice of state.slices.values()) if (slice.domain === null) cpu += slice.cpu.reservation;
  for (const domain of state.domains.values()) if (domain.parent === null) cpu += domain.cpu.reservation;
  return { slices: state.slices.size, domains: state.domains.size, cpuReservedMillicores: cpu };
}

/**
 * The cluster's state for this node as this node runs it: the users sliced makes are named
 * by this node's rule (`localUser`), and whatever equals what the node already runs is kept
 * as the same object, so that only what changed is touched in the kernel (changes compare by
 * identity, see affectedIds).
 */
export function localState(before: DesiredState, target: DesiredState, localUser: (slice: string) => string): DesiredState {
  const same = <V>(old: V | undefined, value: V): V => (old !== undefined && JSON.stringify(old) === JSON.stringify(value) ? old : value);
  const next: DesiredState = { slices: new Map(), domains: new Map(), reservations: new Map() };
  for (const [name, spec] of target.slices) {
    const local = spec.userCreated ? { ...spec, user: localUser(name) } : spec;
    next.slices.set(name, same(before.slices.get(name), local));
  }
  for (const [name, spec] of target.domains) next.domains.set(name, same(before.domains.get(name), spec));
  for (const [key, r] of target.reservations) next.reservations.set(key, same(before.reservations.get(key), r));
  return next;
}

/** Whether two states hold the same objects (what localState keeps when nothing changed). */
export function sameObjects(a: DesiredState, b: DesiredState): boolean {
  const same = <V>(x: ReadonlyMap<string, V>, y: ReadonlyMap<string, V>): boolean =>
    x.size === y.size && [...x].every(([k, v]) => y.get(k) === v);
  return same(a.slices, b.slices) && same(a.domains, b.domains) && same(a.reservations, b.reservations);
}
