/** The cluster's members as GET /v1/nodes and /v1/nodes/<name> send them (slicectl node ...). */
import type { NodeView } from '../core/membership.js';

export type { NodeLive, NodeResources, NodeStatus } from '../core/membership.js';

export interface NodeEntry extends NodeView {
  /** The node whose API answered. */
  self: boolean;
  /** Its last published load (every 5 s); null when it published none (down, or an older agent). */
  load: NodeLoad | null;
}

/** A node's load as its agent publishes it (millicores). */
export interface NodeLoad {
  /** CPU its slices used together in its last control period. */
  slicesCpuMillicores: number;
  /** CPU reserved by its slices and domains. */
  reservedMillicores: number;
}

/** GET /v1/nodes: the members, and how this node keeps cluster state. */
export interface NodeList {
  /** "etcd": joined to a cluster; "single": this node alone on its embedded store. */
  mode: 'etcd' | 'single';
  endpoints: string[];
  nodes: NodeEntry[];
}

/** PATCH /v1/nodes/<name>: labels to set ("key": "value") or remove ("key": null), and the cordon. */
export interface NodeChange {
  labels?: Record<string, string | null>;
  cordoned?: boolean;
}

/** POST /v1/nodes/<name>/drain: the node is cordoned; its migratable tasks moved where listed, the others stayed, with why. */
export interface DrainResult {
  node: string;
  moved: Array<{ task: string; to: string }>;
  left: Array<{ task: string; reason: string }>;
}
