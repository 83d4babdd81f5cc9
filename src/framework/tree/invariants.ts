/** The tree's internal consistency, checked by tests and fuzzing: shape, and sources agreeing with their subscribers. */
import type { Output } from '../dataflow.js';
import type { SlotOwner } from '../instances.js';
import { pathOf, type DirNode } from './nodes.js';
import { MAX_DEPTH } from './path.js';
import { roleOf } from './roles.js';

/** The problems found (empty when sound). */
export function checkInvariants(root: DirNode): string[] {
  const problems: string[] = [];
  const outputs = new Map<Output, Set<SlotOwner>>();
  const slots: SlotOwner[] = [];
  const visit = (dir: DirNode, depth: number): void => {
    if (depth > MAX_DEPTH) problems.push(`${pathOf(dir)} is deeper than ${MAX_DEPTH}`);
    for (const [name, child] of dir.children) {
      if (child.name !== name || child.parent !== dir) problems.push(`${pathOf(dir)}/${name}: wrong name or parent`);
      if (child.kind === 'dir') visit(child, depth + 1);
    }
    if (dir.role === 'probe') for (const o of dir.probe.outputs) outputs.set(o, new Set(o.subscribers as SlotOwner[]));
    if (dir.slot) slots.push(dir.slot);
    problems.push(...(roleOf(dir).check?.(dir) ?? []));
  };
  visit(root, 0);
  for (const slot of slots) {
    if (slot.source?.kind === 'link' && !outputs.get(slot.source.output)?.has(slot))
      problems.push(`a link source does not list its subscriber`);
  }
  for (const [output, subs] of outputs) {
    for (const sub of subs)
      if (!slots.includes(sub) || (sub.source?.kind === 'link' && sub.source.output !== output))
        problems.push('a probe source publishes to a removed or foreign subscriber');
  }
  return problems;
}
