/** A probe: a component under /probes with its probe_period, attributes and sources. */
import { ProbeInstance } from '../instances.js';
import type { RoleSpec } from './host.js';
import { attributeFiles, loadType, parseNumber } from './component.js';
import { addFile, attach, dirFields, fail, pathOf, type Dir } from './nodes.js';
import type { ProbesNode } from './root.js';
import { addSource } from './source.js';

export type ProbeNode = Dir<'probe', { probe: ProbeInstance }>;

declare module './nodes.js' {
  interface DirNodes {
    probe: ProbeNode;
  }
}

/** A probe's probe_period, as its write checks it. */
export function parseProbePeriod(text: string): number {
  return parseNumber(text, 'probe_period', 0, 3_600_000, 'a whole number of milliseconds from 0 (refresh only when read) to 3600000');
}

export const probeRole: RoleSpec<ProbeNode, ProbesNode> = {
  role: 'probe',
  under: ['probes'],

  async create(host, parent, name, { seq }) {
    const type = await loadType(host.registry, name, 'probe', pathOf(parent));
    if (parent.children.has(name)) throw fail('EEXIST', `/probes/${name} already exists`);
    const ctx = host.context(`/probes/${name}`, type);
    const instance = new ProbeInstance(
      type,
      type.create(ctx),
      ctx,
      type.sources.map((s) => host.registry.valueType(s.valueType)),
      host.timers,
    );
    const dir = attach<ProbeNode>({ ...dirFields(name, parent, { userMade: true, seq }), role: 'probe', probe: instance });
    addFile(dir, 'description', () => `${type.description}\n`);
    addFile(dir, 'probe_period', () => `${instance.periodMs}\n`, {
      config: true,
      check: parseProbePeriod,
      write: (text) => {
        const value = parseProbePeriod(text);
        instance.setPeriod(value);
      },
    });
    attributeFiles(dir, type.attributes ?? [], ctx, () => undefined);
    type.sources.forEach((source, index) => addSource(host, dir, instance, source, index));
    instance.start();
    instance.refresh(host.timers.now());
  },

  remove(node, path) {
    const users = node.probe.outputs.reduce((n, o) => n + o.subscribers.length, 0);
    if (users > 0) throw fail('EBUSY', `${path} is in use: ${users} link(s) point to its sources; remove them first`);
    node.probe.destroy();
  },

  destroy(node) {
    node.probe.destroy();
  },
};
