/**
 * Kerrighed's own component names on our tree: its legacy setup, operation by operation as
 * kerrighed-tools' krg_legacy_scheduler performs them (paths relative to the tree's root), then
 * the data flowing through its filters into mosix_load_balancer's Kerrighed ports; its
 * memory-balancing setup (diff, constant and low-threshold filters); and the pure rules.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { kerrighedMosixDecision, nextMosixLoads } from '../../src/core/load-balancing.js';
import type { FilterInstance } from '../../src/framework/instances.js';
import type { NodeStats, RemoteRow, RemoteValues, TaskMigration } from '../../src/framework/handle.js';
import { dumpTree, executePlan, planApply } from '../../src/framework/document.js';
import { nextInRing } from '../../src/components/policies/round-robin-balancer.js';
import { assertSound, dirAt, makeTree, refusal, statusOf } from './framework-fixtures.js';

/** A node whose figures the test sets. */
function fakeNode() {
  const state = {
    runnable: 1,
    cpuNs: new Map<number, number>(),
    freeKb: 1_000_000,
    lastMigrationMs: null as number | null,
    moves: [] as string[],
    tasks: new Map<number, string>(),
    remote: new Map<string, RemoteRow[]>(),
  };
  const nodeStats: NodeStats = {
    cpuBusyNs: () => [0, 0],
    loadAverage: () => ({ load1: 0, load5: 0, load15: 0, runnable: state.runnable }),
    memoryInfo: () => ({ totalBytes: 4_000_000 * 1024, availableBytes: 0, freeBytes: state.freeKb * 1024 }),
    pressure: () => null,
    processTimes: () => [...state.cpuNs].map(([pid, cpuNs]) => ({ pid, cpuNs })),
    processRss: () => [...state.cpuNs.keys()].map((pid) => ({ pid, rssBytes: pid * 1024 })),
    diskIo: () => null,
  };
  const taskMigration: TaskMigration = {
    taskOf: (pid) => state.tasks.get(pid) ?? null,
    migrate: async (task, node, by) => void state.moves.push(`${task}->${node} by ${by}`),
    lastMigration: () => state.lastMigrationMs,
    migrationsUnderWay: () => 0,
  };
  // The other nodes' values, by the filter's path (what remote_cache fetches).
  const remote: RemoteValues = {
    nodeName: 'n1',
    publish: async () => {},
    fetch: async (key) => state.remote.get(key) ?? [],
  };
  return { state, services: { nodeStats, taskMigration, remote } };
}

const ROOT = '';
const MOSIX = `${ROOT}/schedulers/mosix/mosix_load_balancer`;
const LOCAL_FREQ = `${MOSIX}/local_load/freq_limit_filter`;
const LOCAL_THRESHOLD = `${LOCAL_FREQ}/threshold_filter`;
const REMOTE_CACHE = `${MOSIX}/remote_load/remote_cache_filter`;
const SINGLE_CACHE = `${MOSIX}/single_process_load/remote_cache_filter`;

describe("Kerrighed's legacy scheduler setup on our tree", () => {
  async function legacySetup() {
    const node = fakeNode();
    const made = makeTree({ services: node.services });
    const { tree } = made;
    // krg_legacy_scheduler: a round-robin scheduler for new tasks ...
    await tree.mkdir(`${ROOT}/schedulers/rr`);
    await tree.mkdir(`${ROOT}/schedulers/rr/round_robin_balancer`);
    tree.write(`${ROOT}/schedulers/rr/process_set/handle_all`, '1\n');
    // ... and the MOSIX balancer with its filters.
    await tree.mkdir(`${ROOT}/probes/mosix_probe`);
    await tree.mkdir(`${ROOT}/probes/migration_probe`);
    await tree.mkdir(`${ROOT}/schedulers/mosix`);
    await tree.mkdir(MOSIX);
    await tree.mkdir(LOCAL_FREQ);
    tree.write(`${LOCAL_FREQ}/min_interval`, '2000000000\n');
    await tree.mkdir(LOCAL_THRESHOLD);
    const v = Number(tree.read(`${ROOT}/probes/mosix_probe/norm_single_process_load/value`));
    tree.write(`${LOCAL_THRESHOLD}/threshold`, `${Math.floor((v * 3) / 2)}\n`);
    await tree.mkdir(REMOTE_CACHE);
    tree.write(`${REMOTE_CACHE}/polling_period`, '1000\n');
    await tree.mkdir(SINGLE_CACHE);
    tree.symlink(`${ROOT}/probes/migration_probe/last_migration`, `${LOCAL_FREQ}/last_event/migration`);
    tree.symlink(`${ROOT}/probes/mosix_probe/process_load`, `${MOSIX}/process_load/mosix`);
    tree.symlink(`${ROOT}/probes/mosix_probe/norm_upper_load`, `${REMOTE_CACHE}/mosix_upper`);
    tree.symlink(`${ROOT}/probes/mosix_probe/norm_single_process_load`, `${SINGLE_CACHE}/mosix`);
    tree.symlink(`${ROOT}/probes/mosix_probe/norm_mean_load`, `${LOCAL_THRESHOLD}/mosix_mean`);
    tree.write(`${ROOT}/schedulers/mosix/process_set/handle_all`, '1\n');
    // remote_cache_filter fetches on a timer of its own; the test fetches when it wants.
    const prefetch = async (): Promise<void> => {
      for (const path of [REMOTE_CACHE, SINGLE_CACHE])
        await ((dirAt(tree, path).slot as FilterInstance).behaviour as unknown as { prefetch(): Promise<void> }).prefetch();
    };
    return { ...made, node, prefetch };
  }

  test('every step runs; the units are Kerrighed’s (single_process_load 100, threshold 150, min_interval in ns)', async () => {
    const { tree } = await legacySetup();
    assertSound(tree, 'the legacy setup');
    assert.equal(tree.read('/probes/mosix_probe/norm_single_process_load/value'), '100\n');
    assert.equal(tree.read(`${LOCAL_THRESHOLD}/threshold`), '150\n');
    assert.equal(tree.read(`${LOCAL_FREQ}/min_interval`), '2000000000\n');
    assert.equal(tree.read(`${REMOTE_CACHE}/polling_period`), '1000\n');
    assert.equal(tree.read(`${MOSIX}/stab_factor`), '130\n');
    assert.equal(tree.readlink(`${LOCAL_FREQ}/last_event/migration`), '/probes/migration_probe/last_migration');
    // Kerrighed's filters take its unsigned long values only; ours keep theirs.
    await assert.rejects(tree.mkdir(`${MOSIX}/node_load/threshold_filter`), refusal('EINVAL', /accepts values of type ulong/));
    // A filter whose port still has a source is not removed.
    await assert.rejects(
      Promise.resolve().then(() => tree.rmdir(LOCAL_FREQ)),
      refusal('ENOTEMPTY'),
    );
  });

  test('a load past 1.5 processes moves the second busiest migratable task to the node it pays to go to; then 2 s pass first', async () => {
    const { tree, timers, node, prefetch } = await legacySetup();
    const { state } = node;
    state.tasks.set(11, 't11').set(12, 't12').set(13, 't13');
    state.cpuNs.set(11, 0).set(12, 0).set(13, 0);
    // Another node n2 carries 10 and counts a process as 100: 10 + 130 is below the load here.
    state.remote.set(REMOTE_CACHE, [{ node: 'n2', labels: [], data: [10] }]);
    state.remote.set(SINGLE_CACHE, [{ node: 'n2', labels: [], data: [100] }]);
    await prefetch();
    // Two runnable tasks and the reader: load 200. The mean rises slowly from 0 (the first
    // reading, during the setup): 75, 122, then 151, past the threshold (150).
    state.runnable = 3;
    // A second passes: the three processes use 0.9, 0.8 and 0.1 s of CPU.
    let seconds = 0;
    const tick = (): void => {
      seconds++;
      state.cpuNs
        .set(11, seconds * 0.9e9)
        .set(12, seconds * 0.8e9)
        .set(13, seconds * 0.1e9);
      timers.fire(1000);
    };
    const means: string[] = [];
    for (let i = 1; i <= 3; i++) {
      tick();
      means.push(tree.read('/probes/mosix_probe/mean_load/value').trim());
      if (i < 3) assert.deepEqual(state.moves, [], `no move at mean load ${means.at(-1)}`);
    }
    assert.deepEqual(means, ['75', '122', '151']);
    assert.equal(tree.read('/probes/mosix_probe/upper_load/value'), '200\n', 'the upper load rose at once');
    await prefetch();
    assert.match(tree.read(`${MOSIX}/remote_load/collected_value`), /^n1 200\nn2 10\n$/);
    assert.match(tree.read(`${MOSIX}/single_process_load/collected_value`), /^n1 100\nn2 100\n$/);
    assert.deepEqual(state.moves, ['t12->n2 by mosix_load_balancer'], 'the second busiest task (12) moves to n2: 10 + 130 < 151');
    const moves = state.moves.length;

    // The move is the last event: freq_limit_filter holds the next updates for 2 s. At run time
    // migration_probe refreshes every 100 ms and mosix_probe publishes once a second, so the
    // last migration is known before the next load: mosix_probe's refresh goes last from now on.
    tree.write('/probes/mosix_probe/probe_period', '100');
    state.lastMigrationMs = Date.now();
    tick();
    assert.equal(state.moves.length, moves, 'no move within min_interval of the last migration');
    state.lastMigrationMs = Date.now() - 2500;
    tick();
    assert.equal(state.moves.length, moves + 1, 'the next update past min_interval moves again');

    // Below 1.5 processes (150) nothing passes the threshold filter.
    const decisions = (): string => JSON.stringify([statusOf(tree, MOSIX).migrations, statusOf(tree, MOSIX).last]);
    const before = decisions();
    state.runnable = 1;
    for (let i = 0; i < 4; i++) tick();
    assert.equal(tree.read('/probes/mosix_probe/mean_load/value'), '0\n', 'the mean drops at once');
    assert.equal(state.moves.length, moves + 1);
    assert.equal(decisions(), before, 'no decision, not even advice');
  });

  test('round_robin_balancer sends each new task to the next node of the ring after the last target', async () => {
    const { tree } = await legacySetup();
    const task = { parentPid: 1, sessionId: null, slice: null, nodes: ['n3', 'n1', 'n2'] };
    const answers = [1, 2, 3, 4].map(() => tree.placeNewTask(task).node);
    assert.deepEqual(answers, ['n2', 'n3', 'n1', 'n2']);
    assert.equal(statusOf(tree, '/schedulers/rr/round_robin_balancer').last_target, 'n2');
    assert.equal(nextInRing(['a', 'b'], 'z'), 'a');
    // A local task (no candidates) with node_load unwired: no answer, the schedulers below decide.
    assert.equal(tree.placeNewTask({ parentPid: 1, sessionId: null, slice: null }).node ?? null, null);
  });

  test('dump and apply carry the filters’ ports and their links', async () => {
    const { tree } = await legacySetup();
    const doc = dumpTree(tree);
    const other = makeTree({ services: fakeNode().services });
    await executePlan(other.tree, await planApply(other.tree, other.registry, doc));
    assertSound(other.tree, 'apply');
    assert.deepEqual(dumpTree(other.tree), doc);
    assert.equal(other.tree.readlink(`${LOCAL_FREQ}/last_event/migration`), '/probes/migration_probe/last_migration');
  });
});

describe("Kerrighed's memory-balancing setup: diff, constant and low-threshold filters", () => {
  test('local load = total − free, passed while free memory is at or below the threshold; diff follows its second value', async () => {
    const node = fakeNode();
    const { tree, timers } = makeTree({ services: node.services });
    const policy = '/schedulers/memory_balanced/mosix_load_balancer';
    const diff = `${policy}/local_load/diff_filter`;
    const freq = `${diff}/second_value/freq_limit_filter`;
    const threshold = `${freq}/low_threshold_filter`;
    await tree.mkdir('/probes/mem_probe');
    await tree.mkdir('/probes/migration_probe');
    await tree.mkdir('/schedulers/memory_balanced');
    await tree.mkdir(policy);
    await tree.mkdir(diff);
    await tree.mkdir(freq);
    await tree.mkdir(threshold);
    tree.write(`${freq}/min_interval`, '2000000000');
    tree.write(`${threshold}/threshold`, String(300 * 1024));
    await tree.mkdir(`${diff}/constant_filter`);
    tree.write(`${diff}/constant_filter/constant`, '4000000');
    tree.symlink('/probes/migration_probe/last_migration', `${freq}/last_event/migration`);
    // Kerrighed's per-pid figure goes straight into process_load (a port taking it besides its own type).
    tree.symlink('/probes/mem_probe/task_rss', `${policy}/process_load/task_rss`);
    tree.symlink('/probes/mem_probe/ram_free', `${threshold}/free_mem`);
    assertSound(tree, 'the memory-balancing setup');
    assert.equal(tree.read(`${diff}/constant_filter/value`), '4000000\n', 'a constant needs no input');
    assert.throws(
      () => tree.symlink('/probes/mem_probe/task_rss', `${diff}/constant_filter/x`),
      refusal('EINVAL', /ulong_by_pid.*expects ulong/),
    );

    node.state.freeKb = 1_000_000; // above the threshold: nothing passes
    timers.fire(1000);
    assert.equal(tree.read(`${policy}/local_load/collected_value`), '');
    node.state.freeKb = 250_000;
    timers.fire(1000);
    assert.equal(tree.read(`${policy}/local_load/collected_value`), '3750000\n');
    assert.match(tree.read(`${policy}/process_load/collected_value`), /^13 13\n12 12\n11 11\n$|^$/);
    assert.equal(tree.read(`${diff}/value`), '3750000\n');
    tree.write(`${threshold}/threshold`, '0');
    node.state.freeKb = 100;
    timers.fire(1000);
    assert.equal(tree.read(`${diff}/value`), '3750000\n', 'the second value did not pass its threshold: no new difference');
  });
});

describe('Kerrighed’s rules, pure', () => {
  test('the second busiest process goes to the cheapest node below the local load; unknown nodes are skipped', () => {
    const processes = [
      { pid: 1, load: 900 },
      { pid: 2, load: 800 },
      { pid: 3, load: 100 },
    ];
    const remote = new Map([
      ['n2', { load: 80, singleProcessLoad: 100 }],
      ['n3', { load: 20, singleProcessLoad: undefined }],
      ['n4', { load: 60, singleProcessLoad: 100 }],
    ]);
    assert.deepEqual(kerrighedMosixDecision({ localLoad: 200, remote, processes, stabFactor: 130 }), { pid: 2, to: 'n4', cost: 190 });
    assert.equal(kerrighedMosixDecision({ localLoad: 190, remote, processes, stabFactor: 130 }), null, 'not strictly below');
    assert.deepEqual(kerrighedMosixDecision({ localLoad: 200, remote, processes: [{ pid: 7, load: 5 }], stabFactor: 100 }), {
      pid: 7,
      to: 'n4',
      cost: 160,
    });
    assert.equal(kerrighedMosixDecision({ localLoad: 200, remote, processes: [], stabFactor: 130 }), null);
  });

  test('mosix_probe: the mean rises slowly and drops at once; the upper rises at once and decays', () => {
    let loads = nextMosixLoads(null, 100);
    assert.deepEqual(loads, { mean: 100, upper: 100 });
    loads = nextMosixLoads(loads, 300);
    assert.deepEqual(loads, { mean: (5 * 100 + 3 * 300) / 8, upper: 300 });
    loads = nextMosixLoads(loads, 0);
    assert.deepEqual(loads, { mean: 0, upper: (7 * 300) / 8 });
  });
});
