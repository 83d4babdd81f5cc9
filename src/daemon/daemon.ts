/**
 * Wiring of the node agent: store, cgroup backend, agent, control loop, API socket,
 * per-slice sockets and metrics. `startDaemon` returns once the API is being served.
 */
import { chmodSync, chownSync, mkdirSync, unlinkSync, existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { resolve } from 'node:path';
import type { Registry } from 'prom-client';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { EmbeddedStore } from '../cluster/embedded-store.js';
import { joinCluster, type NodeCluster } from './cluster.js';
import { guardServices } from './guard.js';
import { startDashboard, type Dashboard } from './dashboard.js';
import type { WebInfo } from '../wire/web.js';
import { createBackend } from '../kernel/cgroup/detect.js';
import { SliceAgent } from './agent.js';
import { checkNetPools, createNetworks } from './net.js';
import { lookupUser } from '../kernel/users.js';
import { CpuController } from './controller.js';
import { startFramework, type Framework } from './framework.js';
import { mountTree, type TreeMount } from './fuse-mount.js';
import { readSessionOf } from '../kernel/node-stats.js';
import { Views } from './views.js';
import { buildAdminApi } from './http/admin.js';
import { SliceSockets } from './slice-sockets.js';
import { buildRegistry, serveMetrics } from './metrics.js';
import { vsysLimits, type SlicedConfig } from './config.js';
import { preflight, socketAnswers } from './preflight.js';
import { raiseOpenFilesLimit } from '../kernel/open-files.js';
import { VsysBroker } from '../vsys/broker.js';
import { SimulationStore } from './simulations.js';
import { SlicedError } from '../core/errors.js';
import { loadBfq } from '../kernel/block-devices.js';
import { SliceCatalog } from '../cluster/slice-catalog.js';
import { ClusterChanges, localChanges, type ChangeRunner } from './changes.js';
import { SliverSync } from './sliver-sync.js';
import { startTasks, TaskMigrationPort, type NodeTasks } from './task-setup.js';

const NET_REFRESH_MS = 10_000;
/** How often sliced looks whether BFQ's weight files appeared (the bfq module was loaded). */
const IO_WEIGHT_REFRESH_MS = 2_000;
/** Log lines kept while the log file cannot be written (its filesystem full); more are dropped. */
const LOG_BUFFER_MAX = 8 * 2 ** 20;

export interface Daemon {
  config: SlicedConfig;
  agent: SliceAgent;
  controller: CpuController;
  framework: Framework;
  views: Views;
  vsys: VsysBroker;
  /** Where changes to slices, domains and reservations go: the agent, or the cluster's catalogue. */
  changes: ChangeRunner;
  /** The dashboard's address and sign-in link (sliced --web), or null. */
  web: WebInfo | null;
  log: Logger;
  close(): Promise<void>;
}

export function createLogger(config: SlicedConfig): Logger {
  // Synchronous file writes: the file is open before the first line, so an early exit (--cleanup,
  // a refused start) never meets an unopened stream, and no line is lost on a crash.
  const destination = config.logFile
    ? pino.destination({ dest: config.logFile, mkdir: true, sync: true, maxLength: LOG_BUFFER_MAX })
    : pino.destination(2);
  if (config.logFile) {
    // A full filesystem must not make every log call throw (and the daemon with it): lines
    // wait in a bounded buffer and are written once there is space; stderr says so once.
    let failing = false;
    destination.on('error', (err: Error) => {
      if (!failing)
        process.stderr.write(
          `sliced: cannot write the log file ${config.logFile}: ${err.message}; up to ${LOG_BUFFER_MAX / 2 ** 20}M of lines wait in ` +
            `memory until it can\n`,
        );
      failing = true;
    });
    destination.on('write', () => (failing = false));
  }
  return pino({ level: config.logLevel, base: { daemon: 'sliced', pid: process.pid } }, destination);
}

/**
 * cpu weight of sliced's root group, chosen so that under full contention one busy system
 * task still gets about the system reserve: reserve / (1 - reserve) of the slices' weight.
 */
export function rootWeightFor(reserveFraction: number): number {
  const fraction = Math.min(0.5, Math.max(0.01, reserveFraction));
  return Math.round((100 * (1 - fraction)) / fraction);
}

export async function startDaemon(config: SlicedConfig, log: Logger = createLogger(config)): Promise<Daemon> {
  // Validate everything first: a refused start must leave nothing behind.
  const { node, layout, adminGid, defaultTree } = await preflight(config);
  await checkNetPools(config, node);
  // The metrics port is taken now too (answering 503 until ready): one in use refuses the start here.
  let registry: Registry | null = null;
  const metrics = config.metricsPort === null ? null : await serveMetrics(() => registry, config.metricsPort);
  // Slices may saturate every CPU; the controller and the API must still run on time.
  setPriority(config.daemonNice);
  const files = raiseOpenFilesLimit();
  if (files.error !== null) log.warn({ limit: files.before, err: files.error }, 'could not raise the open-files limit to its hard limit');
  else if (files.after.soft !== files.before.soft)
    log.info({ from: files.before.soft, to: files.after.soft }, 'open-files limit raised to the hard limit');
  const backend = createBackend(layout);
  let store: EmbeddedStore;
  let cluster: NodeCluster;
  try {
    store = await EmbeddedStore.open(config.stateDir);
  } catch (err) {
    metrics?.close();
    throw err;
  }
  try {
    // Before anything touches the kernel: a node that cannot join refuses to start.
    cluster = await joinCluster(config, node, store, log);
  } catch (err) {
    metrics?.close();
    await store.close();
    throw err;
  }
  const net = createNetworks(config, node, { backend, store, log, userOf: (spec) => lookupUser(spec.user) });
  const agent = new SliceAgent({
    store,
    backend,
    node,
    log,
    stopGraceMs: config.stopGraceMs,
    rootWeight: rootWeightFor(node.systemReserveMillicores / node.cpuMillicores),
    attachAnyMemoryCgroup: config.attachAnyMemoryCgroup,
    userPrefix: config.userPrefix,
    userOwner: resolve(config.stateDir),
    net,
  });
  let controller: CpuController | null = null;
  let framework: Framework | null = null;
  let mount: TreeMount | null = null;
  let api: FastifyInstance | null = null;
  let sockets: SliceSockets | null = null;
  let vsys: VsysBroker | null = null;
  let slivers: SliverSync | null = null;
  let tasks: NodeTasks | null = null;
  let dashboard: Dashboard | null = null;
  try {
    await agent.start();
    await guardServices(config, backend, log);
    let changes: ChangeRunner = localChanges(agent);
    if (cluster.mode === 'etcd') {
      const membership = cluster.membership;
      const catalog = new SliceCatalog(cluster.store, membership.name, () => membership.list(), log);
      slivers = await SliverSync.start({
        store: cluster.store,
        catalog,
        agent,
        localStore: store,
        node: membership.name,
        capacity: node,
        leaseId: () => membership.leaseId,
        log,
      });
      changes = new ClusterChanges(catalog, slivers, membership.name);
    }
    controller = new CpuController(agent, { periodMs: config.controlPeriodMs, mode: config.cpuControl, gain: config.feedbackGain, log });
    const views = new Views(agent, controller, { dir: config.stateDir, health: () => store.health() });
    // The control loop runs as components of the config tree (slice_usage -> entitlement).
    const taskMigration = new TaskMigrationPort();
    framework = await startFramework({ config, agent, controller, views, store, log, defaultTree, cluster, taskMigration });
    const tree = framework.tree;

    mkdirSync(config.runDir, { recursive: true, mode: 0o755 });
    sockets = new SliceSockets(config.runDir, agent, views, log, {
      maxPerSlice: config.sliceSocketMaxConnections,
      maxTotal: config.sliceSocketMaxTotal,
      timeoutMs: config.sliceSocketTimeoutMs,
    });
    await sockets.ready();
    sockets.sync();
    const slicesSockets = sockets;
    agent.onChange(() => slicesSockets.sync());

    const broker = new VsysBroker(
      { servicesDir: config.vsysDir, sliceRoot: config.vsysSliceRoot, limits: vsysLimits(config), log },
      {
        sliceUsers: () => new Map([...agent.state.slices.values()].map((spec) => [spec.name, agent.userOf(spec)])),
        procsFiles: (slice) => agent.procsFiles(slice),
      },
    );
    vsys = broker;
    broker.start();
    agent.onChange(() => broker.sync());

    tasks = await startTasks({ config, cluster, agent, changes, tree, log });
    taskMigration.bind(tasks.migration);
    api = buildAdminApi({
      agent,
      changes,
      views,
      cluster,
      tasks: tasks.service,
      loads: framework.loads,
      tree: { service: framework.service, tree },
      broker,
      web: () => dashboard?.info ?? null,
      simulations: new SimulationStore(config.stateDir, log),
      placement: (slice, parentPid) => {
        const answer = tree.placeNewTask({ parentPid, sessionId: readSessionOf(parentPid), slice });
        if (answer.refused) throw new SlicedError('EBUSY', `scheduler ${answer.scheduler} refuses new tasks now: ${answer.refused}`);
      },
    });
    sockets.setTree(framework.service);
    if (config.mount !== null)
      mount = await mountTree(framework.service, config, log, (name) => {
        const spec = agent.state.slices.get(name);
        return spec ? agent.uidOf(spec) : null;
      });
    await listenPrivate(api, config, adminGid, log);
    dashboard = await startDashboard(config, { api, views, controller, agent, log });
    if (metrics) {
      registry = buildRegistry(views, agent, sockets);
      log.info({ port: config.metricsPort }, 'metrics on 127.0.0.1');
    }
    log.info(
      { backend: backend.kind, roots: backend.rootDirectories(), socket: config.socket, capacity: node, cpuControl: config.cpuControl },
      'sliced ready',
    );
    // Counter offsets are made durable now and then, so a crash loses no counted traffic
    // (kernel counters outlive the daemon; the persisted offsets say where they were).
    const refresh = net
      ? setInterval(
          () => void net.refresh(agent.state).catch((err: Error) => log.warn({ err: err.message }, 'accounting refresh failed')),
          NET_REFRESH_MS,
        )
      : null;
    refresh?.unref();
    // Kernel builds differ: where bfq is a module nothing may have loaded it yet. Loading it
    // switches no device; stored io.weight values then reach BFQ's weight files.
    const refreshIoWeights = (): void =>
      void agent.refreshIoWeights().catch((err: Error) => log.warn({ err: err.message }, 'writing io.weight failed'));
    void loadBfq().then((problem) => {
      if (problem !== null) log.info({ reason: problem }, 'no bfq I/O scheduler: io.weight has no effect, caps apply');
      refreshIoWeights();
    });
    const ioWeights = setInterval(refreshIoWeights, IO_WEIGHT_REFRESH_MS);
    ioWeights.unref();
    const started = { framework, api, sockets, metrics, mount, tasks, dashboard };
    return {
      config,
      agent,
      controller,
      framework,
      views,
      vsys: broker,
      changes,
      web: dashboard?.info ?? null,
      log,
      async close() {
        await started.mount?.unmount();
        started.framework.close();
        if (refresh) clearInterval(refresh);
        clearInterval(ioWeights);
        await started.dashboard?.close();
        await started.api.close();
        await started.tasks.close();
        await net?.refresh(agent.state).catch((err: Error) => log.warn({ err: err.message }, 'last accounting refresh failed'));
        started.sockets.closeAll();
        await broker.close();
        started.metrics?.close();
        slivers?.close();
        await cluster.close();
        await store.close();
        try {
          unlinkSync(config.socket);
        } catch {
          // Already gone.
        }
        log.info('sliced stopped; slices keep running and are adopted at the next start');
        log.flush?.();
      },
    };
  } catch (err) {
    await mount?.unmount();
    framework?.close();
    await dashboard?.close();
    await api?.close();
    await tasks?.close();
    sockets?.closeAll();
    metrics?.close();
    await vsys?.close();
    slivers?.close();
    await cluster.close();
    await store.close();
    throw err;
  }
}

/** Listen on the API socket with mode 0600 (0660 and the admin group's gid when configured). */
async function listenPrivate(api: FastifyInstance, config: SlicedConfig, gid: number | null, log: Logger): Promise<void> {
  if (existsSync(config.socket)) {
    // Checked at start already; this catches a daemon that started meanwhile.
    if (await socketAnswers(config.socket)) {
      throw new SlicedError('EBUSY', `another sliced is already serving ${config.socket}`);
    }
    unlinkSync(config.socket);
  }
  const previousMask = process.umask(0o177);
  try {
    await api.listen({ path: config.socket });
  } finally {
    process.umask(previousMask);
  }
  if (gid !== null) {
    chownSync(config.socket, 0, gid);
    chmodSync(config.socket, 0o660);
  } else {
    chmodSync(config.socket, 0o600);
  }
  log.info({ socket: config.socket, adminGroup: config.adminGroup }, 'API listening');
}
