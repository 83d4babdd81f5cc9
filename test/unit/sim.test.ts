/**
 * The simulator's parts: the event heap's order, the histogram's quantiles, water-filling
 * against the agent's entitlement maths, the workload readers, and the placement policies it
 * runs (random, best_of_two, least_loaded) on a small cluster.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { computeEntitlements } from '../../src/core/entitlement.js';
import { prng, streamSeed } from '../../src/core/prng.js';
import { EventHeap } from '../../src/sim/event-heap.js';
import { Histogram } from '../../src/sim/metrics.js';
import { waterFill } from '../../src/sim/share.js';
import { jobsOf, PLANETLAB_STEP_SECONDS, poissonJobs, readCsvWorkload, readPlanetLab, readSwf } from '../../src/sim/workload.js';
import { documentFor, simulate } from '../../src/sim/engine.js';
import { parseTreeYaml, type TreeDocument } from '../../src/framework/document.js';
import { ROOT } from '../helpers/daemon.js';
import { Value } from '../../src/framework/value.js';
import leastLoaded from '../../src/components/policies/least-loaded.js';

/** The jobs of a CSV text on a single one-CPU node. */
function onOneCpu(csv: string): ReturnType<typeof simulate> {
  const jobs = jobsOf(readCsvWorkload(csv));
  return simulate({ nodes: { count: 1, cpuMillicores: 1000 }, jobs, document: documentFor('random'), seed: 1, loadUpdateMs: 1000 });
}

describe('simulator parts', () => {
  test('the event heap pops in time order, ties in insertion order', () => {
    const heap = new EventHeap();
    const random = prng(1);
    const pushed: Array<[number, number]> = [];
    for (let k = 0; k < 5000; k++) {
      const t = Math.floor(random() * 100);
      heap.push(t, k, 0);
      pushed.push([t, k]);
    }
    pushed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const out = { time: 0, node: 0, version: 0 };
    for (const [t, k] of pushed) {
      heap.pop(out);
      assert.deepEqual([out.time, out.node], [t, k]);
    }
    assert.equal(heap.length, 0);
    assert.equal(heap.peekTime(), Infinity);
  });

  test('histogram quantiles are within 0.5% of the exact ones; the mean is exact', () => {
    const h = new Histogram();
    const random = prng(2);
    const values = Array.from({ length: 20000 }, () => -Math.log(1 - random()) * 3);
    for (const v of values) h.add(v);
    values.sort((a, b) => a - b);
    for (const q of [0.5, 0.99]) {
      const exact = values[Math.ceil(q * values.length) - 1]!;
      assert.ok(Math.abs(h.quantile(q) / exact - 1) <= 0.0051, `q${q}: ${h.quantile(q)} against ${exact}`);
    }
    assert.ok(Math.abs(h.summary().mean - values.reduce((s, v) => s + v, 0) / values.length) < 1e-9);
  });

  test("water-filling gives what the agent's entitlement maths gives (equal shares, nothing reserved)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 64000 }),
        fc.array(fc.integer({ min: 1, max: 8000 }), { minLength: 1, maxLength: 40 }),
        (capacity, demands) => {
          const rates = new Float64Array(demands.length);
          waterFill(capacity, demands, demands.length, rates, new Int32Array(demands.length));
          const maths = computeEntitlements(
            capacity,
            demands.map((d, k) => ({ id: `t${k}`, cpu: { reservation: 0, limit: null, shares: 100 }, demand: d })),
          ).nodes;
          demands.forEach((_, k) => assert.ok(Math.abs(rates[k]! - maths.get(`t${k}`)!.entitlement) < 1e-6));
        },
      ),
      // Equal demands (the simulator's short cut) and a mix, besides the random arrays.
      {
        examples: [
          [1000, [1000, 1000, 1000]],
          [1000, [300, 300]],
          [2000, [1500, 200, 1500, 900]],
        ],
      },
    );
  });

  test('least_loaded decides with its heap as a scan of every node would (lowest load, ties by name, placements counted)', () => {
    const loadType = { name: 'load', columns: ['load'], unit: 'millicores', description: 'test' };
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 1, max: 200 }),
        (loads, taskLoad, decisions) => {
          // Names out of row order, so that ties by name are not ties by row.
          const names = loads.map((_, i) => `n${(i * 37) % 101}-${i}`);
          const value = new Value(loadType, loads.length);
          value.setRows(loads.length, names);
          loads.forEach((l, i) => value.set(i, 0, l * 500));
          const silent = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
          const policy = leastLoaded.create({
            path: '/schedulers/s/least_loaded',
            attrs: { task_load: taskLoad },
            log: silent,
            services: { nodeName: 'here', log: silent },
            ports: { node_load: value },
          });
          const counted = new Map<string, number>();
          for (let d = 0; d < decisions; d++) {
            let best: string | null = null;
            let bestLoad = Infinity;
            names.forEach((node, i) => {
              const load = value.get(i) + (counted.get(node) ?? 0) * taskLoad;
              if (best === null || load < bestLoad || (load === bestLoad && node < best)) [best, bestLoad] = [node, load];
            });
            assert.equal(policy.newTaskNode!({ parentPid: 1, sessionId: null, slice: null }), best);
            counted.set(best!, (counted.get(best!) ?? 0) + 1);
          }
        },
      ),
    );
  });

  test('two streams of one seed are not the same sequence', () => {
    const [a, b] = [prng(streamSeed(7, 1)), prng(streamSeed(7, 2))];
    const same = Array.from({ length: 100 }, () => a() === b()).filter(Boolean).length;
    assert.equal(same, 0);
  });

  test('SWF: submit, run time and processors of the 18 fields, a task per processor; comments and unusable jobs skipped; bad lines refused', () => {
    const text = [
      '; Version: 2',
      '1 100 -1 50 4 -1 -1 4 -1 -1 1 3 1 1 1 -1 -1 -1',
      '2 10 -1 20 -1 -1 -1 2 -1 -1 1 5 1 1 1 -1 -1 -1',
      '3 30 -1 0 8 -1 -1 8 -1 -1 1 3 1 1 1 -1 -1 -1',
      '',
    ].join('\n');
    const w = readSwf(text);
    assert.equal(w.count, 6, 'a task per processor: 2 (requested, none allocated) and 4');
    assert.equal(w.skipped, 1, 'the job with no run time');
    assert.deepEqual([...w.arrival], [10, 10, 100, 100, 100, 100], 'sorted by submit time');
    assert.deepEqual([...w.cpu], [1000, 1000, 1000, 1000, 1000, 1000]);
    assert.deepEqual([...w.duration], [20, 20, 50, 50, 50, 50]);
    assert.equal(w.slices.length, 2, 'one slice per user');
    assert.throws(() => readSwf('1 2 3\n', { origin: 'x.swf' }), /x\.swf line 1: expected 18 numbers/);
  });

  test('CSV: columns by header, slice optional; bad cells refused with the line', () => {
    const w = readCsvWorkload('arrival,duration,cpu,slice\n5,2,500,web\n1,3,1000,\n');
    assert.deepEqual([...w.arrival], [1, 5]);
    assert.deepEqual([...w.slice], [-1, 0]);
    assert.deepEqual(w.slices, ['web']);
    assert.throws(() => readCsvWorkload('arrival,cpu\n1,2\n'), /no duration column/);
    assert.throws(() => readCsvWorkload('arrival,duration,cpu\n1,x,2\n'), /line 2: duration "x"/);
  });

  test('PlanetLab: a job per VM file, its percents as millicores over 300-s steps, ending by time; empty files skipped; bad lines refused', () => {
    const w = readPlanetLab([
      { name: 'vm-b', text: '10\n100\n0\n' },
      { name: 'vm-a', text: '50\n' },
      { name: 'empty', text: '\n' },
    ]);
    assert.equal(w.count, 2);
    assert.equal(w.skipped, 1);
    assert.equal(w.curveStep, PLANETLAB_STEP_SECONDS);
    assert.deepEqual(
      w.curves!.map((c) => [...c!]),
      [[500], [100, 1000, 0]],
      'sorted by name, a percent of one CPU',
    );
    assert.deepEqual([...w.duration], [300, 900]);
    assert.deepEqual([...w.cpu], [500, 100]);
    const jobs = jobsOf(w);
    assert.equal(jobs.span, 900, 'sampling covers the curves, not only the arrivals');
    assert.throws(() => readPlanetLab([{ name: 'vm', text: '5\n101\n' }]), /vm line 2: "101" is not a percent/);
    assert.throws(() => readPlanetLab([{ name: 'vm', text: '5.5\n' }]), /vm line 1/);
  });

  test('demand curves: each step asks anew; a node asked past its CPU shares it and counts the time; the task ends by time', async () => {
    // One CPU; two VMs of two 300-s steps: 600m + 600m (over by 200m: each gets 500m), then
    // 200m + 600m (all served). Asked 1200 x 300 + 800 x 300, got 1000 x 300 + 800 x 300.
    const w = readPlanetLab([
      { name: 'a', text: '60\n20\n' },
      { name: 'b', text: '60\n60\n' },
    ]);
    const r = await simulate({
      nodes: { count: 1, cpuMillicores: 1000 },
      jobs: jobsOf(w),
      document: documentFor('random'),
      seed: 1,
      loadUpdateMs: 1000,
    });
    assert.equal(r.curves?.tasks, 2);
    assert.ok(Math.abs(r.curves!.askedCpuSeconds - (1.2 * 300 + 0.8 * 300)) < 1e-6, `${r.curves!.askedCpuSeconds}`);
    assert.ok(Math.abs(r.curves!.servedFraction - (1.0 * 300 + 0.8 * 300) / (1.2 * 300 + 0.8 * 300)) < 1e-9, `${r.curves!.servedFraction}`);
    assert.ok(Math.abs(r.overloadedFraction - 0.5) < 1e-9, `overloaded ${r.overloadedFraction}: the first step of two`);
    assert.equal(r.simulatedSeconds, 600, 'both end by time after their last step');
    assert.equal(r.measured, 0, 'jobs that end by time have no sojourn or slowdown');
  });

  test("balancing: every node's mosix_load_balancer moves a task off its crowded node to an idle one, keeping its progress", async () => {
    // round_robin on two one-CPU nodes: a (10 s) and c (100 s) share n0, b (1 s) has n1 and
    // ends at 1 s. At the 2-s load update n0 sees 2000m against 0 and moves a (9 s of work
    // left, on its own again) to n1: a ends at 11 s, c at 101 s; without the balancer at 20 and 110 s.
    const csv = 'arrival,duration,cpu\n0,10,1000\n0,1,1000\n0,100,1000\n';
    const balancing = parseTreeYaml(readFileSync(join(ROOT, 'examples', 'simulate', 'mosix-balance.yaml'), 'utf8'), 'mosix-balance.yaml');
    const place = (balancing.schedulers as Record<string, Record<string, unknown>>).place!;
    place.round_robin = place.random;
    delete place.random;
    const run = (document: TreeDocument) =>
      simulate({ nodes: { count: 2, cpuMillicores: 1000 }, jobs: jobsOf(readCsvWorkload(csv)), document, seed: 1, loadUpdateMs: 1000 });
    const moved = await run(balancing);
    assert.equal(moved.migrations, 1);
    assert.ok(Math.abs(moved.simulatedSeconds - 101) < 1e-6, `${moved.simulatedSeconds}`);
    assert.ok(Math.abs(moved.sojourn.mean - (1 + 11 + 101) / 3) < 0.5, `${moved.sojourn.mean}`);
    const still = await run(documentFor('round_robin'));
    assert.equal(still.migrations, 0);
    assert.ok(Math.abs(still.sojourn.mean - (1 + 20 + 110) / 3) < 0.5, `${still.sojourn.mean}`);
  });

  test('a run is the same for a seed; another seed differs', async () => {
    const run = (seed: number): Promise<number> =>
      simulate({
        nodes: { count: 20, cpuMillicores: 1000 },
        jobs: poissonJobs({ count: 2000, rate: 16, meanDuration: 1, cpu: 1000, seed }),
        document: documentFor('best_of_two'),
        seed,
        loadUpdateMs: 'instant',
      }).then((r) => r.sojourn.mean);
    assert.equal(await run(5), await run(5));
    assert.notEqual(await run(5), await run(6));
  });

  test("placement by the same policy modules: least_loaded, round_robin and Kerrighed's round_robin_balancer spread the tasks; no answer is counted; a bad document is refused", async () => {
    const jobs = (): ReturnType<typeof jobsOf> => {
      const w = readCsvWorkload(`arrival,duration,cpu\n${Array.from({ length: 8 }, (_, k) => `${k * 0.01},100,1000`).join('\n')}\n`);
      return jobsOf(w);
    };
    const nodes = { count: 4, cpuMillicores: 2000 };
    // Eight long tasks, each asking 1 CPU, on four 2-CPU nodes: both spread them two a node.
    for (const policy of ['least_loaded', 'round_robin', 'round_robin_balancer']) {
      const r = await simulate({ nodes, jobs: jobs(), document: documentFor(policy), seed: 1, loadUpdateMs: 'instant' });
      assert.equal(r.decisions, 8);
      // Two a node: each task has a CPU to itself and takes its 100 s; a third on a node would slow all three.
      assert.ok(Math.abs(r.sojourn.p99 / 100 - 1) < 0.006, `${policy}: every task alone on its CPU (${JSON.stringify(r.sojourn)})`);
      assert.ok(Math.abs(r.sojourn.mean - 100) < 1e-6, `${policy}: ${r.sojourn.mean}`);
    }
    // No scheduler with a policy: nothing placed.
    const none = await simulate({ nodes, jobs: jobs(), document: { probes: { sim_nodes: {} } }, seed: 1, loadUpdateMs: 1000 });
    assert.equal(none.unplaced, 8);
    await assert.rejects(
      simulate({ nodes, jobs: jobs(), document: documentFor('no_such_policy'), seed: 1, loadUpdateMs: 1000 }),
      /no_such_policy/,
    );
    await assert.rejects(
      simulate({ nodes, jobs: jobs(), document: { schedulers: {} }, seed: 1, loadUpdateMs: 1000 }),
      /has no \/probes\/sim_nodes/,
    );
  });

  test("a node shares by slices first: a slice's two tasks get half the CPU together, a task without a slice the other half", async () => {
    // On one CPU: web's two tasks 250m each, the lone task 500m; it ends at 20 s, then web's
    // tasks get 500m each for the 5 CPU-seconds they still need: they end at 30 s.
    const r = await onOneCpu('arrival,duration,cpu,slice\n0,10,1000,web\n0,10,1000,web\n0,10,1000,\n');
    assert.ok(Math.abs(r.sojourn.mean - (20 + 30 + 30) / 3) < 1e-6, `${r.sojourn.mean}`);
  });

  test('a node shares its CPU by entitlement: two tasks on one CPU take twice as long', async () => {
    const r = await onOneCpu('arrival,duration,cpu\n0,10,1000\n0,10,1000\n');
    assert.ok(Math.abs(r.sojourn.mean - 20) < 1e-6, `${r.sojourn.mean}`);
    assert.ok(Math.abs(r.slowdown.mean - 2) < 1e-6);
  });
});
