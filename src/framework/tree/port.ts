/** A port of a policy (a slot that passes what it collects to the policy) or of a filter (read when the filter runs). */
import type { PortInstance } from '../instances.js';
import type { PortSpec } from '../types.js';
import type { RoleSpec } from './host.js';
import { addFile, attach, dirFields, type Dir, type DirNode } from './nodes.js';
import { checkSlot } from './slot.js';

export type PortNode = Dir<'port', { slot: PortInstance }>;

declare module './nodes.js' {
  interface DirNodes {
    port: PortNode;
  }
}

export function addPort(ownerDir: DirNode, port: PortInstance, spec: PortSpec): void {
  const pdir = attach<PortNode>({ ...dirFields(port.name, ownerDir), role: 'port', slot: port });
  addFile(pdir, 'collected_value', () => port.collected?.format() ?? '');
  addFile(pdir, 'type', () => `${port.valueType.name}\n`);
  addFile(pdir, 'description', () => `${spec.description}\n`);
}

export const portRole: RoleSpec<PortNode> = {
  role: 'port',
  check: checkSlot,
};
