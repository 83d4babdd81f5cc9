/**
 * Placement benchmark: cluster tasks on a 3-member etcd (Debian's etcd-server, members in
 * network namespaces: test/helpers/etcd.ts) with three agents on this machine, talking over
 * the node-to-node channel (shared token).
 *
 *   npm run bench:placement [-- --json] [-- --seconds 30] [-- --failover-tasks 20]
 *
 * - submit to running: one task (`true`) at a time, submitted to each agent in turn, until the
 *   API answers that its node started it (GET .../started, which watches the task's keys);
 *   side by side with the same on a node alone (its own store, no etcd).
 * - placements per second: short tasks (`true`) submitted through the API from all three
 *   agents at once (4 in flight per agent) for --seconds; with the submit-to-running times
 *   under that load (from the status keys, watched in etcd by the benchmark).
 * - placement balance: 300 placements by a `least_loaded` scheduler fed with every node's
 *   load through remote_cache: max/min tasks per node. The agents share one machine, so their
 *   loads are equal within noise: what spreads the tasks is least_loaded counting its own
 *   placements until the next load update.
 * - migration: a migratable task moved by hand (POST .../migrate) until it runs on the target.
 * - failover: SIGKILL of the agent running --failover-tasks restartable tasks until all run
 *   elsewhere (lease TTL 5 s).
 * - tasks seen running twice: every task's instances sampled every 50 ms during the migration
 *   and failover phases (process groups with its SLICED_TASK_ID); must be 0.
 * Last line of stdout: one JSON object.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../test/helpers/daemon.js';
import { EtcdCluster, etcdSkipReason } from '../test/helpers/etcd.js';
import { kernelSkipReason } from '../test/helpers/env.js';
import { watchTwice } from '../test/helpers/tasks.js';
import { freePort } from '../test/helpers/cluster.js';
import { EtcdStore } from '../src/cluster/etcd-store.js';
import { taskKeyOf } from '../src/cluster/task-store.js';
import type { ClusterStore } from '../src/cluster/store.js';
import type { TaskStatus } from '../src/core/tasks.js';
import type { NodeList } from '../src/wire/nodes.js';
import type { TaskView } from '../src/wire/tasks.js';
import { argValue, finish, loadAverage, machine, onInterrupt, percentile, round, say } from './lib.js';

const SECONDS = Number(argValue('--seconds') ?? 30);
const FAILOVER_TASKS = Number(argValue('--failover-tasks') ?? 20);
const SEQUENTIAL = 150;
const BALANCE_PLACEMENTS = 300;
const IN_FLIGHT_PER_AGENT = 4;
const TTL_MS = 5000;

const skip = kernelSkipReason() ?? etcdSkipReason();
if (skip !== null) {
  say(`bench:placement cannot run here: ${skip}`);
  finish({ bench: 'placement', skipped: skip });
  process.exit(0);
}

const run = randomUUID().slice(0, 8);
const prefix = `/sliced-bench/${run}/`;
const load = loadAverage();
const secrets = mkdtempSync(join(tmpdir(), 'sliced-bench-peer-'));
const tokenFile = join(secrets, 'token');
writeFileSync(tokenFile, `${run}-bench-token-of-this-run\n`, { mode: 0o600 });
chmodSync(tokenFile, 0o600);
const etcd = await EtcdCluster.start(3);
const daemons: TestDaemon[] = [];
const stopAll = async (): Promise<void> => {
  for (const d of daemons.splice(0)) await d.destroy().catch(() => undefined);
  await etcd.destroy();
  rmSync(secrets, { recursive: true, force: true });
};
const deregister = onInterrupt(stopAll);
const nodeName = (n: string): string => `bench${run}-${n}`;

async function agent(name: string): Promise<TestDaemon> {
  const d = await TestDaemon.start([
    ...['--cluster', etcd.endpoints.join(','), '--cluster-prefix', prefix, '--node-name', nodeName(name)],
    ...['--log-level', 'warn', '--user-prefix', `sl-${name}-`],
    ...['--peer-listen', `127.0.0.1:${await freePort()}`, '--peer-token-file', tokenFile],
  ]);
  daemons.push(d);
  return d;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** When each task was first reported running (or ended, for one too short to be seen running), from the store's watch. */
function startedTimes(store: ClusterStore, from: number): { times: Map<string, number>; close: () => void } {
  const times = new Map<string, number>();
  const watch = store.watch(
    'tasks/',
    from,
    (event) => {
      const key = taskKeyOf(event.key);
      if (!key || key.node === null || event.value === null || times.has(key.id)) return;
      const status = JSON.parse(event.value) as TaskStatus;
      if (status.state !== 'failed') times.set(key.id, performance.now());
    },
    () => undefined,
  );
  return { times, close: () => watch.close() };
}

/** Submit one task to `d` and resolve to its id and when the submission began. */
async function submit(
  d: TestDaemon,
  slice: string,
  command: string[],
  extra: Record<string, unknown> = {},
): Promise<{ id: string; at: number }> {
  const at = performance.now();
  const view = await d.api.post<TaskView>('/v1/tasks', { slice, command, ...extra });
  return { id: view.id, at };
}

/** One task at a time, to each agent in turn: ms from the submission until the API answers that it started. */
async function submitToRunning(ds: TestDaemon[], slice: string, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const d = ds[i % ds.length]!;
    const s = await submit(d, slice, ['true']);
    const view = await d.api.get<TaskView>(`/v1/tasks/${s.id}/started?timeout=10000`);
    if (view.state === 'pending' || view.state === 'failed')
      throw new Error(`task ${s.id} did not start: ${view.state} ${view.reason ?? ''}`);
    times.push(performance.now() - s.at);
  }
  return times;
}

async function allReady(d: TestDaemon, slice: string): Promise<boolean> {
  const view = await d.api.get<{ cluster?: { slivers: Array<{ state: string }> } }>(`/v1/slices/${slice}`);
  return view.cluster?.slivers.every((s) => s.state === 'ready') ?? false;
}

const result: Record<string, unknown> = { bench: 'placement', machine: machine(), load_before: load, lease_ttl_ms: TTL_MS };
try {
  // ---- a node alone: the side-by-side floor for submit to running ----
  say('a node alone: submit to running');
  const alone = await TestDaemon.start(['--log-level', 'warn', '--user-prefix', 'sl-s-']);
  daemons.push(alone);
  await alone.api.post('/v1/slices', { name: 'bpalone' });
  const aloneTimes = await submitToRunning([alone], 'bpalone', SEQUENTIAL);
  await alone.destroy();
  daemons.splice(daemons.indexOf(alone), 1);

  // ---- three agents ----
  say('starting three agents on a 3-member etcd');
  const [a, b, c] = [await agent('a'), await agent('b'), await agent('c')];
  await until(
    'all three up',
    async () => (await a.api.get<NodeList>('/v1/nodes')).nodes.filter((n) => n.status === 'up').length === 3,
    20_000,
  );
  const slice = `bp${run.slice(0, 4)}`;
  await a.api.post('/v1/slices', { name: slice, placement: { all: true } });
  await until('the slice on every node', () => allReady(a, slice), 20_000);
  const store = await EtcdStore.open({ endpoints: etcd.endpoints, prefix });

  say(`submit to running: ${SEQUENTIAL} tasks one at a time, to each agent in turn`);
  const sequential = await submitToRunning([a, b, c], slice, SEQUENTIAL);
  Object.assign(result, {
    submit_to_running_ms_p50: round(percentile(sequential, 50)),
    submit_to_running_ms_p99: round(percentile(sequential, 99)),
    single_node_submit_to_running_ms_p50: round(percentile(aloneTimes, 50)),
    single_node_submit_to_running_ms_p99: round(percentile(aloneTimes, 99)),
  });
  say(
    `  cluster p50 ${result.submit_to_running_ms_p50} ms, p99 ${result.submit_to_running_ms_p99} ms; ` +
      `a node alone p50 ${result.single_node_submit_to_running_ms_p50} ms, p99 ${result.single_node_submit_to_running_ms_p99} ms`,
  );

  say(`placements per second: short tasks from all three agents, ${IN_FLIGHT_PER_AGENT} in flight each, for ${SECONDS} s`);
  {
    const watched = startedTimes(store, await store.revision());
    const submitted: Array<{ id: string; at: number }> = [];
    const end = performance.now() + SECONDS * 1000;
    const started = performance.now();
    await Promise.all(
      [a, b, c].flatMap((d) =>
        Array.from({ length: IN_FLIGHT_PER_AGENT }, async () => {
          while (performance.now() < end) submitted.push(await submit(d, slice, ['true']));
        }),
      ),
    );
    const elapsed = (performance.now() - started) / 1000;
    await until('every task to start', async () => submitted.every((s) => watched.times.has(s.id)), 60_000).catch(() => undefined);
    watched.close();
    const underLoad = submitted.filter((s) => watched.times.has(s.id)).map((s) => watched.times.get(s.id)! - s.at);
    Object.assign(result, {
      placements_per_s: round(submitted.length / elapsed, 1),
      placements: submitted.length,
      placements_started: underLoad.length,
      submit_to_running_under_load_ms_p50: round(percentile(underLoad, 50)),
      submit_to_running_under_load_ms_p99: round(percentile(underLoad, 99)),
    });
    say(
      `  ${submitted.length} placements in ${round(elapsed, 1)} s: ${result.placements_per_s}/s; under that load submit to running ` +
        `p50 ${result.submit_to_running_under_load_ms_p50} ms, p99 ${result.submit_to_running_under_load_ms_p99} ms`,
    );
  }

  say(`placement balance: ${BALANCE_PLACEMENTS} placements by least_loaded`);
  {
    const policy = '/schedulers/ll/least_loaded';
    for (const [verb, ...args] of [
      ['mkdir', '/probes/cpu'],
      ['write', '/probes/cpu/probe_period', '200'],
      ['mkdir', '/schedulers/ll'],
      ['mkdir', policy],
      ['mkdir', `${policy}/node_load/remote_cache`],
      ['write', `${policy}/node_load/remote_cache/prefetch_period_ms`, '200'],
      ['ln', '/probes/cpu/node_load', `${policy}/node_load/remote_cache/cpu_load`],
    ] as const) {
      const r = await a.cli([verb, ...args]);
      if (r.code !== 0 && !/exists/.test(r.stderr)) throw new Error(`slicectl ${verb} ${args.join(' ')}: ${r.stderr}`);
    }
    await until(
      'least_loaded to know every node',
      async () => {
        const text = (await a.cli(['cat', `${policy}/node_load/collected_value`])).stdout;
        return ['a', 'b', 'c'].every((n) => text.includes(nodeName(n)));
      },
      20_000,
    );
    const perNode = new Map<string, number>();
    const ds = [a, b, c];
    for (let i = 0; i < BALANCE_PLACEMENTS; i++) {
      const view = await ds[i % 3]!.api.post<TaskView>('/v1/tasks', { slice, command: ['true'], scheduler: 'll' });
      if (view.placedBy !== 'll') throw new Error(`task ${view.id} was placed by ${view.placedBy}, not least_loaded`);
      perNode.set(view.node, (perNode.get(view.node) ?? 0) + 1);
    }
    const counts = [nodeName('a'), nodeName('b'), nodeName('c')].map((n) => perNode.get(n) ?? 0);
    result.placement_counts = counts;
    result.placement_balance = Math.min(...counts) > 0 ? round(Math.max(...counts) / Math.min(...counts), 3) : null;
    say(`  per node ${counts.join(' / ')}: max/min ${result.placement_balance}`);
  }

  const loop = ['sh', '-c', 'while :; do sleep 0.2; done'];
  const cordoned = async (nodes: string[], on: boolean): Promise<void> => {
    for (const n of nodes) await a.api.patch(`/v1/nodes/${nodeName(n)}`, { cordoned: on });
  };

  say('migration: a migratable task moved by hand, 5 times');
  const migrationTimes: number[] = [];
  const migrating = (await a.api.post<TaskView>('/v1/tasks', { slice, command: loop, migratable: true })).id;
  await until('it to run', async () => (await a.api.get<TaskView>(`/v1/tasks/${migrating}`)).state === 'running', 10_000);
  const moveSampler = watchTwice(new Set([migrating]));
  for (let i = 0; i < 5; i++) {
    const now = await a.api.get<TaskView>(`/v1/tasks/${migrating}`);
    const to = [nodeName('a'), nodeName('b'), nodeName('c')].find((n) => n !== now.node)!;
    const asked = performance.now();
    const moved = await b.api.post<TaskView>(`/v1/tasks/${migrating}/migrate`, { to });
    if (moved.node !== to || moved.state !== 'running') throw new Error(`migration ${i} ended ${moved.state} on ${moved.node}`);
    migrationTimes.push(performance.now() - asked);
  }
  const movedTwice = moveSampler.stop();
  await a.api.post(`/v1/tasks/${migrating}/stop`, {});
  result.migration_s = round(percentile(migrationTimes, 50) / 1000, 3);
  result.migration_s_max = round(Math.max(...migrationTimes) / 1000, 3);
  say(
    `  advice to running on the target: median ${result.migration_s} s, max ${result.migration_s_max} s (stop grace: the task ends on SIGTERM)`,
  );

  say(`failover: SIGKILL of the agent running ${FAILOVER_TASKS} restartable tasks`);
  await cordoned(['a', 'b'], true);
  const restartable: string[] = [];
  try {
    for (let i = 0; i < FAILOVER_TASKS; i++) {
      const view = await a.api.post<TaskView>('/v1/tasks', { slice, command: loop, restart: 'always' });
      if (view.node !== nodeName('c')) throw new Error(`task ${view.id} went to ${view.node}, not c`);
      restartable.push(view.id);
    }
  } finally {
    await cordoned(['a', 'b'], false);
  }
  await until(
    'all on c to run',
    async () => {
      const views = await Promise.all(restartable.map((id) => a.api.get<TaskView>(`/v1/tasks/${id}`)));
      return views.every((v) => v.state === 'running');
    },
    20_000,
  );
  const failSampler = watchTwice(new Set(restartable));
  const killed = performance.now();
  await c.stop('SIGKILL');
  await until(
    'every task to run elsewhere',
    async () => {
      const views = await Promise.all(restartable.map((id) => a.api.get<TaskView>(`/v1/tasks/${id}`)));
      return views.every((v) => v.state === 'running' && v.node !== nodeName('c'));
    },
    60_000,
  );
  result.failover_s = round((performance.now() - killed) / 1000, 3);
  const failedTwice = failSampler.stop();
  result.tasks_seen_running_twice = (movedTwice > 1 ? 1 : 0) + (failedTwice > 1 ? 1 : 0);
  say(
    `  all ${FAILOVER_TASKS} ran elsewhere ${result.failover_s} s after the SIGKILL (TTL ${TTL_MS / 1000} s); tasks seen running twice: ${result.tasks_seen_running_twice}`,
  );
  await store.close();
  result.load_after = loadAverage();
  result.targets = {
    placements_per_s: '>= 100',
    submit_to_running_ms_p99: '<= 200',
    failover_s: `<= ${TTL_MS / 1000 + 2}`,
    tasks_seen_running_twice: 0,
  };
} finally {
  await stopAll();
  deregister();
}
finish(result);
