/** The read-only views /slices, /domains and /nodes: items listed and built on demand from the daemon's providers. */
import type { RoleSpec } from './host.js';
import { addFile, attach, dirFields, type Dir, type DirNode } from './nodes.js';

export type InfoNode = Dir<'info'>;
export type InfoItemNode = Dir<'info_item', { parent: InfoNode }>;

declare module './nodes.js' {
  interface DirNodes {
    info: InfoNode;
    info_item: InfoItemNode;
  }
}

export const VIEWS = ['slices', 'domains', 'nodes'] as const;

export function addViews(root: DirNode): void {
  for (const name of VIEWS) attach<InfoNode>({ ...dirFields(name, root), role: 'info' });
}

export const infoRole: RoleSpec<InfoNode> = {
  role: 'info',
  names(host, node) {
    return host.provider(node.name)?.names() ?? [];
  },
  virtualChild(host, node, name) {
    const files = host.provider(node.name)?.files(name);
    if (!files) return undefined;
    // Built on each lookup and never entered in the view: the view is live.
    const item: InfoItemNode = { ...dirFields(name, node), role: 'info_item' };
    for (const [file, read] of Object.entries(files)) addFile(item, file, read);
    return item;
  },
};

export const infoItemRole: RoleSpec<InfoItemNode> = { role: 'info_item' };
