/**
 * What ports and filters share: one input slot, fed by a link to a probe source or by a
 * filter directory below it.
 */
import type { SlotOwner } from '../instances.js';
import type { TreeHost } from './host.js';
import { fail, pathOf, type LinkNode, type SlotDir } from './nodes.js';
import { outputOf, type SourceNode } from './source.js';

export function describeSource(slot: SlotOwner): string {
  if (!slot.source) return 'none';
  return slot.source.kind === 'link' ? `link ${slot.source.linkName} -> ${slot.source.target}` : `filter ${slot.source.filter.type.name}`;
}

/** Refuse a second source for a slot (EPERM). */
export function checkSlotFree(dir: SlotDir): void {
  if (dir.slot.source) throw fail('EPERM', `${pathOf(dir)} already has a source (${describeSource(dir.slot)}); remove it first`);
}

/** Link `source` into the slot of `dir` under `name` (the caller checked the name and that it is free). */
export function linkSource(host: TreeHost, dir: SlotDir, name: string, source: SourceNode, seq: number): LinkNode {
  const slot = dir.slot;
  checkSlotFree(dir);
  const output = outputOf(source);
  if (!slot.linkTypes.includes(output.value.type)) {
    throw fail(
      'EINVAL',
      `cannot link ${pathOf(source)} (values of type ${output.value.type.name}) to ${pathOf(dir)} ` +
        `(expects ${slot.linkTypes.map((t) => t.name).join(' or ')}): value types must be equal`,
    );
  }
  const target = pathOf(source);
  slot.source = { kind: 'link', linkName: name, target, output };
  output.subscribe(slot, host.timers.now());
  const link: LinkNode = { kind: 'link', name, parent: dir, target, seq };
  dir.children.set(name, link);
  return link;
}

export function unlinkSource(link: LinkNode): void {
  const slot = link.parent.slot;
  if (slot.source?.kind === 'link') slot.source.output.unsubscribe(slot);
  slot.source = null;
  link.parent.children.delete(link.name);
}

/** A slot's entries agree with its source: at most one, and the one the instance uses. */
export function checkSlot(dir: SlotDir): string[] {
  const problems: string[] = [];
  const slot = dir.slot;
  const links = [...dir.children.values()].filter((c) => c.kind === 'link');
  const filters = [...dir.children.values()].filter((c) => c.kind === 'dir' && c.role === 'filter');
  if (links.length + filters.length > 1) problems.push(`${pathOf(dir)} has ${links.length + filters.length} sources`);
  if (slot.source === null && links.length + filters.length > 0) problems.push(`${pathOf(dir)} has a source entry but no source`);
  if (slot.source?.kind === 'link' && (links.length !== 1 || links[0]!.name !== slot.source.linkName))
    problems.push(`${pathOf(dir)}: link entry does not match its source`);
  if (slot.source?.kind === 'filter') {
    if (filters.length !== 1 || filters[0]!.slot !== slot.source.filter)
      problems.push(`${pathOf(dir)}: filter entry does not match its source`);
    const subs = slot.source.filter.output.subscribers;
    if (subs.length !== 1 || subs[0] !== slot)
      problems.push(`${pathOf(dir)}: its filter publishes to ${subs.length} subscribers instead of the slot`);
    if (slot.source.filter.valueType !== slot.valueType) problems.push(`${pathOf(dir)}: filter value type differs from the slot's`);
  }
  if (slot.source?.kind === 'link' && !slot.linkTypes.includes(slot.source.output.value.type))
    problems.push(`${pathOf(dir)}: linked value type differs`);
  return problems;
}
