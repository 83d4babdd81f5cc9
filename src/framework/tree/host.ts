/**
 * What a role module gets from the tree (`TreeHost`) and what it gives it (`RoleSpec`). The
 * tree (../tree.ts) dispatches each operation to the spec of the role concerned; roles.ts
 * lists the specs.
 */
import type { Timers } from '../instances.js';
import type { TypeRegistry } from '../registry.js';
import type { ComponentContext, ComponentType, FrameworkServices } from '../types.js';
import type { DirNode } from './nodes.js';

/** Read-only views under /slices, /domains and /nodes, provided by the daemon. */
export interface InfoProvider {
  names(): string[];
  /** Files of one item, each a function producing its text; null when the item does not exist. */
  files(name: string): Record<string, () => string> | null;
}

/** What process sets need to know about processes (the daemon supplies /proc and cgroups). */
export interface ProcessDirectory {
  exists(pid: number): boolean;
  sessionMembers(sid: number): number[];
  slicePids(slice: string): number[];
  sliceExists(slice: string): boolean;
  sessionOf(pid: number): number | null;
  sliceOf(pid: number): string | null;
}

export interface TreeHost {
  readonly registry: TypeRegistry;
  readonly services: FrameworkServices;
  readonly timers: Timers;
  /** Asked at each use: the daemon may set it after the tree is made. */
  processes(): ProcessDirectory | null;
  provider(name: string): InfoProvider | undefined;
  /** Take the tree's next sequence number (an attach of handle_all orders by it). */
  nextSeq(): number;
  /** A new component's context: its path and attributes at their defaults. */
  context(path: string, type: ComponentType): ComponentContext;
}

export interface MkdirOptions {
  seq: number;
  /** A process-set member whose processes have ended is accepted (to undo its removal exactly). */
  allowVanished: boolean;
}

/**
 * One role of directory. Methods (not function properties) on purpose: each spec narrows
 * `node` to its own node type, and the tree calls them only with nodes of that role (or, for
 * `create`, a parent of a role in `under`).
 */
export interface RoleSpec<N extends DirNode = DirNode, P extends DirNode = DirNode> {
  role: N['role'];
  /** Placement: mkdir in a directory of one of these roles creates a directory of this role. */
  under?: readonly P['role'][];
  /** Check the name and what the parent allows, create the component and its directory. */
  create?(host: TreeHost, parent: P, name: string, options: MkdirOptions): void | Promise<void>;
  /** rmdir of `path`: refuse while in use, else tear down (the tree removes the entry). Absent: EPERM. */
  remove?(node: N, path: string): void;
  /** Shutdown: stop what the node runs. */
  destroy?(node: N): void;
  /** Problems with this node's consistency (checkInvariants). */
  check?(node: N): string[];
  /** Directories listed and looked up on demand (read-only views), instead of stored children. */
  names?(host: TreeHost, node: N): string[];
  virtualChild?(host: TreeHost, node: N, name: string): DirNode | undefined;
}
