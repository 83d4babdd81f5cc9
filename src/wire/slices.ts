/**
 * Slices, domains and the state directory as the API shows them (GET /v1/slices, /v1/domains,
 * /v1/status, the per-slice sockets): the daemon's views produce them, slicectl reads them.
 * CPU figures are millicores, memory figures bytes.
 */
import type { CpuAllocation, IoAllocation, IoDeviceLimit, MemoryAllocation, PidsAllocation } from '../core/model.js';
import type { NetSpec, Reservation } from '../core/net.js';
import type { IoStats, PidsStats, Pressure } from '../core/group-stats.js';
import type { SliverView } from '../core/slivers.js';

export interface CpuView extends CpuAllocation {
  /** The limit that applies after enclosing domains' limits. */
  effectiveLimit: number | null;
}

export interface IoView extends IoAllocation {
  /** Caps written on the group: own caps bounded by enclosing domains' (on v1 their split parts). */
  effectiveMax: IoDeviceLimit[];
  /**
   * Why io.weight has no effect, one sentence per case: on a capped device that does not use
   * BFQ, or on every device when none can carry weights. Absent when it acts.
   */
  weightNoEffect?: string[];
}

export interface PidsView extends PidsAllocation {
  /** pids.max written on the group ("default" resolved), or null for no cap. */
  effectiveMax: number | null;
  /** Why nothing is written (no pids controller); absent when the limit is enforced. */
  unavailable?: string;
}

export interface LiveView {
  /** Processes in the slice (for domains: in all members). */
  procs: number;
  usage: number;
  demand: number;
  entitlement: number;
  weight: number;
  /** CPU time used since the slice was made (across the groups it had: moves keep it), in seconds. */
  cpuSeconds: number;
  /** Counters below (throttling, OOM kills, I/O, refused forks) of a slice also run on across its moves. */
  throttledPeriods: number;
  throttledSeconds: number;
  memoryBytes: number;
  oomKills: number | null;
  /** Cumulative block I/O (bytes and operations), or null without an I/O controller. */
  io: IoStats | null;
  /** avg10 pressure of the group in percent, or null where the kernel has no per-group PSI. */
  pressure: { cpu: Pressure | null; memory: Pressure | null; io: Pressure | null };
  /** Tasks, the kernel's pids.max, peak and refused forks; null without the pids controller. */
  pids: PidsStats | null;
}

export interface SliceView {
  name: string;
  user: string;
  uid: number | null;
  userCreated: boolean;
  domain: string | null;
  cpu: CpuView;
  memory: MemoryAllocation;
  io: IoView;
  pids: PidsView;
  cgroup: string;
  /** The slice's own network, or null when it uses the host's. */
  net: NetView | null;
  /** In a cluster: the slice's nodes. */
  cluster?: PlacementView;
  /** In a cluster whose store cannot be read now: why the slice's nodes are not shown. */
  clusterError?: string;
  live?: LiveView;
}

/** In a cluster: where a slice or domain has slivers, and how far each node has got with its own. */
export interface PlacementView {
  /** The placement asked for, in words ("all nodes", "nodes labelled rack=r1", "node a (where it was created)"). */
  placement: string;
  nodes: string[];
  createdOn: string;
  /** ISO time. */
  createdAt: string;
  /** Each node's sliver: ready (realised), pending (not yet), failed (error says why), down (the node is). */
  slivers: SliverView[];
}

/** A row of `GET /v1/slices?cluster=true` (and of domains): a slice of the cluster and its nodes. */
export interface PlacementEntry extends Omit<PlacementView, 'slivers'> {
  name: string;
}

/** A slice (or domain) of the cluster that has no sliver on the node asked: its nodes alone. */
export interface RemoteSliceView {
  name: string;
  cluster: PlacementView;
}

export type RemoteDomainView = RemoteSliceView;

export interface NetView extends NetSpec {
  addresses: { v4: string; v6: string } | null;
  netns: string | null;
  /** Host side of the slice's veth pair (on the bridge). */
  veth: string | null;
  reservations: Reservation[];
}

export interface DomainView {
  name: string;
  parent: string | null;
  cpu: CpuView;
  memory: MemoryAllocation;
  io: IoView;
  pids: PidsView;
  members: { slices: string[]; domains: string[] };
  cgroup: string;
  /** In a cluster: the domain's nodes. */
  cluster?: PlacementView;
  /** In a cluster whose store cannot be read now: why the domain's nodes are not shown. */
  clusterError?: string;
  live?: LiveView;
}

/** The state directory: space left on its filesystem and whether the desired state can be stored. */
export interface StateView {
  dir: string;
  /** Bytes sliced (root) may still write there, blocks reserved for root included; null when unreadable. */
  freeBytes: number | null;
  /** Bytes unprivileged users (slices) may still write on that filesystem. */
  availableBytes: number | null;
  totalBytes: number | null;
  freeInodes: number | null;
  /** False while writes of the state fail; `error` says why, `since` since when. */
  writable: boolean;
  error: string | null;
  since: string | null;
}
