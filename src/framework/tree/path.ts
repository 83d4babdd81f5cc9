/** Tree paths: parsing and validation, and resolving them to nodes (following links). */
import { fail, type DirNode, type TreeNode } from './nodes.js';

export const MAX_DEPTH = 32;

/** Links followed while resolving one path, at most. */
const MAX_HOPS = 8;

/** Split and validate a tree path: absolute, no "." or ".." components, no NUL, bounded. */
export function splitPath(path: string): string[] {
  if (typeof path !== 'string') throw fail('EINVAL', 'a path must be a string');
  if (path.includes('\0')) throw fail('EINVAL', `path ${JSON.stringify(path)} must not contain NUL`);
  if (!path.startsWith('/')) throw fail('EINVAL', `path ${JSON.stringify(path)} must be absolute (start with "/")`);
  if (path.length > 4096) throw fail('EINVAL', `path is ${path.length} characters long; at most 4096 are allowed`);
  const parts = path.split('/').filter((p) => p !== '');
  for (const part of parts) {
    if (part === '.' || part === '..') throw fail('EINVAL', `path ${JSON.stringify(path)} must not contain "." or ".." components`);
    if (part.length > 255) throw fail('EINVAL', `path component is ${part.length} characters long; at most 255 are allowed`);
  }
  if (parts.length > MAX_DEPTH * 2)
    throw fail('EINVAL', `path ${JSON.stringify(path.slice(0, 80))}... is deeper than ${MAX_DEPTH * 2} components`);
  return parts;
}

/** A child that is not stored: an item of a read-only view, made on lookup. */
export type VirtualChild = (dir: DirNode, name: string) => DirNode | undefined;

/** Resolve path components from the root; `followLast` follows a link in the last component too. */
export function resolve(root: DirNode, parts: string[], followLast: boolean, virtual: VirtualChild, hops = 0): TreeNode {
  let node: TreeNode = root;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (node.kind !== 'dir') throw fail('ENOTDIR', `/${parts.slice(0, i).join('/')} is not a directory`);
    let next: TreeNode | undefined = node.children.get(part) ?? virtual(node, part);
    if (!next) throw fail('ENOENT', `/${parts.slice(0, i + 1).join('/')} does not exist`);
    if (next.kind === 'link' && (i < parts.length - 1 || followLast)) {
      if (hops > MAX_HOPS) throw fail('ELOOP', `too many links resolving /${parts.join('/')}`);
      next = resolve(root, splitPath(next.target), true, virtual, hops + 1);
    }
    node = next;
  }
  return node;
}

/** The directory a new entry at `path` goes into, and the entry's name. */
export function parentOf(root: DirNode, path: string, virtual: VirtualChild): { parent: DirNode; name: string } {
  const parts = splitPath(path);
  if (parts.length === 0) throw fail('EEXIST', '/ already exists');
  const name = parts[parts.length - 1]!;
  const parent = resolve(root, parts.slice(0, -1), true, virtual);
  if (parent.kind !== 'dir') throw fail('ENOTDIR', `${'/' + parts.slice(0, -1).join('/')} is not a directory`);
  return { parent, name };
}
