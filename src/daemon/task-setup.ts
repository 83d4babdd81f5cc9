/**
 * Cluster tasks on this node, wired: the task store over the cluster store (this node's own
 * store when alone), the runner of this node's tasks, the node-to-node channel when
 * configured (cluster.peer) and the service the API calls.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { TaskStore } from '../cluster/task-store.js';
import { TaskIndex } from '../cluster/task-index.js';
import { PeerClient } from '../cluster/peer-client.js';
import { readPeerCredentials } from '../cluster/peer-auth.js';
import type { ConfigTree } from '../framework/tree.js';
import type { TaskMigration } from '../framework/handle.js';
import type { SliceAgent } from './agent.js';
import type { ChangeRunner } from './changes.js';
import type { NodeCluster } from './cluster.js';
import type { SlicedConfig } from './config.js';
import { listenPeer } from './peer.js';
import { TaskRunner } from './task-runner.js';
import { TaskService } from './tasks.js';
import { TaskFailover } from './task-failover.js';
import { TaskCollector } from './task-gc.js';
import { Leadership } from '../cluster/leader.js';

export interface NodeTasks {
  service: TaskService;
  /** What balancers of the config tree move tasks through. */
  migration: TaskMigration;
  close(): Promise<void>;
}

/**
 * The taskMigration service of the config tree, made before the tasks exist (the tree starts
 * first) and bound to them once they do; until then no task is known and none moves.
 */
export class TaskMigrationPort implements TaskMigration {
  private target: TaskMigration | null = null;

  bind(target: TaskMigration): void {
    this.target = target;
  }

  taskOf(pid: number): string | null {
    return this.target?.taskOf(pid) ?? null;
  }

  migrate(task: string, node: string, by: string): Promise<void> {
    if (!this.target) return Promise.reject(new Error('tasks are not running yet'));
    return this.target.migrate(task, node, by);
  }

  lastMigration(): number | null {
    return this.target?.lastMigration() ?? null;
  }

  migrationsUnderWay(): number {
    return this.target?.migrationsUnderWay() ?? 0;
  }
}

/** The fence file of this node's tasks (kernel/fence.ts), removed by sliced --cleanup (which ends its watchdog). */
export function fenceFile(config: SlicedConfig): string {
  return join(config.runDir, 'tasks.fence');
}

/** A stop waits this much longer than the grace period for the node's report. */
const STOP_REPORT_MARGIN_MS = 5000;

export async function startTasks(opts: {
  config: SlicedConfig;
  cluster: NodeCluster;
  agent: SliceAgent;
  changes: ChangeRunner;
  tree: ConfigTree;
  log: Logger;
}): Promise<NodeTasks> {
  const { config, cluster, agent, log } = opts;
  const node = cluster.membership.name;
  const tasks = new TaskStore(cluster.store);
  const logRoot = join(config.stateDir, 'tasks');
  const peerConfig = config.cluster?.peer;
  const credentials = peerConfig ? readPeerCredentials(peerConfig) : null;
  const index = new TaskIndex(tasks, log);
  await index.open();
  const runner = new TaskRunner({
    node,
    tasks,
    index,
    logRoot,
    planFor: (slice) => agent.execPlan(slice, process.pid),
    log,
    stopGraceMs: config.stopGraceMs,
    // A node alone has no one to take its tasks over: nothing to fence.
    fence: cluster.mode === 'etcd' ? { file: fenceFile(config), leaseExpiresAt: () => cluster.membership.leaseExpiresAt } : null,
  });
  await runner.open();
  let server: FastifyInstance | null = null;
  try {
    if (peerConfig && credentials) {
      server = await listenPeer({ node, listen: peerConfig.listen, credentials, runner, logRoot, log });
      log.info({ listen: peerConfig.listen, auth: credentials.kind }, 'node-to-node channel listening');
    }
  } catch (err) {
    await runner.close();
    index.close();
    throw err;
  }
  const service = new TaskService({
    node,
    tasks,
    index,
    membership: cluster.membership,
    changes: opts.changes,
    state: () => agent.state,
    place: (task, scheduler) => (scheduler === null ? opts.tree.placeNewTask(task) : opts.tree.placeNewTaskWith(scheduler, task)),
    runner,
    peer: credentials && new PeerClient(credentials),
    logRoot,
    stopWaitMs: config.stopGraceMs + STOP_REPORT_MARGIN_MS,
  });
  // In a cluster, the leader places again the tasks of nodes that went down.
  let leadership: Leadership | null = null;
  let failover: TaskFailover | null = null;
  if (cluster.mode === 'etcd') {
    leadership = new Leadership(cluster.store, node, () => cluster.membership.leaseId, log);
    await leadership.start();
    failover = new TaskFailover({ tasks, index, membership: cluster.membership, leadership, service, log });
    failover.start();
  }
  const collector = new TaskCollector({ service, retentionMs: config.taskRetentionMs, leadership, log });
  collector.start();
  return {
    service,
    migration: {
      taskOf: (pid) => runner.migratableTaskOf(pid),
      migrate: async (task, to, by) => void (await service.migrate(task, to, by)),
      lastMigration: () => runner.lastMigration,
      migrationsUnderWay: () => runner.movesUnderWay,
    },
    async close() {
      collector.close();
      failover?.close();
      leadership?.close();
      await server?.close();
      await runner.close();
      index.close();
    },
  };
}
