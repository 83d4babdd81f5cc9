/**
 * Cluster benchmark: a 3-member etcd (Debian's etcd-server, each member in its own network
 * namespace: test/helpers/etcd.ts) and three agents joined to it on this machine.
 *
 *   npm run bench:cluster [-- --json] [-- --writes N]
 *
 * - propagation: a tree write on node A (POST /v1/tree/write) until node C's tree shows it
 *   (C's /v1/tree/cat polled back to back), N writes one after the other; side by side with
 *   the floor etcd itself sets: a put by one client until another client's watch delivers it.
 * - down detection: SIGKILL of an agent until another shows it down (lease TTL 5 s).
 * - propagation with one etcd member down (SIGKILLed; restarted afterwards).
 * - sliver ready: a slice created on A with --all-nodes until all three agents have recorded
 *   that they realised it (users made, groups written; watched in etcd); side by side with the
 *   same create on a node alone, which answers once its slice is in its kernel.
 * - admission race: 300 creates at once (100 through each agent), each reserving 100m on
 *   node C, which has room for 38; counts the accepted and the over-commits (C's reservations
 *   in etcd above its capacity).
 * Last line of stdout: one JSON object.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../test/helpers/daemon.js';
import { EtcdCluster, etcdSkipReason } from '../test/helpers/etcd.js';
import { EtcdStore } from '../src/cluster/etcd-store.js';
import type { NodeList } from '../src/wire/nodes.js';
import { allocationKey, stateScope, type AllocationRecord, type RealisedRecord } from '../src/cluster/slice-catalog.js';
import { parseState } from '../src/cluster/state-repository.js';
import { argValue, finish, loadAverage, machine, onInterrupt, percentile, round, say } from './lib.js';
import { allocationSummary } from '../src/core/slivers.js';

const WRITES = Number(argValue('--writes') ?? 500);
const TTL_MS = 5000;
const PATH = '/probes/cpu/probe_period';
const SLIVERS = Number(argValue('--slivers') ?? 40);

const skip = etcdSkipReason();
if (skip !== null) {
  say(`bench:cluster cannot run here: ${skip}`);
  finish({ bench: 'cluster', skipped: skip });
  process.exit(0);
}

const run = randomUUID().slice(0, 8);
const prefix = `/sliced-bench/${run}/`;
const load = loadAverage();
const etcd = await EtcdCluster.start(3);
const agents: TestDaemon[] = [];
const stopAll = async (): Promise<void> => {
  for (const a of agents.splice(0)) await a.destroy().catch(() => undefined);
  await etcd.destroy();
};
const deregister = onInterrupt(stopAll);

/** Milliseconds from each write on `from` until `to` shows it. */
async function propagation(from: TestDaemon, to: TestDaemon, writes: number, offset: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < writes; i++) {
    const value = String(1000 + offset + i);
    const started = performance.now();
    await from.api.post('/v1/tree/write', { path: PATH, value });
    for (;;) {
      const shown = await to.api.get<{ value: string }>(`/v1/tree/cat?path=${encodeURIComponent(PATH)}`);
      if (shown.value.trim() === value) break;
      if (performance.now() - started > 10_000) throw new Error(`write ${i} (${value}) did not reach the other node within 10 s`);
    }
    times.push(performance.now() - started);
  }
  return times;
}

/** The floor: etcd's own put-to-watch latency between two clients, through the same client library. */
async function etcdFloor(writes: number): Promise<number[]> {
  const writer = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: `${prefix}floor/` });
  const watcher = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: `${prefix}floor/` });
  const times: number[] = [];
  try {
    let waiting: { value: string; resolve: () => void } | null = null;
    const watch = watcher.watch(
      'k',
      await watcher.revision(),
      (event) => {
        if (waiting && event.value === waiting.value) waiting.resolve();
      },
      () => undefined,
    );
    await sleep(200); // the watch stream is open
    for (let i = 0; i < writes; i++) {
      const value = String(i);
      const seen = new Promise<void>((resolve) => (waiting = { value, resolve }));
      const started = performance.now();
      await writer.txnIf([], [{ type: 'put', key: 'k', value }]);
      await seen;
      times.push(performance.now() - started);
    }
    watch.close();
  } finally {
    await writer.close();
    await watcher.close();
  }
  return times;
}

/**
 * Milliseconds from each create (--all-nodes) on `from` until every agent has recorded that
 * it realised the slice: its realised/<node> revision (watched in etcd) reaches the revision
 * at which the slice was written into that node's state.
 */
async function sliverReady(from: TestDaemon, nodes: string[], count: number): Promise<number[]> {
  const store = await EtcdStore.open({ endpoints: etcd.endpoints, prefix });
  const realised = new Map<string, number>();
  let changed: () => void = () => undefined;
  const watch = store.watch(
    'realised/',
    await store.revision(),
    (event) => {
      if (event.value === null) return;
      realised.set(event.key.slice('realised/'.length), (JSON.parse(event.value) as RealisedRecord).revision);
      changed();
    },
    () => undefined,
  );
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const name = `sliver${i}`;
      const started = performance.now();
      await from.api.post('/v1/slices', { name, cpu: { shares: 200 }, placement: { all: true } });
      const written = await Promise.all(
        nodes.map(async (node) => {
          const key = `${stateScope(node)}/slices/${name}`;
          return (await store.rangeVersioned(key)).entries.get(key)!.modRevision;
        }),
      );
      const ready = (): boolean => nodes.every((node, j) => (realised.get(node) ?? 0) >= written[j]!);
      while (!ready()) {
        await new Promise<void>((resolve, reject) => {
          changed = resolve;
          setTimeout(() => reject(new Error(`slice ${name} was not realised on every node within 20 s`)), 20_000).unref();
        });
      }
      times.push(performance.now() - started);
    }
  } finally {
    watch.close();
    await store.close();
  }
  for (let i = 0; i < count; i++) await from.api.delete(`/v1/slices/sliver${i}`);
  return times;
}

/** The baseline: the same create on a node alone, which answers once the slice is in its kernel. */
async function singleNodeCreate(count: number): Promise<number[]> {
  const alone = await TestDaemon.start(['--log-level', 'warn', '--user-prefix', 'sl-s-']);
  agents.push(alone);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await alone.api.post('/v1/slices', { name: `alone${i}`, cpu: { shares: 200 } });
    times.push(performance.now() - started);
  }
  for (let i = 0; i < count; i++) await alone.api.delete(`/v1/slices/alone${i}`);
  return times;
}

/** 100 creates through each agent at once for node `target`'s last capacity; accepted, expected, over-commits. */
async function admissionRace(target: string): Promise<{ accepted: number; expected: number; violations: number; ms: number }> {
  const store = await EtcdStore.open({ endpoints: etcd.endpoints, prefix });
  try {
    const reservedOn = async (): Promise<{ reserved: number; guaranteed: number }> => {
      const { entries } = await store.rangeVersioned(`${stateScope(target)}/`);
      const { capacity } = JSON.parse(entries.get(allocationKey(target))!.value) as AllocationRecord;
      const state = parseState(stateScope(target), new Map([...entries].map(([k, v]) => [k, v.value])));
      // Reserved at the node level, counted from the state itself (not from the record the commits wrote).
      const reserved = allocationSummary(state).cpuReservedMillicores;
      return { reserved, guaranteed: capacity.cpuMillicores - capacity.systemReserveMillicores };
    };
    const before = await reservedOn();
    const expected = Math.floor((before.guaranteed - before.reserved) / 100);
    const started = performance.now();
    const outcomes = await Promise.all(
      agents.slice(0, 3).flatMap((agent, i) =>
        Array.from({ length: 100 }, (_, j) =>
          agent.api
            .post('/v1/slices', { name: `race${i}x${j}`, user: 'nobody', cpu: { reservation: '100m' }, placement: { nodes: [target] } })
            .then(
              () => true,
              () => false,
            ),
        ),
      ),
    );
    const ms = performance.now() - started;
    const after = await reservedOn();
    return { accepted: outcomes.filter(Boolean).length, expected, violations: after.reserved > after.guaranteed ? 1 : 0, ms };
  } finally {
    await store.close();
  }
}

const summary = (times: number[]): { p50: number; p99: number } => ({
  p50: round(percentile(times, 50)),
  p99: round(percentile(times, 99)),
});

try {
  say(`etcd: 3 members healthy after ${etcd.startMs} ms; starting 3 agents...`);
  for (const name of ['a', 'b', 'c']) {
    agents.push(
      await TestDaemon.start([
        '--cluster',
        etcd.endpoints.join(','),
        '--cluster-prefix',
        prefix,
        '--node-name',
        `bench${run}-${name}`,
        '--log-level',
        'warn',
        // Three agents share this machine's users: each names those it makes its own way.
        '--user-prefix',
        `sl-${name}-`,
        ...(name === 'c' ? ['--cpu-capacity', '4', '--system-reserve', '200m'] : []),
      ]),
    );
  }
  const [a, b, c] = agents as [TestDaemon, TestDaemon, TestDaemon];
  const probes = await a.api.get<Array<{ name: string }>>('/v1/tree/ls?path=%2Fprobes');
  if (!probes.some((p) => p.name === 'cpu')) await a.api.post('/v1/tree/mkdir', { path: '/probes/cpu' });
  await propagation(a, c, 20, 0); // warm-up

  say(`propagation: ${WRITES} tree writes on A, each until C shows it...`);
  const times = await propagation(a, c, WRITES, 100);
  const floor = await etcdFloor(WRITES);
  const tree = summary(times);
  const base = summary(floor);
  say(`  sliced: p50 ${tree.p50} ms, p99 ${tree.p99} ms; etcd put -> watch: p50 ${base.p50} ms, p99 ${base.p99} ms`);

  say(`sliver ready: ${SLIVERS} slices created on A with --all-nodes, each until all three slivers are ready...`);
  const names = ['a', 'b', 'c'].map((n) => `bench${run}-${n}`);
  await sliverReady(a, names, 3); // warm-up
  const slivers = summary(await sliverReady(a, names, SLIVERS));
  const alone = summary(await singleNodeCreate(SLIVERS));
  say(
    `  all three nodes: p50 ${slivers.p50} ms, p99 ${slivers.p99} ms; the same create on a node alone: p50 ${alone.p50} ms, p99 ${alone.p99} ms`,
  );

  say('admission race: 300 creates at once (100 through each agent) for the last capacity of C...');
  const race = await admissionRace(`bench${run}-c`);
  say(`  ${race.accepted} accepted of ${race.expected} that fit, ${race.violations} over-commits, in ${round(race.ms)} ms`);

  say(`down detection: SIGKILL of agent B (lease TTL ${TTL_MS} ms)...`);
  await b.stop('SIGKILL');
  const killedAt = performance.now();
  const bName = `bench${run}-b`;
  for (;;) {
    const list = await a.api.get<NodeList>('/v1/nodes');
    if (list.nodes.find((n) => n.name === bName)?.status === 'down') break;
    if (performance.now() - killedAt > 30_000) throw new Error('B was not shown down within 30 s');
    await sleep(20);
  }
  const downDetectS = (performance.now() - killedAt) / 1000;
  say(`  shown down after ${round(downDetectS)} s`);
  await b.launch();

  say('propagation with one etcd member down (member 2 SIGKILLed)...');
  await etcd.kill(2);
  const degraded = summary(await propagation(a, c, Math.min(WRITES, 200), 10_000));
  say(`  p50 ${degraded.p50} ms, p99 ${degraded.p99} ms`);
  await etcd.restart(2);

  finish({
    bench: 'cluster',
    ...machine(),
    load_average_start: load,
    writes: WRITES,
    propagation_ms_p50: tree.p50,
    propagation_ms_p99: tree.p99,
    etcd_put_to_watch_ms_p50: base.p50,
    etcd_put_to_watch_ms_p99: base.p99,
    propagation_over_etcd_p50_ratio: round(tree.p50 / base.p50),
    down_detect_s: round(downDetectS),
    lease_ttl_s: TTL_MS / 1000,
    propagation_ms_p50_one_member_down: degraded.p50,
    propagation_ms_p99_one_member_down: degraded.p99,
    slivers: SLIVERS,
    sliver_ready_ms_p50: slivers.p50,
    sliver_ready_ms_p99: slivers.p99,
    single_node_create_ms_p50: alone.p50,
    single_node_create_ms_p99: alone.p99,
    sliver_ready_over_single_node_p50_ratio: round(slivers.p50 / alone.p50),
    admission_race_creates: 300,
    admission_race_accepted: race.accepted,
    admission_race_expected: race.expected,
    admission_race_violations: race.violations,
    admission_race_ms: round(race.ms),
    targets: { propagation_ms_p99: 50, down_detect_s: TTL_MS / 1000 + 1, admission_race_violations: 0 },
  });
} finally {
  await stopAll();
  deregister();
}
