import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildTree, controlStep, sliceDemand, type ControlInput, type ControlOutput } from '../../src/core/cpu-control.js';
import { domainKey, sliceKey } from '../../src/core/layout.js';
import { MIN_WEIGHT } from '../../src/core/entitlement.js';
import {
  DEFAULT_DOMAIN_PIDS,
  DEFAULT_IO,
  DEFAULT_SLICE_PIDS,
  DEFAULT_MEMORY,
  emptyState,
  type CpuAllocation,
  type DesiredState,
} from '../../src/core/model.js';

const HUNGRY = 1_000_000;

function cpu(partial: Partial<CpuAllocation> = {}): CpuAllocation {
  return { reservation: 0, limit: null, shares: 100, ...partial };
}

function addSlice(state: DesiredState, name: string, partial: Partial<CpuAllocation> = {}, domain: string | null = null): DesiredState {
  state.slices.set(name, {
    name,
    user: `sl-${name}`,
    userCreated: true,
    cpu: cpu(partial),
    memory: DEFAULT_MEMORY,
    io: DEFAULT_IO,
    pids: DEFAULT_SLICE_PIDS,
    domain,
    net: null,
  });
  return state;
}

function addDomain(state: DesiredState, name: string, partial: Partial<CpuAllocation> = {}, parent: string | null = null): DesiredState {
  state.domains.set(name, { name, cpu: cpu(partial), memory: DEFAULT_MEMORY, io: DEFAULT_IO, pids: DEFAULT_DOMAIN_PIDS, parent });
  return state;
}

function step(state: DesiredState, overrides: Partial<ControlInput> = {}): ControlOutput {
  const demand = new Map<string, number>();
  for (const name of state.slices.keys()) demand.set(name, HUNGRY);
  return controlStep({
    state,
    capacity: 2000,
    demand,
    usage: new Map(),
    mode: 'entitlement',
    gain: 0,
    corrections: new Map(),
    ...overrides,
  });
}

function w(out: ControlOutput, id: string): number {
  const value = out.weights.get(id);
  assert.ok(value !== undefined, `no weight for ${id}`);
  return value;
}

function e(out: ControlOutput, id: string): number {
  const node = out.result.nodes.get(id);
  assert.ok(node, `no entitlement for ${id}`);
  return node.entitlement;
}

function corr(out: ControlOutput, id: string): number {
  const value = out.corrections.get(id);
  assert.ok(value !== undefined, `no correction for ${id}`);
  return value;
}

describe('buildTree', () => {
  test('slices and domains are placed under their domains, with parents recorded', () => {
    const state = emptyState();
    addDomain(state, 'org');
    addDomain(state, 'team', {}, 'org');
    addSlice(state, 'top');
    addSlice(state, 'inner', { shares: 7 }, 'team');
    addSlice(state, 'mid', {}, 'org');
    const tree = buildTree(state, new Map([['inner', 250]]));
    assert.deepEqual(tree.roots.map((n) => n.id).sort(), ['domain/org', 'slice/top']);
    const org = tree.roots.find((n) => n.id === 'domain/org')!;
    assert.deepEqual(org.children?.map((n) => n.id).sort(), ['domain/team', 'slice/mid']);
    const team = org.children!.find((n) => n.id === 'domain/team')!;
    assert.equal(team.children?.length, 1);
    const inner = team.children![0]!;
    assert.equal(inner.id, 'slice/inner');
    assert.equal(inner.demand, 250);
    assert.equal(inner.cpu.shares, 7);
    assert.equal(tree.parents.get('slice/inner'), 'domain/team');
    assert.equal(tree.parents.get('domain/team'), 'domain/org');
    assert.equal(tree.parents.get('slice/mid'), 'domain/org');
    assert.equal(tree.parents.get('domain/org'), '');
    assert.equal(tree.parents.get('slice/top'), '');
  });

  test('slices without an estimate have no demand', () => {
    const state = addSlice(emptyState(), 'a');
    assert.equal(buildTree(state, new Map()).roots[0]?.demand, 0);
  });

  test('a member of a missing domain is placed at the node level rather than lost', () => {
    const state = addSlice(emptyState(), 'orphan', {}, 'gone');
    const tree = buildTree(state, new Map());
    assert.deepEqual(
      tree.roots.map((n) => n.id),
      ['slice/orphan'],
    );
    assert.equal(tree.parents.get('slice/orphan'), '');
  });

  test('domains without members get an empty child list', () => {
    const tree = buildTree(addDomain(emptyState(), 'd'), new Map());
    assert.deepEqual(tree.roots[0]?.children, []);
  });
});

describe('controlStep: entitlement mode', () => {
  test('the largest sibling weight is 10000 and hungry ratios equal entitlement ratios', () => {
    const state = emptyState();
    addSlice(state, 'a', { shares: 1 });
    addSlice(state, 'b', { shares: 2 });
    addSlice(state, 'c', { shares: 4 });
    const out = step(state);
    assert.equal(w(out, 'slice/c'), 10000);
    assert.equal(w(out, 'slice/b'), 5000);
    assert.equal(w(out, 'slice/a'), 2500);
    assert.ok(Math.abs(e(out, 'slice/a') - 2000 / 7) < 1e-9);
  });

  test('a reservation shows up in the weights', () => {
    const state = emptyState();
    addSlice(state, 'reserved', { reservation: 1200, shares: 1 });
    addSlice(state, 'x', { shares: 10 });
    addSlice(state, 'y', { shares: 10 });
    const out = step(state);
    assert.equal(w(out, 'slice/reserved'), 10000);
    const expected = (e(out, 'slice/x') / e(out, 'slice/reserved')) * 10000;
    assert.ok(Math.abs(w(out, 'slice/x') - expected) <= 0.5, `${w(out, 'slice/x')} vs ${expected}`);
    assert.equal(w(out, 'slice/x'), w(out, 'slice/y'));
  });

  test('each sibling group is normalised on its own', () => {
    const state = emptyState();
    addDomain(state, 'team', { shares: 100 });
    addSlice(state, 'outside', { shares: 300 });
    addSlice(state, 't1', { shares: 1 }, 'team');
    addSlice(state, 't2', { shares: 3 }, 'team');
    const out = step(state);
    assert.equal(w(out, 'slice/outside'), 10000);
    assert.equal(w(out, 'domain/team'), 3333);
    assert.equal(w(out, 'slice/t2'), 10000);
    assert.equal(w(out, 'slice/t1'), 3333);
  });

  test('the first step (no usage yet) makes no correction', () => {
    const state = addSlice(addSlice(emptyState(), 'a'), 'b');
    const out = step(state, { gain: 0.5 });
    assert.equal(corr(out, 'slice/a'), 1);
    assert.equal(corr(out, 'slice/b'), 1);
    assert.equal(w(out, 'slice/a'), 10000);
    assert.equal(w(out, 'slice/b'), 10000);
  });

  test('property: weights are whole numbers in 1..10000, the largest of each group is 10000, corrections stay in [0.25, 4]', () => {
    const arb = fc.record({
      slices: fc.array(
        fc.record({
          shares: fc.integer({ min: 1, max: 10000 }),
          reservation: fc.integer({ min: 0, max: 400 }),
          demand: fc.integer({ min: 0, max: 3000 }),
          usage: fc.option(fc.integer({ min: 0, max: 3000 }), { nil: undefined }),
          inDomain: fc.boolean(),
          correction: fc.option(fc.double({ min: 0.01, max: 100, noNaN: true }), { nil: undefined }),
        }),
        { minLength: 1, maxLength: 8 },
      ),
      gain: fc.double({ min: 0, max: 1, noNaN: true }),
      capacity: fc.integer({ min: 0, max: 8000 }),
    });
    fc.assert(
      fc.property(arb, ({ slices, gain, capacity }) => {
        const state = addDomain(emptyState(), 'd', { reservation: 0 });
        const demand = new Map<string, number>();
        const usage = new Map<string, number>();
        const corrections = new Map<string, number>();
        slices.forEach((s, i) => {
          const name = `s${i}`;
          addSlice(state, name, { shares: s.shares, reservation: s.inDomain ? 0 : s.reservation }, s.inDomain ? 'd' : null);
          demand.set(name, s.demand);
          if (s.usage !== undefined) usage.set(sliceKey(name), s.usage);
          if (s.correction !== undefined) corrections.set(sliceKey(name), s.correction);
        });
        const out = step(state, { capacity, demand, usage, corrections, gain });
        const parents = buildTree(state, demand).parents;
        const maxByGroup = new Map<string, number>();
        for (const [id, weight] of out.weights) {
          assert.ok(Number.isInteger(weight) && weight >= 1 && weight <= 10000, `${id}: ${weight}`);
          const g = parents.get(id)!;
          maxByGroup.set(g, Math.max(maxByGroup.get(g) ?? 0, weight));
        }
        for (const max of maxByGroup.values()) assert.equal(max, 10000);
        for (const [id, c] of out.corrections) assert.ok(c >= 0.25 && c <= 4, `${id}: ${c}`);
        assert.equal(out.weights.size, out.result.nodes.size);
      }),
      { numRuns: 300 },
    );
  });

  test('property: with no correction, hungry siblings’ weight ratios equal their entitlement ratios', () => {
    const arb = fc.array(fc.record({ shares: fc.integer({ min: 1, max: 10000 }), reservation: fc.integer({ min: 0, max: 300 }) }), {
      minLength: 2,
      maxLength: 6,
    });
    fc.assert(
      fc.property(arb, (specs) => {
        const state = emptyState();
        specs.forEach((s, i) => addSlice(state, `s${i}`, s));
        const out = step(state); // everyone hungry; reservations total at most 1800 < 2000
        const ids = specs.map((_, i) => sliceKey(`s${i}`));
        const top = Math.max(...ids.map((id) => e(out, id)));
        for (const id of ids) {
          // Below 1m the raw weight is floored at MIN_WEIGHT so that nobody is starved.
          if (e(out, id) < MIN_WEIGHT) continue;
          const expected = (e(out, id) / top) * 10000;
          assert.ok(Math.abs(w(out, id) - expected) <= 0.5 + 1e-9, `${id}: weight ${w(out, id)}, expected ${expected}`);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('sliceDemand: a new slice', () => {
  test('with threads counts as hungry; with none wants nothing; later it is usage plus wait', () => {
    assert.equal(sliceDemand({ fresh: true, tasks: 3, usedMc: NaN, waitedMc: 0 }), Infinity);
    assert.equal(sliceDemand({ fresh: true, tasks: 0, usedMc: NaN, waitedMc: 0 }), 0);
    assert.equal(sliceDemand({ fresh: false, tasks: 2, usedMc: 300, waitedMc: 120 }), 420);
  });

  test('property: slices without threads, new or not, and domains made only of them are entitled to nothing', () => {
    const arb = fc.record({
      slices: fc.array(
        fc.record({
          shares: fc.integer({ min: 1, max: 10000 }),
          reservation: fc.integer({ min: 0, max: 200 }),
          limit: fc.option(fc.integer({ min: 200, max: 2000 }), { nil: null }),
          domain: fc.constantFrom(null, 'd', 'e'),
          fresh: fc.boolean(),
          tasks: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 })),
        }),
        { minLength: 1, maxLength: 8 },
      ),
      domainLimit: fc.option(fc.integer({ min: 100, max: 2000 }), { nil: null }),
      capacity: fc.integer({ min: 0, max: 8000 }),
    });
    fc.assert(
      fc.property(arb, ({ slices, domainLimit, capacity }) => {
        // d is a top-level domain with a limit (as in the report: 600m), e is nested in d.
        const state = addDomain(
          addDomain(emptyState(), 'd', { reservation: 600, limit: domainLimit === null ? null : Math.max(600, domainLimit) }),
          'e',
          { reservation: 0 },
          'd',
        );
        const demand = new Map<string, number>();
        slices.forEach((s, i) => {
          addSlice(state, `s${i}`, { shares: s.shares, reservation: s.domain === null ? s.reservation : 0, limit: s.limit }, s.domain);
          // An idle slice that is not new used nothing and waited for nothing.
          demand.set(`s${i}`, sliceDemand({ fresh: s.fresh, tasks: s.tasks, usedMc: s.tasks === 0 ? 0 : 500, waitedMc: 0 }));
        });
        const out = step(state, { capacity, demand });
        const empty = (i: number) => slices[i]!.tasks === 0;
        slices.forEach((_, i) => {
          if (empty(i)) assert.equal(e(out, sliceKey(`s${i}`)), 0, `s${i} has no thread`);
        });
        for (const domain of ['d', 'e']) {
          const members = slices.map((s, i) => ({ s, i })).filter(({ s }) => s.domain === domain || (domain === 'd' && s.domain === 'e'));
          if (members.every(({ i }) => empty(i))) assert.equal(e(out, domainKey(domain)), 0, `domain ${domain} has no thread in it`);
        }
        for (const [id, weight] of out.weights) assert.ok(weight >= 1, `${id} keeps a weight: ${weight}`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('controlStep: static mode', () => {
  test('weights are the shares, not normalised, and nothing is corrected', () => {
    const state = emptyState();
    addDomain(state, 'team', { shares: 50, reservation: 1000 });
    addSlice(state, 'a', { shares: 1, reservation: 1000 }, 'team');
    addSlice(state, 'b', { shares: 250 });
    addSlice(state, 'c', { shares: 10000 });
    const usage = new Map([
      ['slice/a', 1],
      ['slice/b', 1],
    ]);
    const out = step(state, { mode: 'static', gain: 1, usage });
    assert.equal(w(out, 'domain/team'), 50);
    assert.equal(w(out, 'slice/a'), 1);
    assert.equal(w(out, 'slice/b'), 250);
    assert.equal(w(out, 'slice/c'), 10000);
    assert.equal(out.corrections.size, 0);
    // Entitlements are still computed, for reporting.
    assert.ok(e(out, 'slice/a') >= 1000 - 1e-9);
  });
});

describe('controlStep: feedback correction', () => {
  function pair(): DesiredState {
    return addSlice(addSlice(emptyState(), 'a'), 'b');
  }

  test('a contended slice measured below its entitlement is raised, one above is lowered', () => {
    const usage = new Map([
      ['slice/a', 500],
      ['slice/b', 1500],
    ]);
    const out = step(pair(), { gain: 0.5, usage });
    assert.equal(e(out, 'slice/a'), 1000);
    assert.equal(e(out, 'slice/b'), 1000);
    assert.ok(Math.abs(corr(out, 'slice/a') - Math.SQRT2) < 1e-9);
    assert.ok(Math.abs(corr(out, 'slice/b') - Math.sqrt(1000 / 1500)) < 1e-9);
    assert.equal(w(out, 'slice/a'), 10000);
    assert.equal(w(out, 'slice/b'), Math.round((Math.sqrt(1000 / 1500) / Math.SQRT2) * 10000));
    assert.ok(w(out, 'slice/b') < w(out, 'slice/a'));
  });

  test('a slice measured exactly at its entitlement keeps its correction', () => {
    const usage = new Map([
      ['slice/a', 1000],
      ['slice/b', 1000],
    ]);
    const out = step(pair(), { gain: 1, usage, corrections: new Map([['slice/a', 2]]) });
    assert.equal(corr(out, 'slice/a'), 2);
    assert.equal(corr(out, 'slice/b'), 1);
    assert.equal(w(out, 'slice/b'), 5000);
  });

  test('corrections accumulate over steps and stay within [0.25, 4]', () => {
    const usage = new Map([
      ['slice/a', 100],
      ['slice/b', 1900],
    ]);
    let corrections = new Map<string, number>();
    let previousA = 1;
    let previousB = 1;
    for (let i = 0; i < 20; i++) {
      const out = step(pair(), { gain: 0.3, usage, corrections });
      const a = corr(out, 'slice/a');
      const b = corr(out, 'slice/b');
      assert.ok(a >= previousA && a <= 4, `a: ${a}`);
      assert.ok(b <= previousB && b >= 0.25, `b: ${b}`);
      previousA = a;
      previousB = b;
      corrections = out.corrections;
    }
    assert.equal(previousA, 4);
    assert.equal(previousB, 0.25);
    // 4 / 0.25 = 16: b's weight is 1/16 of a's.
    const out = step(pair(), { gain: 0.3, usage, corrections });
    assert.equal(w(out, 'slice/a'), 10000);
    assert.equal(w(out, 'slice/b'), 625);
  });

  test('a single extreme measurement is clamped', () => {
    const usage = new Map([
      ['slice/a', 0],
      ['slice/b', 1e9],
    ]);
    const out = step(pair(), { gain: 1, usage });
    assert.equal(corr(out, 'slice/a'), 4);
    assert.equal(corr(out, 'slice/b'), 0.25);
  });

  test('without contention the correction drifts back to 1', () => {
    // Demand within 5% of the entitlement: not contended.
    const state = pair();
    const demand = new Map([
      ['a', 500],
      ['b', 500],
    ]);
    const usage = new Map([
      ['slice/a', 100],
      ['slice/b', 900],
    ]);
    let corrections = new Map([
      ['slice/a', 4],
      ['slice/b', 0.25],
    ]);
    let distanceA = Math.abs(Math.log(4));
    let distanceB = Math.abs(Math.log(0.25));
    for (let i = 0; i < 25; i++) {
      const out = step(state, { gain: 1, demand, usage, corrections });
      const a = corr(out, 'slice/a');
      const b = corr(out, 'slice/b');
      assert.ok(a > 1 && Math.abs(Math.log(a)) < distanceA, `a moves towards 1: ${a}`);
      assert.ok(b < 1 && Math.abs(Math.log(b)) < distanceB, `b moves towards 1: ${b}`);
      distanceA = Math.abs(Math.log(a));
      distanceB = Math.abs(Math.log(b));
      corrections = out.corrections;
    }
    assert.ok(Math.abs(corr(step(state, { gain: 1, demand, usage, corrections }), 'slice/a') - 1) < 1e-3);
    assert.ok(Math.abs(corr(step(state, { gain: 1, demand, usage, corrections }), 'slice/b') - 1) < 1e-3);
  });

  test('gain 0 or missing usage also drift back instead of correcting', () => {
    const corrections = new Map([['slice/a', 2]]);
    const usage = new Map([['slice/a', 10]]);
    const off = step(pair(), { gain: 0, usage, corrections });
    assert.ok(Math.abs(corr(off, 'slice/a') - Math.pow(2, 0.7)) < 1e-12);
    const noUsage = step(pair(), { gain: 1, corrections });
    assert.ok(Math.abs(corr(noUsage, 'slice/a') - Math.pow(2, 0.7)) < 1e-12);
  });

  test('a member with no entitlement is not corrected', () => {
    // All capacity reserved by "r"; "z" is hungry but entitled to nothing.
    const state = emptyState();
    addSlice(state, 'r', { reservation: 2000 });
    addSlice(state, 'z');
    const out = step(state, { gain: 1, usage: new Map([['slice/z', 0]]) });
    assert.equal(e(out, 'slice/z'), 0);
    assert.equal(corr(out, 'slice/z'), 1);
  });

  test('domains are corrected like slices', () => {
    const state = emptyState();
    addDomain(state, 'team');
    addSlice(state, 'in', {}, 'team');
    addSlice(state, 'out');
    const usage = new Map([
      ['domain/team', 250],
      ['slice/out', 1750],
    ]);
    const out = step(state, { gain: 1, usage });
    assert.equal(e(out, 'domain/team'), 1000);
    assert.equal(corr(out, 'domain/team'), 4);
    assert.ok(corr(out, 'slice/out') < 1);
    assert.ok(w(out, 'domain/team') > w(out, 'slice/out'));
  });
});

describe('controlStep: the capacity the slices really share', () => {
  // A reservation of half the node with three others, as the isolation benchmark's (f).
  function reservedAndThree(): DesiredState {
    const state = addSlice(emptyState(), 'r', { reservation: 1000 });
    for (const name of ['x', 'y', 'z']) addSlice(state, name);
    return state;
  }
  const gotTogether = (total: number): Map<string, number> =>
    new Map(['slice/r', 'slice/x', 'slice/y', 'slice/z'].map((id) => [id, total / 4]));

  test('saturated and given less than the capacity: entitlements and weights are computed over what the slices got', () => {
    const out = step(reservedAndThree(), { usage: gotTogether(1800) });
    assert.equal(out.capacity, 1800);
    // 1000 + 100 L + 3 * 100 L = 1800: L = 2, so r is entitled to 1200 and the others to 200.
    assert.ok(Math.abs(e(out, 'slice/r') - 1200) < 1e-9);
    assert.ok(Math.abs(e(out, 'slice/x') - 200) < 1e-9);
    assert.equal(w(out, 'slice/r'), 10000);
    assert.equal(w(out, 'slice/x'), Math.round(10000 / 6));
    // Over the nominal 2000 the reserved slice's weight would be too small for 1800: 1250 vs 250 each.
    const nominal = step(reservedAndThree());
    assert.equal(nominal.capacity, 2000);
    assert.equal(w(nominal, 'slice/x'), 2000);
  });

  test('slices that wanted no more than they got keep the capacity given (the node had room)', () => {
    const demand = new Map(['r', 'x', 'y', 'z'].map((name) => [name, 450]));
    const out = step(reservedAndThree(), { demand, usage: gotTogether(1800) });
    assert.equal(out.capacity, 2000);
  });

  test('a top-level member without a reading, or with a demand not measured yet, keeps the capacity given', () => {
    const usage = gotTogether(1800);
    usage.delete('slice/z');
    assert.equal(step(reservedAndThree(), { usage }).capacity, 2000);
    const fresh = new Map(['r', 'x', 'y', 'z'].map((name) => [name, name === 'z' ? Infinity : 900]));
    assert.equal(step(reservedAndThree(), { demand: fresh, usage: gotTogether(1800) }).capacity, 2000);
  });

  test('members of a domain count through their domain, and static mode never changes the capacity', () => {
    const state = addDomain(emptyState(), 'team');
    addSlice(state, 'in', {}, 'team');
    addSlice(state, 'out');
    const usage = new Map([
      ['domain/team', 800],
      ['slice/in', 800],
      ['slice/out', 800],
    ]);
    assert.equal(step(state, { usage }).capacity, 1600);
    assert.equal(step(state, { usage, mode: 'static' }).capacity, 2000);
  });
});
