/**
 * The built-in filters on Values, the MOSIX and swap-avoidance rules
 * (src/core/load-balancing.ts) and the placement policies' answers.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Value, BUILTIN_VALUE_TYPES, type ValueType } from '../../src/framework/value.js';
import type {
  AttributeValue,
  ComponentContext,
  FilterBehaviour,
  FilterType,
  PolicyType,
  FrameworkServices,
} from '../../src/framework/types.js';
import type { RemoteRow, RemoteValues } from '../../src/cluster/remote-values.js';
import threshold from '../../src/components/filters/threshold.js';
import freqLimit from '../../src/components/filters/freq-limit.js';
import ewma from '../../src/components/filters/ewma.js';
import rate from '../../src/components/filters/rate.js';
import hysteresis from '../../src/components/filters/hysteresis.js';
import remoteCache from '../../src/components/filters/remote-cache.js';
import roundRobin from '../../src/components/policies/round-robin.js';
import leastLoaded from '../../src/components/policies/least-loaded.js';
import swapAvoidance from '../../src/components/policies/swap-avoidance.js';
import mosix from '../../src/components/policies/mosix-load-balancer.js';
import memoryAffinity from '../../src/components/policies/memory-affinity.js';
import scratchBalance from '../../src/components/policies/scratch-balance.js';
import ioBalance from '../../src/components/policies/io-balance.js';
import memAlloc from '../../src/components/probes/mem-alloc.js';
import fsSpaceProbe from '../../src/components/probes/fs-space.js';
import { nodeLoads } from '../../src/components/policies/nodes.js';
import {
  LOCAL_LOAD_FACTOR,
  MIGRATION_MIN_INTERVAL_MS,
  REMOTE_PENALTY,
  mosixDecision,
  swapVictim,
  type BalancedProcess,
} from '../../src/core/load-balancing.js';
import { makeTree, refusal, silentLog } from './framework-fixtures.js';

const LOAD = BUILTIN_VALUE_TYPES.find((t) => t.name === 'load')!;
const PRESSURE = BUILTIN_VALUE_TYPES.find((t) => t.name === 'pressure')!;

function ctxFor(
  type: FilterType | PolicyType,
  overrides: Record<string, AttributeValue> = {},
  services: Partial<FrameworkServices> = {},
  valueType: ValueType = LOAD,
): ComponentContext {
  const attrs: Record<string, AttributeValue> = {};
  for (const spec of type.attributes ?? []) attrs[spec.name] = spec.default;
  Object.assign(attrs, overrides);
  return { path: `/test/${type.name}`, attrs, log: silentLog, services: { nodeName: 'local', log: silentLog, ...services }, valueType };
}

function filter(
  type: FilterType,
  attrs: Record<string, AttributeValue> = {},
  services: Partial<FrameworkServices> = {},
): { f: FilterBehaviour; ctx: ComponentContext } {
  const ctx = ctxFor(type, attrs, services);
  return { f: type.create(ctx), ctx };
}

function value(cells: number[], labels?: readonly string[], type: ValueType = LOAD): Value {
  const v = new Value(type, cells.length);
  v.setRows(cells.length / type.columns.length, labels ?? []);
  cells.forEach((c, i) => (v.data[i] = c));
  return v;
}

function cells(v: Value): number[] {
  return Array.from(v.data.subarray(0, v.rows * v.width));
}

describe('threshold', () => {
  test('passes an update only when its largest value is above the threshold, and copies it', () => {
    const { f } = filter(threshold, { threshold: 100 });
    const out = new Value(LOAD);
    assert.equal(f.update(value([50, 100]), out, 0), false, 'at the threshold: dropped');
    assert.equal(out.rows, 0, 'a dropped update leaves the output alone');
    assert.equal(f.update(value([50, 101]), out, 0), true);
    assert.deepEqual(cells(out), [50, 101]);
    assert.equal(f.update(value([]), out, 0), false, 'an empty value has no largest figure');
  });

  test('a new threshold applies after configure(); NaN never passes', () => {
    const { f, ctx } = filter(threshold, { threshold: 10 });
    const out = new Value(LOAD);
    assert.equal(f.update(value([5]), out, 0), false);
    ctx.attrs.threshold = 1;
    f.configure!();
    assert.equal(f.update(value([5]), out, 0), true);
    assert.equal(f.update(value([NaN]), out, 0), false);
  });

  test('property: passes exactly when max > threshold', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), { maxLength: 8 }),
        fc.double({ noNaN: true, min: -1e6, max: 1e6 }),
        (xs, t) => {
          const { f } = filter(threshold, { threshold: t });
          const out = new Value(LOAD);
          const passed = f.update(value(xs), out, 0);
          assert.equal(passed, xs.length > 0 && Math.max(...xs) > t);
          if (passed) assert.deepEqual(cells(out), xs);
        },
      ),
    );
  });
});

describe('freq_limit', () => {
  test('passes at most one update per min_interval_ms, measured with `now`', () => {
    const { f } = filter(freqLimit, { min_interval_ms: 1000 });
    const out = new Value(LOAD);
    const passed = [0, 500, 999, 1000, 1001, 1999, 2000, 5000].map((now) => f.update(value([now]), out, now));
    assert.deepEqual(passed, [true, false, false, true, false, false, true, true]);
    assert.deepEqual(cells(out), [5000]);
  });

  test('min_interval_ms 0 passes everything', () => {
    const { f } = filter(freqLimit, { min_interval_ms: 0 });
    const out = new Value(LOAD);
    assert.ok([1, 1, 1].every((now) => f.update(value([now]), out, now)));
  });
});

describe('ewma', () => {
  test('the first update primes; then out = alpha x in + (1 - alpha) x out, per cell', () => {
    const { f } = filter(ewma, { alpha: 0.5 });
    const out = new Value(LOAD);
    const labels = ['cpu0', 'cpu1'];
    assert.equal(f.update(value([10, 100], labels), out, 0), true);
    assert.deepEqual(cells(out), [10, 100]);
    f.update(value([20, 0], labels), out, 1);
    assert.deepEqual(cells(out), [15, 50]);
    f.update(value([20, 0], labels), out, 2);
    assert.deepEqual(cells(out), [17.5, 25]);
  });

  test('a change of rows or labels restarts the average; so does a new alpha', () => {
    const { f, ctx } = filter(ewma, { alpha: 0.5 });
    const out = new Value(LOAD);
    const a = ['cpu0'];
    f.update(value([10], a), out, 0);
    f.update(value([20], a), out, 0);
    assert.deepEqual(cells(out), [15]);
    f.update(value([40, 40], ['cpu0', 'cpu1']), out, 0);
    assert.deepEqual(cells(out), [40, 40], 'new shape: restarted');
    ctx.attrs.alpha = 1;
    f.configure!();
    const b = ['x', 'y'];
    f.update(value([1, 2], b), out, 0);
    f.update(value([3, 4], b), out, 0);
    assert.deepEqual(cells(out), [3, 4], 'alpha 1: the newest update alone');
  });

  test('property: the average stays within the range of its inputs', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.001, max: 1, noNaN: true }),
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 30 }),
        (alpha, xs) => {
          const { f } = filter(ewma, { alpha });
          const out = new Value(LOAD);
          const labels = ['l'];
          for (const x of xs) f.update(value([x], labels), out, 0);
          const eps = 1e-6 * (1 + Math.max(...xs.map(Math.abs)));
          assert.ok(out.get(0) >= Math.min(...xs) - eps && out.get(0) <= Math.max(...xs) + eps);
        },
      ),
    );
  });
});

describe('rate', () => {
  test('per-second difference between updates; the first only primes', () => {
    const { f } = filter(rate);
    const out = new Value(LOAD);
    const labels = ['a', 'b'];
    assert.equal(f.update(value([100, 10], labels), out, 1000), false);
    assert.equal(f.update(value([300, 10], labels), out, 1500), true);
    assert.deepEqual(cells(out), [400, 0]);
    assert.deepEqual(out.labels, labels);
    assert.equal(f.update(value([200, 20], labels), out, 2500), true);
    assert.deepEqual(cells(out), [-100, 10]);
  });

  test('a change of shape, or time not moving forward, primes again instead of dividing by zero', () => {
    const { f } = filter(rate);
    const out = new Value(LOAD);
    f.update(value([1], ['a']), out, 1000);
    assert.equal(f.update(value([2], ['a']), out, 1000), false, 'same instant');
    assert.equal(f.update(value([3, 4], ['a', 'b']), out, 2000), false, 'new rows');
    assert.equal(f.update(value([5, 8], ['a', 'b']), out, 3000), false, 'new labels array (a different shape as far as the filter knows)');
    const labels = ['a', 'b'];
    f.update(value([5, 8], labels), out, 3000);
    assert.equal(f.update(value([7, 8], labels), out, 4000), true);
    assert.deepEqual(cells(out), [2, 0]);
    assert.ok(cells(out).every(Number.isFinite));
  });
});

describe('hysteresis', () => {
  test('opens above high, passes while open, passes the update that closes it below low, then drops', () => {
    const { f } = filter(hysteresis, { high: 80, low: 20 });
    const out = new Value(LOAD);
    const seq = [10, 80, 81, 50, 20, 19, 50, 81, 90];
    const passed = seq.map((x) => f.update(value([x]), out, 0));
    assert.deepEqual(passed, [false, false, true, true, true, true, false, true, true]);
  });

  test('low above high is refused by configure(); equal is fine', () => {
    const { f, ctx } = filter(hysteresis, { high: 10, low: 10 });
    assert.doesNotThrow(() => f.configure!());
    ctx.attrs.low = 11;
    assert.throws(() => f.configure!(), /low 11 must not be above high 10/);
  });

  test('through the tree: a write that puts low above high is EINVAL and keeps the old value', async () => {
    const { tree } = makeTree();
    await tree.mkdir('/schedulers/s');
    await tree.mkdir('/schedulers/s/counter');
    await tree.mkdir('/schedulers/s/counter/node_load/hysteresis');
    const h = '/schedulers/s/counter/node_load/hysteresis';
    assert.throws(() => tree.write(`${h}/low`, '1'), refusal('EINVAL', /must not be above high/));
    assert.equal(tree.read(`${h}/low`), '0\n');
    tree.write(`${h}/high`, '5');
    tree.write(`${h}/low`, '1');
    assert.equal(tree.read(`${h}/low`), '1\n');
  });
});

class FakeRemote implements RemoteValues {
  readonly nodeName = 'n1';
  published: Array<{ key: string; labels: string[]; data: number[] }> = [];
  rows: RemoteRow[] = [];
  fail = false;

  async publish(key: string, labels: readonly string[], data: ArrayLike<number>): Promise<void> {
    this.published.push({ key, labels: [...labels], data: Array.from(data) });
  }

  async fetch(): Promise<RemoteRow[]> {
    if (this.fail) throw new Error('network down');
    return this.rows;
  }
}

describe('remote_cache', () => {
  test('without services.remote it passes the local value as it is', () => {
    const { f } = filter(remoteCache);
    const out = new Value(LOAD);
    const labels = ['cpu0', 'cpu1'];
    assert.equal(f.update(value([1, 2], labels), out, 0), true);
    assert.deepEqual(cells(out), [1, 2]);
    assert.equal(out.labels, labels);
    f.destroy?.();
  });

  test('prefetch publishes the latest local value and merges the other nodes after the local rows', async () => {
    const remote = new FakeRemote();
    const { f } = filter(remoteCache, { prefetch_period_ms: 100_000 }, { remote });
    const prefetch = (): Promise<void> => (f as unknown as { prefetch(): Promise<void> }).prefetch();
    try {
      const out = new Value(LOAD);
      const local = value([500], []);
      f.update(local, out, 0);
      assert.deepEqual(cells(out), [500], 'nothing fetched yet: local only');
      remote.rows = [
        { node: 'n2', labels: [], data: [100] },
        { node: 'n3', labels: ['cpu0', 'cpu1'], data: [30, 40] },
      ];
      await prefetch();
      assert.deepEqual(remote.published, [{ key: '/test/remote_cache', labels: [], data: [500] }]);
      f.update(local, out, 1);
      assert.deepEqual(cells(out), [500, 100, 30, 40]);
      assert.deepEqual(out.labels, ['n1', 'n2', 'n3:cpu0', 'n3:cpu1']);
      // The policies read node names out of these labels.
      assert.deepEqual(
        [...nodeLoads(out, 'n1')],
        [
          ['n1', 500],
          ['n2', 100],
          ['n3', 70],
        ],
      );
      // A new local value is merged with the cached remote rows, without waiting.
      f.update(value([7], []), out, 2);
      assert.deepEqual(cells(out), [7, 100, 30, 40]);
      // A failed fetch keeps serving the cache.
      remote.fail = true;
      await prefetch();
      f.update(value([8], []), out, 3);
      assert.deepEqual(cells(out), [8, 100, 30, 40]);
      // A node that went away disappears at the next successful fetch.
      remote.fail = false;
      remote.rows = [{ node: 'n2', labels: [], data: [90] }];
      await prefetch();
      f.update(value([8], []), out, 4);
      assert.deepEqual(cells(out), [8, 90]);
      assert.deepEqual(out.labels, ['n1', 'n2']);
    } finally {
      f.destroy?.();
    }
  });

  test('labelled local rows keep their labels in front of the remote rows; short remote data reads as 0', async () => {
    const remote = new FakeRemote();
    const { f } = filter(remoteCache, { prefetch_period_ms: 100_000 }, { remote });
    try {
      remote.rows = [{ node: 'n2', labels: ['cpu0', 'cpu1'], data: [5] }];
      await (f as unknown as { prefetch(): Promise<void> }).prefetch();
      const out = new Value(LOAD);
      f.update(value([1, 2], ['cpu0', 'cpu1']), out, 0);
      assert.deepEqual(out.labels, ['cpu0', 'cpu1', 'n2:cpu0', 'n2:cpu1']);
      assert.deepEqual(cells(out), [1, 2, 5, 0]);
      assert.deepEqual(
        [...nodeLoads(out, 'n1')],
        [
          ['n1', 3],
          ['n2', 5],
        ],
      );
    } finally {
      f.destroy?.();
    }
  });
});

describe('mosixDecision (Kerrighed/MOSIX rule)', () => {
  const loads = (o: Record<string, number>): Map<string, number> => new Map(Object.entries(o));

  test('moves the heaviest eligible process to the place minimising remote + 1.3 x its load', () => {
    const d = mosixDecision({
      now: 10_000,
      lastMigrationAt: 0,
      loads: loads({ cpu0: 2000, cpu1: 500, cpu2: 300 }),
      processes: [
        { pid: 1, load: 1000, place: 'cpu0' },
        { pid: 2, load: 900, place: 'cpu0' },
        { pid: 3, load: 500, place: 'cpu1' },
      ],
    });
    assert.deepEqual(d, { pid: 1, from: 'cpu0', to: 'cpu2', cost: 300 + 1000 * REMOTE_PENALTY, localLoad: 2000 });
  });

  test('no move within 2 s of the last one; at exactly 2 s it may', () => {
    const input = { loads: loads({ a: 3000, b: 0 }), processes: [{ pid: 1, load: 1000, place: 'a' }], local: 'a' };
    assert.equal(MIGRATION_MIN_INTERVAL_MS, 2000);
    assert.equal(mosixDecision({ ...input, now: 1999, lastMigrationAt: 0 }), null);
    assert.equal(mosixDecision({ ...input, now: 2000, lastMigrationAt: 0 })?.to, 'b');
  });

  test('the local load must be at least 1.5 x the process load', () => {
    const base = { now: 5000, lastMigrationAt: 0, local: 'a' };
    assert.equal(mosixDecision({ ...base, loads: loads({ a: 1499, b: 0 }), processes: [{ pid: 1, load: 1000, place: 'a' }] }), null);
    assert.equal(mosixDecision({ ...base, loads: loads({ a: 1500, b: 0 }), processes: [{ pid: 1, load: 1000, place: 'a' }] })?.pid, 1);
  });

  test('no move when the cost is not below the local load (it would not pay)', () => {
    const base = { now: 5000, lastMigrationAt: 0, local: 'a', processes: [{ pid: 1, load: 1000, place: 'a' }] };
    assert.equal(mosixDecision({ ...base, loads: loads({ a: 2000, b: 700 }) }), null, '700 + 1300 = 2000 is not below 2000');
    assert.equal(mosixDecision({ ...base, loads: loads({ a: 2000, b: 699 }) })?.to, 'b');
    assert.equal(mosixDecision({ ...base, loads: loads({ a: 2000 }) }), null, 'alone: nowhere to go');
  });

  test('only processes at the local place are candidates; the most loaded place is local by default', () => {
    assert.equal(
      mosixDecision({ now: 5000, lastMigrationAt: 0, loads: loads({ a: 3000, b: 0 }), processes: [{ pid: 1, load: 1000, place: 'b' }] }),
      null,
    );
    assert.equal(
      mosixDecision({ now: 5000, lastMigrationAt: 0, loads: loads({ a: 100, b: 3000 }), processes: [{ pid: 1, load: 1000, place: 'b' }] })
        ?.from,
      'b',
    );
  });

  test('property: every decision obeys the rule, and no decision means no process would pay', () => {
    const place = fc.constantFrom('p0', 'p1', 'p2', 'p3');
    fc.assert(
      fc.property(
        fc.dictionary(place, fc.integer({ min: 0, max: 10_000 }), { minKeys: 1 }),
        fc.array(fc.record({ pid: fc.integer({ min: 1, max: 50 }), load: fc.integer({ min: 0, max: 5000 }), place }), { maxLength: 8 }),
        fc.integer({ min: 0, max: 5000 }),
        (loadRecord, procs, elapsed) => {
          const processes: BalancedProcess[] = procs.filter((p, i) => procs.findIndex((q) => q.pid === p.pid) === i);
          const loadMap = loads(loadRecord);
          const d = mosixDecision({ now: 100_000 + elapsed, lastMigrationAt: 100_000, loads: loadMap, processes });
          if (elapsed < 2000) {
            assert.equal(d, null);
            return;
          }
          const localLoad = Math.max(...loadMap.values());
          const local = [...loadMap]
            .filter(([, l]) => l === localLoad)
            .map(([p]) => p)
            .sort()[0]!;
          const best = (p: BalancedProcess): number =>
            Math.min(...[...loadMap].filter(([pl]) => pl !== local).map(([, l]) => l + p.load * REMOTE_PENALTY));
          const eligible = processes.filter((p) => p.place === local && p.load > 0 && localLoad >= LOCAL_LOAD_FACTOR * p.load);
          if (d === null) {
            for (const p of eligible) assert.ok(!(best(p) < localLoad), `pid ${p.pid} would pay`);
            return;
          }
          const p = processes.find((q) => q.pid === d.pid)!;
          assert.equal(d.from, local);
          assert.equal(p.place, local);
          assert.notEqual(d.to, local);
          assert.ok(localLoad >= LOCAL_LOAD_FACTOR * p.load);
          assert.ok(Math.abs(d.cost - (loadMap.get(d.to)! + p.load * REMOTE_PENALTY)) < 1e-9);
          assert.ok(d.cost < localLoad);
          assert.ok(Math.abs(d.cost - best(p)) < 1e-9, 'the target minimises the cost');
          // The heaviest process that pays is the one moved.
          for (const q of eligible) if (q.load > p.load) assert.ok(!(best(q) < localLoad));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('swapVictim', () => {
  test('the busy slice with the fewest shares, then the busiest, then by name; excluded and idle slices never', () => {
    const slices = [
      { name: 'gold', shares: 400, usage: 900 },
      { name: 'bronze', shares: 100, usage: 10 },
      { name: 'bronze2', shares: 100, usage: 50 },
      { name: 'idle', shares: 1, usage: 0 },
    ];
    assert.equal(swapVictim(slices, new Set()), 'bronze2');
    assert.equal(swapVictim(slices, new Set(['bronze2'])), 'bronze');
    assert.equal(swapVictim(slices, new Set(['bronze2', 'bronze'])), 'gold');
    assert.equal(swapVictim(slices, new Set(['bronze2', 'bronze', 'gold'])), null);
    assert.equal(swapVictim([], new Set()), null);
  });

  test('property: the victim is busy, not excluded, and no other candidate has fewer shares', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            name: fc.string({ minLength: 1, maxLength: 4 }),
            shares: fc.integer({ min: 1, max: 10 }),
            usage: fc.integer({ min: 0, max: 100 }),
          }),
          { selector: (s) => s.name, maxLength: 10 },
        ),
        fc.array(fc.string({ minLength: 1, maxLength: 4 }), { maxLength: 3 }),
        (slices, excludedNames) => {
          const exclude = new Set(excludedNames);
          const victim = swapVictim(slices, exclude);
          const candidates = slices.filter((s) => s.usage > 0 && !exclude.has(s.name));
          if (candidates.length === 0) return assert.equal(victim, null);
          const v = candidates.find((s) => s.name === victim)!;
          assert.ok(v);
          for (const s of candidates) assert.ok(s.shares > v.shares || (s.shares === v.shares && s.usage <= v.usage));
        },
      ),
    );
  });
});

describe('swap_avoidance policy', () => {
  test('freezes the victim under pressure, refuses new tasks, thaws below low', () => {
    const calls: string[] = [];
    const freezer = {
      candidates: () => [
        { name: 'low', shares: 10, usage: 5 },
        { name: 'high', shares: 100, usage: 5 },
      ],
      setFrozen: (s: string, f: boolean) => void calls.push(`${s}:${f}`),
    };
    const ctx = ctxFor(swapAvoidance, { high: 10, low: 2 }, { sliceFreezer: freezer });
    const p = swapAvoidance.create(ctx);
    const task = { parentPid: 1, sessionId: null, slice: null };
    assert.equal(p.newTaskNode!(task), null);
    p.onUpdate!(0, value([12, 0], [], PRESSURE), 0);
    assert.deepEqual(calls, ['low:true']);
    assert.match((p.newTaskNode!(task) as { refuse: string }).refuse, /memory pressure 12% is at or above 10%/);
    p.onUpdate!(0, value([11, 0], [], PRESSURE), 0);
    assert.deepEqual(calls, ['low:true'], 'one slice at a time');
    p.onUpdate!(0, value([5, 0], [], PRESSURE), 0);
    assert.deepEqual(calls, ['low:true'], 'between low and high: nothing changes');
    p.onUpdate!(0, value([1, 0], [], PRESSURE), 0);
    assert.deepEqual(calls, ['low:true', 'low:false']);
    assert.equal(p.newTaskNode!(task), null);
  });

  test("with the nodes' pressures a cluster task goes to the least pressured calm node, and is refused when every node is pressed", () => {
    const ctx = ctxFor(swapAvoidance, { high: 10, low: 2 }, { nodeName: 'n1' });
    const p = swapAvoidance.create(ctx);
    const task = { parentPid: 1, sessionId: null, slice: 's', nodes: ['n1', 'n2', 'n3'] };
    const pressures = (figures: number[]): void => {
      ctx.ports = {
        memory_pressure: value(
          figures.flatMap((f) => [f, 0]),
          ['n1', 'n2', 'n3'],
          PRESSURE,
        ),
      };
      p.onUpdate!(0, ctx.ports.memory_pressure!, 0);
    };
    pressures([1, 2, 3]);
    assert.equal(p.newTaskNode!(task), null, 'no node is pressed: no opinion');
    pressures([12, 4, 3]);
    assert.equal(p.newTaskNode!(task), 'n3', 'away from n1, to the least pressured');
    assert.equal(p.newTaskNode!({ ...task, nodes: ['n1', 'n2'] }), 'n2');
    pressures([12, 14, 10]);
    assert.match((p.newTaskNode!(task) as { refuse: string }).refuse, /at or above 10% on every node of the task: n1 12%, n2 14%, n3 10%/);
    assert.equal(p.newTaskNode!({ ...task, nodes: ['n1', 'n9'] }), 'n9', 'n9 is not heard from: it may take the task');
  });
});

describe('placement policies', () => {
  function policyWithPort(type: PolicyType, port: Value | null, nodeName = 'n1') {
    const ctx = ctxFor(type, {}, { nodeName });
    ctx.ports = { node_load: port };
    return type.create(ctx);
  }
  const task = { parentPid: 1, sessionId: null, slice: null };

  test('round_robin cycles through the node names in order; alone it answers this node', () => {
    const v = value([10, 20, 30, 40], ['n3', 'n1:cpu0', 'n2', 'cpu1']);
    const p = policyWithPort(roundRobin, v);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7].map(() => p.newTaskNode!(task)),
      ['n1', 'n2', 'n3', 'n1', 'n2', 'n3', 'n1'],
    );
    assert.equal(policyWithPort(roundRobin, null).newTaskNode!(task), 'n1');
    assert.equal(policyWithPort(roundRobin, value([], [])).newTaskNode!(task), 'n1');
  });

  test('least_loaded picks the node with the lowest summed load, ties by name', () => {
    const v = value([10, 15, 20, 30, 25], ['cpu0', 'cpu1', 'n2', 'n3:cpu0', 'n3:cpu1']);
    assert.equal(policyWithPort(leastLoaded, v).newTaskNode!(task), 'n2', 'n1 25, n2 20, n3 55');
    assert.equal(policyWithPort(leastLoaded, value([5, 5], ['b', 'a'])).newTaskNode!(task), 'a');
    assert.equal(policyWithPort(leastLoaded, null).newTaskNode!(task), 'n1');
  });

  test('least_loaded counts its own placements (task_load each) until the next load update: no herd on one node', () => {
    const ctx = ctxFor(leastLoaded, {}, { nodeName: 'n1' });
    ctx.ports = { node_load: value([500, 500, 500], ['n1', 'n2', 'n3']) };
    const p = leastLoaded.create(ctx);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map(() => p.newTaskNode!(task)),
      ['n1', 'n2', 'n3', 'n1', 'n2', 'n3'],
    );
    ctx.ports.node_load = value([2000, 100, 500], ['n1', 'n2', 'n3']);
    p.onUpdate!(0, ctx.ports.node_load, 0);
    assert.deepEqual(
      [1, 2, 3].map(() => p.newTaskNode!(task)),
      ['n2', 'n3', 'n2'],
      'after an update: 100, then 500 < 1100, then 1100 < 1500',
    );
    const only = p.newTaskNode!({ ...task, nodes: ['n1'] });
    assert.equal(only, 'n1', 'the candidates of a cluster task bound the choice');
    assert.equal(p.newTaskNode!({ ...task, nodes: ['elsewhere'] }), null, 'no load known for any candidate: no answer');
  });

  test('property: least_loaded answers a node whose load is minimal', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'cpu0', 'b:x'), fc.integer({ min: 0, max: 1000 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (rows) => {
          const v = value(
            rows.map((r) => r[1]),
            rows.map((r) => r[0]),
          );
          const expected = nodeLoads(v, 'n1');
          const chosen = policyWithPort(leastLoaded, v).newTaskNode!(task) as string;
          assert.equal(expected.get(chosen), Math.min(...expected.values()));
        },
      ),
    );
  });
});

describe('mosix_load_balancer between nodes', () => {
  const PROCESS_LOAD = BUILTIN_VALUE_TYPES.find((t) => t.name === 'process_load')!;
  function balancer(taskOf: (pid: number) => string | null, members: number[], handleAll = false) {
    const moves: string[] = [];
    const ctx = ctxFor(
      mosix,
      {},
      {
        nodeName: 'n1',
        taskMigration: {
          taskOf,
          migrate: async (task, node, by) => void moves.push(`${task}->${node} by ${by}`),
          lastMigration: () => null,
          migrationsUnderWay: () => 0,
        },
      },
    );
    ctx.processSet = { handleAll, pids: () => members } as unknown as ComponentContext['processSet'];
    ctx.ports = { node_load: null, process_load: value([900, 800, 100], ['11', '12', '13'], PROCESS_LOAD) };
    return { p: mosix.create(ctx), moves };
  }

  test('moves the migratable task the rule picks to the node it picks, and only tasks are candidates', () => {
    // n1 carries 2000; n2 500, n3 1200 (summed from remote_cache rows). pid 11 is no task: 12 (800) goes to n2 (500 + 1040 < 2000).
    const { p, moves } = balancer((pid) => (pid === 12 ? 'task12' : pid === 13 ? 'task13' : null), [11, 12, 13]);
    const loads = value([1200, 800, 500, 600, 600], ['cpu0', 'cpu1', 'n2', 'n3:cpu0', 'n3:cpu1']);
    p.onUpdate!(0, loads, 10_000);
    assert.deepEqual(moves, ['task12->n2 by mosix_load_balancer']);
    p.onUpdate!(0, loads, 11_000);
    assert.equal(moves.length, 1, 'at most one move per 2 s');
    const status = p.status!() as { migrations: number; last: { task: string; to: string; acted: boolean } };
    assert.deepEqual([status.migrations, status.last.task, status.last.to, status.last.acted], [1, 'task12', 'n2', true]);
  });

  test('a process set that handles all processes lists none by pid: every process is a candidate', () => {
    const { p, moves } = balancer((pid) => (pid === 12 ? 'task12' : null), []);
    const all = balancer((pid) => (pid === 12 ? 'task12' : null), [], true);
    all.p.onUpdate!(0, value([2000, 500], ['n1', 'n2']), 10_000);
    assert.deepEqual(all.moves, ['task12->n2 by mosix_load_balancer']);
    p.onUpdate!(0, value([2000, 500], ['n1', 'n2']), 10_000);
    assert.deepEqual(moves, [], 'a set listing no pid and not handling all has no candidate');
  });

  test('without a migratable task, or when no node would be better off, nothing moves', () => {
    const none = balancer(() => null, [11, 12, 13]);
    none.p.onUpdate!(0, value([2000, 0], ['n1', 'n2']), 10_000);
    assert.deepEqual(none.moves, []);
    const balanced = balancer((pid) => `task${pid}`, [12]);
    balanced.p.onUpdate!(0, value([1000, 900], ['n1', 'n2']), 10_000);
    assert.deepEqual(balanced.moves, [], '900 + 1.3 x 800 is not below 1000');
  });
});

describe('memory_affinity, scratch_balance and io_balance', () => {
  const MEMORY = BUILTIN_VALUE_TYPES.find((t) => t.name === 'memory')!;
  const SPACE = BUILTIN_VALUE_TYPES.find((t) => t.name === 'space')!;
  const task = { parentPid: 1, sessionId: null, slice: null };

  test('memory_affinity picks the node with the most available memory among the candidates', () => {
    const ctx = ctxFor(memoryAffinity, {}, { nodeName: 'n1' }, MEMORY);
    // total, available, used_pct per node: this node unlabelled, the others from remote_cache.
    ctx.ports = { node_memory: value([8e9, 2e9, 75, 8e9, 6e9, 25, 8e9, 5e9, 37], ['', 'n2', 'n3:memory'], MEMORY) };
    const p = memoryAffinity.create(ctx);
    assert.equal(p.newTaskNode!(task), 'n2');
    assert.equal(p.newTaskNode!({ ...task, nodes: ['n1', 'n3'] }), 'n3');
    assert.equal(p.newTaskNode!({ ...task, nodes: ['n9'] }), null, 'no figure for any candidate: no answer');
    ctx.ports.node_memory = null;
    assert.equal(p.newTaskNode!(task), null);
  });

  test('scratch_balance picks the node with the most free scratch space', () => {
    const ctx = ctxFor(scratchBalance, {}, { nodeName: 'n1' }, SPACE);
    ctx.ports = { node_space: value([10, 100, 30, 100, 20, 100], ['', 'n2', 'n3'], SPACE) };
    const p = scratchBalance.create(ctx);
    assert.equal(p.newTaskNode!(task), 'n2');
    assert.equal(p.newTaskNode!({ ...task, nodes: ['n1', 'n3'] }), 'n3');
  });

  test('io_balance picks the node whose disks move the fewest bytes per second, read and write summed', () => {
    const IO = BUILTIN_VALUE_TYPES.find((t) => t.name === 'io_usage')!;
    const ctx = ctxFor(ioBalance, {}, { nodeName: 'n1' }, IO);
    // read_bytes write_bytes read_ops write_ops per second: n1 reads a lot, n2 writes a lot, n3 little.
    ctx.ports = { node_io: value([9e6, 0, 90, 0, 0, 8e6, 0, 80, 1e6, 2e6, 10, 20], ['', 'n2', 'n3:io'], IO) };
    const p = ioBalance.create(ctx);
    assert.equal(p.newTaskNode!(task), 'n3');
    assert.equal(p.newTaskNode!({ ...task, nodes: ['n1', 'n2'] }), 'n2', '8 MB/s written is less than 9 MB/s read');
    ctx.ports.node_io = null;
    assert.equal(p.newTaskNode!(task), null, 'no figures: no answer');
  });

  test('mem_alloc publishes what is not promised; fs_space measures the path with {node} replaced', () => {
    const out = new Value(MEMORY, 1);
    const probe = memAlloc.create({
      path: '/probes/mem_alloc',
      attrs: {},
      log: silentLog,
      services: { nodeName: 'n1', log: silentLog, nodeAllocation: { memory: () => ({ capacityBytes: 4000, promisedBytes: 1000 }) } },
      valueType: MEMORY,
    });
    probe.refresh([out], 0);
    assert.deepEqual([out.get(0, 0), out.get(0, 1), out.get(0, 2)], [4000, 3000, 25]);

    const asked: string[] = [];
    const space = new Value(SPACE, 1);
    const fs = fsSpaceProbe.create({
      path: '/probes/fs_space',
      attrs: { path: '/scratch/{node}/tmp' },
      log: silentLog,
      services: {
        nodeName: 'n7',
        log: silentLog,
        filesystems: { space: (p) => (asked.push(p), p.includes('n7') ? { freeBytes: 5, totalBytes: 9 } : null) },
      },
      valueType: SPACE,
    });
    fs.refresh([space], 0);
    assert.deepEqual(asked, ['/scratch/n7/tmp']);
    assert.deepEqual([space.rows, space.get(0, 0), space.get(0, 1)], [1, 5, 9]);
    assert.throws(() => fsSpaceProbe.attributes![0]!.parse('relative/path'), /must be an absolute path/);
  });
});
