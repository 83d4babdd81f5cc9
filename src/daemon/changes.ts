/**
 * Where the API's changes to slices, domains and port reservations go: to this node's agent
 * when the node is alone, to the cluster's catalogue (src/cluster/slice-catalog.ts) when it
 * is joined, where they are admitted on every node they concern and realised by each of
 * those nodes' agents (sliver-sync.ts). A change made here returns once this node has
 * realised it, when it concerns this node, so that what follows (an exec) finds it.
 */
import type { ChangeKind, ChangeResults, StateChange } from '../core/change-kinds.js';
import { SlicedError } from '../core/errors.js';
import { resolveIoInput } from '../core/io.js';
import { sliceUserName } from '../core/layout.js';
import { describePlacement, type Placement } from '../core/slivers.js';
import type { CatalogEntry, SliceCatalog } from '../cluster/slice-catalog.js';
import type { PlacementEntry, PlacementView } from '../wire/slices.js';
import type { SliceAgent, Change } from './agent.js';
import { FAILED_RETRY_MS, type SliverSync } from './sliver-sync.js';

/** How long a change made here waits for this node to realise it. */
const REALISE_WAIT_MS = 15_000;

export interface ChangeRunner {
  /** Run a change; `placement` (new slices and domains only) says on which nodes. */
  run<K extends ChangeKind>(change: Change<K>, placement: Placement | null): Promise<ChangeResults[K]>;
  /** The nodes of a slice or domain and each node's progress; null on a node alone, or for a name the cluster lacks. */
  placementOf(kind: 'slice' | 'domain', name: string): Promise<PlacementView | null>;
  /** Every slice (or domain) of the cluster with its nodes, without the slivers' progress; null on a node alone. */
  catalogue(kind: 'slice' | 'domain'): Promise<PlacementEntry[] | null>;
  /** After a node is removed: forget its slivers; resolves to them ("slices/web", ...). */
  forgetNode(node: string): Promise<string[]>;
}

/** A node alone: every change goes to its agent. */
export function localChanges(agent: SliceAgent): ChangeRunner {
  return {
    run(change, placement) {
      if (placement !== null) {
        throw new SlicedError(
          'EINVAL',
          'this node is not in a cluster: a placement (nodes, node selector, all nodes) needs sliced --cluster',
        );
      }
      return agent.change(change);
    },
    placementOf: () => Promise.resolve(null),
    catalogue: () => Promise.resolve(null),
    forgetNode: () => Promise.resolve([]),
  };
}

export class ClusterChanges implements ChangeRunner {
  constructor(
    private readonly catalog: SliceCatalog,
    private readonly sync: SliverSync,
    private readonly self: string,
  ) {}

  async run<K extends ChangeKind>(change: Change<K>, placement: Placement | null): Promise<ChangeResults[K]> {
    const { result, nodes, revision } = await this.catalog.commit(
      resolveForCluster(change as Change) as unknown as StateChange<K>,
      placement,
    );
    if (nodes.includes(this.self)) {
      await this.sync.waitRealised(revision, REALISE_WAIT_MS);
      const created = change as Change;
      const name = created.kind === 'slice.create' ? created.input.name : null;
      const why = name === null ? null : this.sync.leftOut(name);
      if (why !== null) {
        throw new SlicedError(
          'EIO',
          `slice ${name} is in the cluster, but this node cannot run it: ${why}; it tries again every ${FAILED_RETRY_MS / 1000} s (or delete the slice)`,
        );
      }
    }
    return result;
  }

  async catalogue(kind: 'slice' | 'domain'): Promise<PlacementEntry[]> {
    return (await this.catalog.list(kind)).map((entry) => ({ name: entry.name, ...placementOf(entry) }));
  }

  forgetNode(node: string): Promise<string[]> {
    return this.catalog.forgetNode(node);
  }

  async placementOf(kind: 'slice' | 'domain', name: string): Promise<PlacementView | null> {
    const found = await this.catalog.slivers(kind, name);
    return found && { ...placementOf(found.entry), slivers: found.slivers };
  }
}

function placementOf(entry: CatalogEntry): Omit<PlacementView, 'slivers'> {
  return {
    placement: describePlacement(entry.placement, entry.createdOn),
    nodes: entry.nodes,
    createdOn: entry.createdOn,
    createdAt: new Date(entry.createdAt).toISOString(),
  };
}

/** In a cluster a device has no path every node agrees on: devices are named by MAJ:MIN. */
function clusterDevice(name: string): { device: string; path: string | null } {
  if (/^\d+:\d+$/.test(name)) return { device: name, path: null };
  throw new SlicedError(
    'EINVAL',
    `device ${JSON.stringify(name)}: in a cluster, name block devices as MAJ:MIN (e.g. 253:16): paths differ between nodes`,
  );
}

/**
 * What only a node knows is settled the same way for every node: the user sliced makes is
 * named by the default rule (each node names it by its own, see localState), a named user is
 * looked up where the sliver is realised, devices are MAJ:MIN.
 */
function resolveForCluster(change: Change): StateChange {
  switch (change.kind) {
    case 'slice.create': {
      const { user, ...input } = change.input;
      return {
        kind: 'slice.create',
        input: {
          ...input,
          io: resolveIoInput(input.io, clusterDevice),
          user: user ?? sliceUserName(input.name),
          userCreated: user === undefined,
        },
      };
    }
    case 'slice.update':
      return { ...change, input: { ...change.input, io: resolveIoInput(change.input.io, clusterDevice) } };
    case 'domain.create':
      return { ...change, input: { ...change.input, io: resolveIoInput(change.input.io, clusterDevice) } };
    case 'domain.update':
      return { ...change, input: { ...change.input, io: resolveIoInput(change.input.io, clusterDevice) } };
    default:
      return change;
  }
}
