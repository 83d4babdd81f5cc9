/** A probe's source: one output value that ports and filters link to. */
import type { ProbeInstance } from '../instances.js';
import type { ProbeType } from '../types.js';
import type { RoleSpec, TreeHost } from './host.js';
import { addFile, attach, dirFields, type Dir, type DirNode } from './nodes.js';

export type SourceNode = Dir<'source', { probe: ProbeInstance; sourceIndex: number }>;

declare module './nodes.js' {
  interface DirNodes {
    source: SourceNode;
  }
}

export function addSource(host: TreeHost, dir: DirNode, probe: ProbeInstance, source: ProbeType['sources'][number], index: number): void {
  const sdir = attach<SourceNode>({ ...dirFields(source.name, dir), role: 'source', probe, sourceIndex: index });
  addFile(sdir, 'value', () => {
    if (probe.periodMs === 0) probe.refresh(host.timers.now());
    return probe.outputs[index]!.value.format();
  });
  addFile(sdir, 'type', () => `${source.valueType}\n`);
  addFile(sdir, 'description', () => `${source.description}\n`);
}

/** The output a link to this source subscribes to. */
export function outputOf(source: SourceNode) {
  return source.probe.outputs[source.sourceIndex]!;
}

export const sourceRole: RoleSpec<SourceNode> = { role: 'source' };
