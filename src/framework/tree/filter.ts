/** A filter: a component in a port's or filter's slot, with a slot of its own; it passes on what it lets through. */
import { FilterInstance, makePorts } from '../instances.js';
import type { Value } from '../value.js';
import type { ComponentContext } from '../types.js';
import type { RoleSpec } from './host.js';
import { attributeFiles, loadType } from './component.js';
import { addFile, attach, depthOf, dirFields, fail, pathOf, type Dir } from './nodes.js';
import { addPort, type PortNode } from './port.js';
import { MAX_DEPTH } from './path.js';
import { checkSlot, checkSlotFree, describeSource } from './slot.js';

export type FilterNode = Dir<'filter', { slot: FilterInstance; parent: PortNode | FilterNode }>;

declare module './nodes.js' {
  interface DirNodes {
    filter: FilterNode;
  }
}

export const filterRole: RoleSpec<FilterNode, PortNode | FilterNode> = {
  role: 'filter',
  under: ['port', 'filter'],

  async create(host, parent, name, { seq }) {
    const type = await loadType(host.registry, name, 'filter', pathOf(parent));
    const slot = parent.slot;
    checkSlotFree(parent);
    if (parent.children.has(name)) throw fail('EEXIST', `${pathOf(parent)}/${name} already exists`);
    if (depthOf(parent) >= MAX_DEPTH) throw fail('EINVAL', `${pathOf(parent)}/${name} would nest filters deeper than ${MAX_DEPTH} levels`);
    if (type.accepts && !type.accepts.includes(slot.valueType.name)) {
      throw fail(
        'EINVAL',
        `filter ${name} accepts values of type ${type.accepts.join(' or ')}, but ${pathOf(parent)} carries ${slot.valueType.name}`,
      );
    }
    const path = `${pathOf(parent)}/${name}`;
    const ports: Record<string, Value | null> = {};
    const ctx: ComponentContext = {
      ...host.context(path, type),
      valueType: slot.valueType,
      ...(type.ports ? { ports } : {}),
      republish: () => filter.produce(host.timers.now()),
    };
    // A filter's own ports (Kerrighed's second_value) pass their updates to it.
    const portInstances = makePorts(
      type.ports ?? [],
      (t) => host.registry.valueType(t),
      ports,
      (i) => (_value, now) => filter.portReceived(i, now),
    );
    const filter = new FilterInstance(type, type.create(ctx), ctx, slot.valueType);
    filter.ports = portInstances;
    const dir = attach<FilterNode>({ ...dirFields(name, parent, { userMade: true, seq }), role: 'filter', slot: filter });
    addFile(dir, 'description', () => `${type.description}\n`);
    addFile(dir, 'value', () => filter.output.value.format());
    addFile(dir, 'collected_value', () => filter.collected?.format() ?? '');
    attributeFiles(dir, type.attributes ?? [], ctx, () => {
      filter.behaviour.configure?.();
      filter.produce(host.timers.now());
    });
    portInstances.forEach((port, i) => addPort(dir, port, type.ports![i]!));
    slot.source = { kind: 'filter', filter };
    filter.produce(host.timers.now());
    filter.output.subscribe(slot, host.timers.now());
  },

  remove(node, path) {
    const filter = node.slot;
    if (filter.source) throw fail('ENOTEMPTY', `${path} still has a source (${describeSource(filter)}); remove it first`);
    const linked = filter.ports.filter((p) => p.source !== null).map((p) => p.name);
    if (linked.length > 0)
      throw fail('ENOTEMPTY', `${path} still has sources on port(s) ${linked.join(', ')}; remove the links and filters first`);
    const owner = node.parent.slot;
    filter.output.unsubscribe(owner);
    owner.source = null;
    filter.destroy();
  },

  destroy(node) {
    node.slot.destroy();
  },

  check: checkSlot,
};
