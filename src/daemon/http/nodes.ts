/**
 * The cluster's members (registered under /v1/nodes): list, show, label and cordon from any
 * node, and remove a node that is down. On the admin socket only, like every change.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../../core/model.js';
import { checkNodeName, parseLabelArgs, type LabelChanges, type NodeView } from '../../core/membership.js';
import type { NodeLoads } from '../node-loads.js';
import type { NodeChange, NodeEntry, NodeList } from '../../wire/nodes.js';
import type { NodeCluster } from '../cluster.js';
import type { ChangeRunner } from '../changes.js';
import type { TaskService } from '../tasks.js';

export interface NodesRoutesOptions {
  cluster: NodeCluster;
  /** Where a removed node's slivers are forgotten. */
  changes: ChangeRunner;
  /** Where a drained node's tasks move from. */
  tasks: TaskService;
  /** The members' last published loads. */
  loads: NodeLoads;
}

const changeBody = z
  .object({ labels: z.record(z.string(), z.string().nullable()).optional(), cordoned: z.boolean().optional() })
  .strict()
  .refine((b) => b.labels !== undefined || b.cordoned !== undefined, 'give labels or cordoned');

type NameParams = { Params: { name: string } };

export const nodesRoutes: FastifyPluginAsync<NodesRoutesOptions> = async (app, { cluster, changes, tasks, loads }) => {
  const { membership } = cluster;
  const withLoad = (n: NodeView): NodeEntry => ({
    ...n,
    self: n.name === membership.name,
    load: n.status === 'up' ? loads.of(n.name) : null,
  });
  const entry = (name: string): NodeEntry => withLoad(membership.get(name));
  app.get('', async (): Promise<NodeList> => ({
    mode: cluster.mode,
    endpoints: [...cluster.endpoints],
    nodes: membership.list().map(withLoad),
  }));
  app.get<NameParams>('/:name', async (request) => entry(checkNodeName(request.params.name)));
  app.patch<NameParams>('/:name', async (request) => {
    const name = checkNodeName(request.params.name);
    const body: NodeChange = parseInput(changeBody, request.body, 'node change');
    membership.get(name);
    if (body.labels !== undefined) {
      const changes: LabelChanges = { set: {}, remove: [] };
      for (const [key, value] of Object.entries(body.labels)) {
        if (value === null) changes.remove.push(key);
        else changes.set[key] = value;
      }
      await membership.label(name, validated(changes));
    }
    if (body.cordoned !== undefined) await membership.setCordoned(name, body.cordoned);
    return entry(name);
  });
  app.post<NameParams>('/:name/drain', async (request) => {
    const name = checkNodeName(request.params.name);
    membership.get(name);
    return tasks.drain(name);
  });
  app.delete<NameParams>('/:name', async (request) => {
    const name = checkNodeName(request.params.name);
    await membership.remove(name);
    // A removed node is gone for good: its slivers go with it (a node that comes back starts empty).
    const slivers = await changes.forgetNode(name);
    return { deleted: name, slivers };
  });
};

/** The same checks as `slicectl node label` arguments, for bodies sent by other clients. */
function validated(changes: LabelChanges): LabelChanges {
  parseLabelArgs([...Object.entries(changes.set).map(([k, v]) => `${k}=${v}`), ...changes.remove.map((k) => `${k}-`)]);
  return changes;
}
