/** The fixed directories: the root, /probes and /schedulers (and the views, view.ts). */
import type { RoleSpec } from './host.js';
import { attach, dirFields, type Dir } from './nodes.js';
import { addViews } from './view.js';

export type RootNode = Dir<'root', { parent: null }>;
export type ProbesNode = Dir<'probes'>;
export type SchedulersNode = Dir<'schedulers'>;

declare module './nodes.js' {
  interface DirNodes {
    root: RootNode;
    probes: ProbesNode;
    schedulers: SchedulersNode;
  }
}

/** A new tree's fixed directories; the schedulers' directory is where placement asks. */
export function makeRoot(): { root: RootNode; schedulers: SchedulersNode } {
  const root: RootNode = { ...dirFields('', null), role: 'root' };
  attach<ProbesNode>({ ...dirFields('probes', root), role: 'probes' });
  const schedulers = attach<SchedulersNode>({ ...dirFields('schedulers', root), role: 'schedulers' });
  addViews(root);
  return { root, schedulers };
}

export const rootRole: RoleSpec<RootNode> = { role: 'root' };
export const probesRole: RoleSpec<ProbesNode> = { role: 'probes' };
export const schedulersRole: RoleSpec<SchedulersNode> = { role: 'schedulers' };
