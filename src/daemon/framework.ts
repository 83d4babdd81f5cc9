/**
 * Wiring of the scheduler framework into the node agent: the type registry (built-ins,
 * plugin folders, sliced-plugin-* packages), the typed services components get
 * (src/framework/handle.ts: /proc readings, the slices' groups, the controller, slice
 * freezing, CPU affinity, remote values), the read-only views under /slices,
 * /domains and /nodes, process lookups for process sets, and the tree service restored
 * from the store (the default tree, defaults/tree.yaml, on the first start).
 */
import { memoryPromised } from '../core/slivers.js';
import { fsSpace } from '../kernel/fs-space.js';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Store } from '../cluster/store.js';
import { ClusterRemoteValues } from '../cluster/remote-values.js';
import { NodeLoads } from './node-loads.js';
import type { Membership } from '../cluster/membership.js';
import type { NodeCluster } from './cluster.js';
import type { NodeView } from '../core/membership.js';
import { TypeRegistry } from '../framework/registry.js';
import { BUILTIN_TYPES } from '../components/builtins.js';
import { ConfigTree, type InfoProvider, type ProcessDirectory } from '../framework/tree.js';
import { ADMIN, TreeService } from '../framework/service.js';
import type { FrameworkServices, SliceGroups, TaskMigration } from '../framework/handle.js';
import type { SliceCandidate } from '../core/load-balancing.js';
import { sliceGroup, sliceKey } from '../core/layout.js';
import type { DesiredState, IoDeviceLimit } from '../core/model.js';
import { IO_CAP_FIELDS } from '../core/io.js';
import type { GroupPath } from '../kernel/cgroup/backend.js';
import { cpuOfProcess, pinProcessToCpu } from '../kernel/processes.js';
import { processAlive } from '../kernel/procfs.js';
import { procNodeStats, readSessionOf } from '../kernel/node-stats.js';
import type { SliceAgent } from './agent.js';
import type { CpuController } from './controller.js';
import type { Views } from './views.js';
import type { SlicedConfig } from './config.js';

export const DEFAULT_TREE_FILE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'defaults', 'tree.yaml');

export interface Framework {
  tree: ConfigTree;
  service: TreeService;
  registry: TypeRegistry;
  /** The members' loads (published through the framework's remote values). */
  loads: NodeLoads;
  close(): void;
}

export async function startFramework(options: {
  config: SlicedConfig;
  agent: SliceAgent;
  controller: CpuController;
  views: Views;
  store: Store;
  log: Logger;
  /** The default tree document, read and checked at start; read here when not given. */
  defaultTree?: string;
  /** The cluster (this node alone when it is not in one): its members for /nodes/, its store for remote values. */
  cluster: NodeCluster;
  /** Moving cluster tasks, for balancers (bound once the tasks run). */
  taskMigration: TaskMigration;
}): Promise<Framework> {
  const { config, agent, controller, views, store, log } = options;
  const nodeName = options.cluster.membership.name;
  const registry = new TypeRegistry({ builtins: BUILTIN_TYPES, pluginDirs: config.pluginDirs });
  const frameworkLog = log.child({ component: 'framework' });
  const { membership } = options.cluster;
  const remote = new ClusterRemoteValues(options.cluster.store, nodeName, () => membership.leaseId, frameworkLog);
  const loads = new NodeLoads(remote, () => views.load(), log);
  const services: FrameworkServices = {
    nodeName,
    log: frameworkLog,
    random: Math.random,
    nodeStats: procNodeStats(),
    cpuController: controller,
    remote: remote,
    affinity: { cpuOf: cpuOfProcess, pinToCpu: pinProcessToCpu },
    taskMigration: options.taskMigration,
    nodeAllocation: { memory: () => ({ capacityBytes: agent.node.memoryBytes, promisedBytes: memoryPromised(agent.state) }) },
    filesystems: { space: (path) => fsSpace(path) },
    sliceGroups: sliceGroups(agent),
    sliceFreezer: {
      candidates: (): SliceCandidate[] => {
        const snapshot = controller.snapshot();
        return [...agent.state.slices.values()].map((s) => ({
          name: s.name,
          shares: s.cpu.shares,
          usage: snapshot?.nodes.get(sliceKey(s.name))?.usage ?? 0,
        }));
      },
      setFrozen: (slice: string, frozen: boolean) => {
        void agent.backend
          .setFrozen(sliceGroup(agent.state, slice), frozen)
          .catch((err: Error) => frameworkLog.warn({ slice, frozen, err: err.message }, 'cannot change the freezer state of a slice'));
      },
    },
  };
  const tree = new ConfigTree({ registry, services, processes: processDirectory(agent) });
  tree.setProvider('slices', sliceViews(views));
  tree.setProvider('domains', domainViews(views));
  tree.setProvider('nodes', nodeViews(nodeName, views, membership, loads));
  const cluster = config.cluster && options.cluster.mode === 'etcd' ? config.cluster : null;
  const service = new TreeService(
    tree,
    registry,
    {
      local: store,
      ...(cluster ? { cluster: { store: options.cluster.store, nodeName, takeClusterTree: cluster.takeTree } } : {}),
    },
    frameworkLog,
  );
  await service.restore(() => options.defaultTree ?? readFileSync(config.defaultTree ?? DEFAULT_TREE_FILE, 'utf8'));
  await applyControlSettings(service, tree, config);
  controller.configure({ periodMs: config.controlPeriodMs });
  return {
    tree,
    service,
    registry,
    loads,
    close: () => {
      loads.close();
      service.close();
      tree.destroyAll();
      remote.close();
    },
  };
}

/**
 * controlPeriodMs, cpuControl and feedbackGain from the configuration are written into the
 * tree at every start (when the default components exist), so flags and the config file keep
 * their meaning; changes made in the tree at run time last until the next start.
 */
async function applyControlSettings(service: TreeService, tree: ConfigTree, config: SlicedConfig): Promise<void> {
  const settings: Array<[string, string]> = [
    ['/probes/slice_usage/probe_period', String(config.controlPeriodMs)],
    ['/schedulers/cpu/entitlement/mode', config.cpuControl],
    ['/schedulers/cpu/entitlement/gain', String(config.feedbackGain)],
  ];
  for (const [path, value] of settings) {
    if (tree.exists(path) && tree.read(path).trim() !== value) await service.write(ADMIN, path, value);
  }
}

/** The slices' groups for per-slice probes; labels stay the same array while the set of slices does. */
function sliceGroups(agent: SliceAgent): SliceGroups {
  let cache: { state: DesiredState; key: string; labels: readonly string[]; groups: GroupPath[] } | null = null;
  const backend = agent.backend;
  return {
    readCpuNs: (group) => backend.readCpuUsageNs([...group]),
    readIo: (group) => backend.readIo(group),
    readMemory: (group) => backend.readMemory(group),
    readPressure: (group, resource) => backend.readPressure(group, resource),
    list() {
      const state = agent.state;
      if (cache?.state !== state) {
        const names = [...state.slices.keys()].sort();
        const key = names.join('\n');
        const labels = cache?.key === key ? cache.labels : Object.freeze(names.map(sliceKey));
        // Paths are recomputed on every change: a move into a domain changes the group.
        cache = { state, key, labels, groups: names.map((n) => sliceGroup(state, n)) };
      }
      return { labels: cache.labels, groups: cache.groups };
    },
  };
}

function processDirectory(agent: SliceAgent): ProcessDirectory {
  return {
    exists: (pid) => processAlive(pid),
    sessionMembers: (sid) => {
      const out: number[] = [];
      for (const entry of readdirSync('/proc')) {
        if (/^\d+$/.test(entry) && readSessionOf(Number(entry)) === sid) out.push(Number(entry));
      }
      return out;
    },
    slicePids: (slice) => {
      try {
        return agent.backend.procs(sliceGroup(agent.state, slice));
      } catch {
        return [];
      }
    },
    sliceExists: (slice) => agent.state.slices.has(slice),
    sessionOf: (pid) => readSessionOf(pid),
    sliceOf: (pid) => {
      for (const name of agent.state.slices.keys()) {
        try {
          if (agent.backend.procs(sliceGroup(agent.state, name)).includes(pid)) return name;
        } catch {
          // being deleted
        }
      }
      return null;
    },
  };
}

const line = (value: unknown): string => `${value === null || value === undefined ? 'none' : String(value)}\n`;

/** Effective caps, one device per line: "7:0 rbps=10485760 wbps=max riops=max wiops=max" (io.max syntax). */
function ioMaxLines(caps: readonly IoDeviceLimit[]): string {
  return caps.map((c) => `${c.device} ${IO_CAP_FIELDS.map((f) => `${f}=${c[f] ?? 'max'}`).join(' ')}\n`).join('');
}

function sliceViews(views: Views): InfoProvider {
  return {
    names: () => views.slices(false).map((s) => s.name),
    files: (name) => {
      try {
        views.slice(name, false);
      } catch {
        return null;
      }
      const get = () => views.slice(name, true);
      return {
        user: () => line(get().user),
        domain: () => line(get().domain),
        cpu_reservation: () => line(get().cpu.reservation),
        cpu_limit: () => line(get().cpu.limit),
        cpu_effective_limit: () => line(get().cpu.effectiveLimit),
        cpu_shares: () => line(get().cpu.shares),
        memory_limit: () => line(get().memory.limit),
        memory_high: () => line(get().memory.high),
        memory_swap: () => line(get().memory.swap),
        io_weight: () => line(get().io.weight),
        io_max: () => ioMaxLines(get().io.effectiveMax),
        io_read_bytes: () => line(get().live?.io?.readBytes),
        io_write_bytes: () => line(get().live?.io?.writeBytes),
        oom_kills: () => line(get().live?.oomKills),
        cpu_usage: () => line(get().live?.usage),
        cpu_demand: () => line(get().live?.demand),
        cpu_entitlement: () => line(get().live?.entitlement),
        memory_usage: () => line(get().live?.memoryBytes),
        procs: () => line(get().live?.procs),
      };
    },
  };
}

function domainViews(views: Views): InfoProvider {
  return {
    names: () => views.domains(false).map((d) => d.name),
    files: (name) => {
      try {
        views.domain(name, false);
      } catch {
        return null;
      }
      const get = () => views.domain(name, true);
      return {
        parent: () => line(get().parent),
        cpu_reservation: () => line(get().cpu.reservation),
        cpu_limit: () => line(get().cpu.limit),
        cpu_shares: () => line(get().cpu.shares),
        members: () => `${[...get().members.slices, ...get().members.domains].join('\n')}\n`,
        cpu_usage: () => line(get().live?.usage),
        cpu_entitlement: () => line(get().live?.entitlement),
      };
    },
  };
}

/**
 * /nodes/<node>/: every member of the cluster with its status, labels, registered capacity
 * and load (its slices' CPU use, millicores, "-" when it published none); this node also
 * shows its live CPU figures.
 */
function nodeViews(nodeName: string, views: Views, membership: Membership, loads: NodeLoads): InfoProvider {
  const member = (name: string): NodeView | null => {
    try {
      return membership.get(name);
    } catch {
      return null;
    }
  };
  return {
    names: () => membership.list().map((n) => n.name),
    files: (name) => {
      const known = name === nodeName || member(name) !== null;
      if (!known) return null;
      const membershipFiles = {
        slices_load: () => line(loads.of(name)?.slicesCpuMillicores ?? '-'),
        status: () => line(member(name)?.status ?? 'up'),
        cordoned: () => line(member(name)?.cordoned ? 1 : 0),
        labels: () =>
          Object.entries(member(name)?.labels ?? {})
            .map(([k, v]) => `${k}=${v}\n`)
            .join(''),
      };
      if (name !== nodeName) {
        return {
          ...membershipFiles,
          cpu_capacity: () => line(member(name)?.live?.capacity.cpuMillicores ?? 0),
        };
      }
      const node = () =>
        views.node() as {
          cpu: { capacity: number; systemReserve: number; reserved: number; available: number };
          backend: string;
          slices: number;
        };
      return {
        ...membershipFiles,
        cpu_capacity: () => line(node().cpu.capacity),
        cpu_system_reserve: () => line(node().cpu.systemReserve),
        cpu_reserved: () => line(node().cpu.reserved),
        cpu_available: () => line(node().cpu.available),
        backend: () => line(node().backend),
        slices: () => line(node().slices),
      };
    },
  };
}
