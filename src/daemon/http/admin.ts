/**
 * The admin API on the root-only Unix socket: one fastify plugin per area, each registered
 * under its prefix. Every body is validated with the zod schemas of src/core/model.ts;
 * errors come back as {"error": {"code", "message"}} with a status that matches the code
 * (http/errors.ts).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { SliceAgent } from '../agent.js';
import type { Views } from '../views.js';
import type { TreeService } from '../../framework/service.js';
import type { ConfigTree } from '../../framework/tree.js';
import type { VsysBroker } from '../../vsys/broker.js';
import { SlicedError } from '../../core/errors.js';
import { errorHandler, frameworkErrorHandler, sendError } from './errors.js';
import { registerJsonParser } from './json-body.js';
import { nodeRoutes } from './node.js';
import { nodesRoutes } from './nodes.js';
import type { NodeCluster } from '../cluster.js';
import type { ChangeRunner } from '../changes.js';
import { sliceRoutes, type ExecPlacement } from './slices.js';
import { domainRoutes } from './domains.js';
import { ioRoutes } from './io.js';
import { netRoutes } from './net.js';
import { placementRoutes, treeRoutes } from './tree.js';
import { vsysRoutes } from './vsys.js';
import { taskRoutes } from './tasks.js';
import { simulationRoutes } from './simulations.js';
import type { SimulationStore } from '../simulations.js';
import type { TaskService } from '../tasks.js';
import type { NodeLoads } from '../node-loads.js';
import type { WebInfo } from '../../wire/web.js';

/** What the admin API's areas work on. */
export interface AdminApiServices {
  agent: SliceAgent;
  /** Where changes to slices, domains and reservations go (the agent, or the cluster's catalogue). */
  changes: ChangeRunner;
  views: Views;
  /** The config tree: its operations (as the CLI verbs and the FUSE mount) and new-task placement. */
  tree: { service: TreeService; tree: ConfigTree };
  broker: VsysBroker;
  /** This node's cluster and its members. */
  cluster: NodeCluster;
  /** Cluster tasks (slicectl run, slicectl task). */
  tasks: TaskService;
  /** The members' last published loads. */
  loads: NodeLoads;
  /** Asked before `slicectl exec` starts a task (throws when a scheduler refuses). */
  placement?: ExecPlacement;
  /** The dashboard's address and sign-in link, or null when it is off. */
  web?: () => WebInfo | null;
  /** Saved simulations (slicectl simulate --save). */
  simulations: SimulationStore;
}

export function buildAdminApi({
  agent,
  changes,
  views,
  tree,
  broker,
  cluster,
  tasks,
  loads,
  placement,
  web,
  simulations,
}: AdminApiServices): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024, frameworkErrors: frameworkErrorHandler });
  registerJsonParser(app);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new SlicedError('ENOENT', `no such endpoint: ${request.method} ${request.url}`)),
  );

  void app.register(nodeRoutes, { prefix: '/v1', views });
  void app.register(nodesRoutes, { prefix: '/v1/nodes', cluster, changes, tasks, loads });
  void app.register(sliceRoutes, { prefix: '/v1/slices', agent, changes, views, placement });
  void app.register(domainRoutes, { prefix: '/v1/domains', agent, changes, views });
  void app.register(ioRoutes, { prefix: '/v1/io', agent, views });
  void app.register(treeRoutes, { prefix: '/v1/tree', service: tree.service });
  void app.register(placementRoutes, { prefix: '/v1/placement', tree: tree.tree });
  void app.register(vsysRoutes, { prefix: '/v1/vsys', broker });
  void app.register(netRoutes, { prefix: '/v1/net', agent, changes });
  void app.register(taskRoutes, { prefix: '/v1/tasks', tasks });
  void app.register(simulationRoutes, { prefix: '/v1/simulations', simulations });
  app.get('/v1/web', async () => {
    const info = web?.() ?? null;
    if (info === null) throw new SlicedError('ENOENT', 'the dashboard is off on this node (sliced --web HOST:PORT, or web: in the config)');
    return info;
  });
  return app;
}
