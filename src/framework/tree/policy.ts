/** A scheduler's policy: a component with ports, its status, and the scheduler's placement answers. */
import { makePorts, PolicyInstance } from '../instances.js';
import type { ComponentContext } from '../types.js';
import type { Value } from '../value.js';
import type { RoleSpec } from './host.js';
import { attributeFiles, loadType } from './component.js';
import { addFile, attach, dirFields, fail, pathOf, type Dir } from './nodes.js';
import { addPort } from './port.js';
import { processSetView } from './process-set.js';
import type { SchedulerNode } from './scheduler.js';

export type PolicyNode = Dir<'policy', { policy: PolicyInstance }>;

declare module './nodes.js' {
  interface DirNodes {
    policy: PolicyNode;
  }
}

export const policyRole: RoleSpec<PolicyNode, SchedulerNode> = {
  role: 'policy',
  under: ['scheduler'],

  async create(host, parent, name, { seq }) {
    if (name === 'process_set') throw fail('EEXIST', `${pathOf(parent)}/process_set already exists`);
    const type = await loadType(host.registry, name, 'policy', pathOf(parent));
    const scheduler = parent.scheduler;
    if (scheduler.policy) {
      throw fail(
        'EBUSY',
        `scheduler ${scheduler.name} already has policy ${scheduler.policy.type.name}; a scheduler holds one policy (remove it to ` +
          `replace it)`,
      );
    }
    if (parent.children.has(name)) throw fail('EEXIST', `${pathOf(parent)}/${name} already exists`);
    const path = `${pathOf(parent)}/${name}`;
    const ports: Record<string, Value | null> = {};
    const ctx: ComponentContext = { ...host.context(path, type), processSet: processSetView(host, scheduler.processSet), ports };
    const policy = new PolicyInstance(type, ctx, scheduler, host.services.log);
    policy.ports = makePorts(
      type.ports,
      (name) => host.registry.valueType(name),
      ports,
      (i) => (value, now) => policy.activate(i, value, now),
    );
    policy.behaviour = type.create(ctx);
    scheduler.policy = policy;
    const dir = attach<PolicyNode>({ ...dirFields(name, parent, { userMade: true, seq }), role: 'policy', policy });
    addFile(dir, 'description', () => `${type.description}\n`);
    addFile(
      dir,
      'status',
      () =>
        `${JSON.stringify({ activations: policy.activations, failures: policy.failures, ...(policy.behaviour.status?.() ?? {}) }, null, 2)}\n`,
    );
    attributeFiles(dir, type.attributes ?? [], ctx, () => policy.behaviour.configure?.());
    policy.ports.forEach((port, i) => addPort(dir, port, type.ports[i]!));
  },

  remove(node, path) {
    const linked = node.policy.ports.filter((p) => p.source !== null).map((p) => p.name);
    if (linked.length > 0)
      throw fail('ENOTEMPTY', `${path} still has sources on port(s) ${linked.join(', ')}; remove the links and filters first`);
    node.policy.destroy();
    node.policy.scheduler.policy = null;
  },

  destroy(node) {
    node.policy.destroy();
  },
};
