/** A policy's port: a slot that passes what it collects to the policy. */
import type { PortInstance } from '../instances.js';
import type { PolicyType } from '../types.js';
import type { RoleSpec } from './host.js';
import { addFile, attach, dirFields, type Dir, type DirNode } from './nodes.js';
import { checkSlot } from './slot.js';

export type PortNode = Dir<'port', { slot: PortInstance }>;

declare module './nodes.js' {
  interface DirNodes {
    port: PortNode;
  }
}

export function addPort(policyDir: DirNode, port: PortInstance, spec: PolicyType['ports'][number]): void {
  const pdir = attach<PortNode>({ ...dirFields(port.name, policyDir), role: 'port', slot: port });
  addFile(pdir, 'collected_value', () => port.collected?.format() ?? '');
  addFile(pdir, 'type', () => `${port.valueType.name}\n`);
  addFile(pdir, 'description', () => `${spec.description}\n`);
}

export const portRole: RoleSpec<PortNode> = {
  role: 'port',
  check: checkSlot,
};
