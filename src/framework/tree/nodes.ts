/**
 * The nodes of the configuration tree. A directory's shape depends on its role: each role
 * file (probe.ts, scheduler.ts, ...) declares its node type and adds it to `DirNodes`, so
 * `DirNode` is the discriminated union of every registered role (narrow it on `role`).
 */
import { SlicedError, type ErrorCode } from '../../core/errors.js';
import type { PolicyInstance, ProbeInstance, SchedulerInstance, SlotOwner } from '../instances.js';

/** Role name → node type. Each role file adds its own entries (`declare module './nodes.js'`). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by the role files' declarations
export interface DirNodes {}

export type Role = keyof DirNodes;
export type DirNode = DirNodes[Role];

/** The three lists of a scheduler's process set. */
export type PsetList = 'single_processes' | 'process_sessions' | 'slices';

/**
 * References the built-in roles carry, readable on any directory without narrowing it first:
 * on a directory of another role they are absent (undefined). A new role need not add to it.
 */
export interface RoleRefs {
  probe: ProbeInstance;
  sourceIndex: number;
  slot: SlotOwner;
  policy: PolicyInstance;
  scheduler: SchedulerInstance;
  list: PsetList;
}

interface DirBase<R extends string> {
  kind: 'dir';
  name: string;
  parent: DirNode | null;
  role: R;
  children: Map<string, TreeNode>;
  /** Created by mkdir (as opposed to a default group made with its component). */
  userMade: boolean;
  seq: number;
}

/** A directory of role R carrying the fields `Own`; the other roles' references are absent. */
export type Dir<R extends string, Own extends object = Record<never, never>> = DirBase<R> &
  Own & { [K in Exclude<keyof RoleRefs, keyof Own>]?: undefined };

/** A directory that takes one source: a link to a probe source or a filter (ports and filters). */
export type SlotDir = DirNode & { slot: SlotOwner };

export interface FileNode {
  kind: 'file';
  name: string;
  parent: DirNode;
  read(): string;
  write?(text: string): void;
  /** The validation `write` runs, without changing anything (for apply's checks before it starts). */
  check?(text: string): void;
  /** A configuration attribute: dumped, persisted and applied (probe_period, threshold...). */
  config: boolean;
}

export interface LinkNode {
  kind: 'link';
  name: string;
  parent: SlotDir;
  /** Absolute tree path of the probe source. */
  target: string;
  seq: number;
}

export type TreeNode = DirNode | FileNode | LinkNode;

/** The fields every directory has; a role adds its own and passes the result to `attach`. */
export function dirFields<P extends DirNode | null>(
  name: string,
  parent: P,
  options: { userMade?: boolean; seq?: number } = {},
): { kind: 'dir'; name: string; parent: P; children: Map<string, TreeNode>; userMade: boolean; seq: number } {
  return { kind: 'dir', name, parent, children: new Map(), userMade: options.userMade ?? false, seq: options.seq ?? 0 };
}

/** Enter a new directory in its parent. */
export function attach<N extends DirNode>(node: N): N {
  node.parent?.children.set(node.name, node);
  return node;
}

export function addFile(
  parent: DirNode,
  name: string,
  read: () => string,
  options: { write?: (text: string) => void; check?: (text: string) => void; config?: boolean } = {},
): FileNode {
  const node: FileNode = {
    kind: 'file',
    name,
    parent,
    read,
    config: options.config ?? false,
    ...(options.write ? { write: options.write } : {}),
    ...(options.check ? { check: options.check } : {}),
  };
  parent.children.set(name, node);
  return node;
}

export function fail(code: ErrorCode, message: string): SlicedError {
  return new SlicedError(code, message);
}

export function pathOf(node: TreeNode): string {
  const parts: string[] = [];
  let n: TreeNode | null = node;
  while (n && n.parent) {
    parts.push(n.name);
    n = n.parent;
  }
  return parts.length === 0 ? '' : `/${parts.reverse().join('/')}`;
}

export function depthOf(node: DirNode): number {
  let depth = 0;
  for (let n: DirNode | null = node; n; n = n.parent) depth++;
  return depth;
}
