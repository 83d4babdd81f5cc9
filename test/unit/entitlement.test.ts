import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MIN_WEIGHT, computeEntitlements, type EntitlementNode, type EntitlementResult } from '../../src/core/entitlement.js';
import type { CpuAllocation } from '../../src/core/model.js';

const HUNGRY = 1_000_000;

function cpu(partial: Partial<CpuAllocation> = {}): CpuAllocation {
  return { reservation: 0, limit: null, shares: 100, ...partial };
}

function leaf(id: string, demand: number, partial: Partial<CpuAllocation> = {}): EntitlementNode {
  return { id, cpu: cpu(partial), demand };
}

function group(id: string, children: EntitlementNode[], partial: Partial<CpuAllocation> = {}): EntitlementNode {
  return { id, cpu: cpu(partial), children };
}

function ent(result: EntitlementResult, id: string): number {
  const node = result.nodes.get(id);
  assert.ok(node, `no entitlement for ${id}`);
  return node.entitlement;
}

function weight(result: EntitlementResult, id: string): number {
  const node = result.nodes.get(id);
  assert.ok(node, `no entitlement for ${id}`);
  return node.weight;
}

function close(actual: number, expected: number, tolerance = 1e-6, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `${what} expected ${expected}, got ${actual}`);
}

describe('computeEntitlements: worked examples', () => {
  test('shares 1:2:4, all hungry, on 2000m', () => {
    const r = computeEntitlements(2000, [
      leaf('a', HUNGRY, { shares: 1 }),
      leaf('b', HUNGRY, { shares: 2 }),
      leaf('c', HUNGRY, { shares: 4 }),
    ]);
    close(ent(r, 'a'), 2000 / 7);
    close(ent(r, 'b'), 4000 / 7);
    close(ent(r, 'c'), 8000 / 7);
    assert.equal(Math.round(ent(r, 'a') * 10) / 10, 285.7);
    assert.equal(Math.round(ent(r, 'b') * 10) / 10, 571.4);
    assert.equal(Math.round(ent(r, 'c') * 10) / 10, 1142.9);
    close(r.levels.get('') ?? NaN, 2000 / 7);
    // Weights equal the entitlements, so a proportional-share scheduler splits the same way.
    close(weight(r, 'a') / weight(r, 'c'), 1 / 4);
    close(weight(r, 'b') / weight(r, 'c'), 2 / 4);
  });

  test('a reservation comes first, the rest is split by shares', () => {
    const r = computeEntitlements(2000, [
      leaf('reserved', HUNGRY, { reservation: 1200, shares: 1 }),
      leaf('x', HUNGRY, { shares: 10 }),
      leaf('y', HUNGRY, { shares: 10 }),
    ]);
    close(ent(r, 'reserved'), 1200 + 800 / 21);
    close(ent(r, 'x'), (800 * 10) / 21);
    close(ent(r, 'y'), (800 * 10) / 21);
    close(ent(r, 'reserved') + ent(r, 'x') + ent(r, 'y'), 2000);
    close(weight(r, 'reserved') / weight(r, 'x'), ent(r, 'reserved') / ent(r, 'x'));
  });

  test('a slice limited to 300m alone gets 300m', () => {
    const r = computeEntitlements(2000, [leaf('a', HUNGRY, { limit: 300 })]);
    close(ent(r, 'a'), 300);
    assert.equal(r.nodes.get('a')?.effectiveDemand, 300);
    // The quota enforces the cap; the weight only has to be enough to reach it.
    assert.ok(weight(r, 'a') >= 300);
  });

  test('a domain limited to 600m with two equal members, next to a busy slice', () => {
    const r = computeEntitlements(2000, [group('d', [leaf('d1', HUNGRY), leaf('d2', HUNGRY)], { limit: 600 }), leaf('busy', HUNGRY)]);
    close(ent(r, 'd'), 600);
    close(ent(r, 'd1'), 300);
    close(ent(r, 'd2'), 300);
    close(ent(r, 'busy'), 1400);
    assert.equal(r.nodes.get('d')?.effectiveDemand, 600);
    close(r.levels.get('d') ?? NaN, 3);
  });

  test('demand below the fair share is met exactly and the spare goes to the others', () => {
    const r = computeEntitlements(2000, [leaf('light', 200), leaf('x', HUNGRY), leaf('y', HUNGRY)]);
    close(ent(r, 'light'), 200);
    close(ent(r, 'x'), 900);
    close(ent(r, 'y'), 900);
  });

  test('spare capacity is redistributed over several rounds (water-filling)', () => {
    // Fair share would be 500 each; a and b want less, so c and d split what they leave.
    const r = computeEntitlements(2000, [leaf('a', 100), leaf('b', 450), leaf('c', 800), leaf('d', HUNGRY)]);
    close(ent(r, 'a'), 100);
    close(ent(r, 'b'), 450);
    close(ent(r, 'c'), 725);
    close(ent(r, 'd'), 725);
  });

  test('an unused reservation is lent out', () => {
    const r = computeEntitlements(2000, [leaf('reserved', 100, { reservation: 1500 }), leaf('other', HUNGRY)]);
    close(ent(r, 'reserved'), 100);
    close(ent(r, 'other'), 1900);
  });

  test('a slice that wakes up gets its reservation back at once', () => {
    const r = computeEntitlements(2000, [
      leaf('reserved', 1500, { reservation: 1500, shares: 1 }),
      leaf('other', HUNGRY, { shares: 10000 }),
    ]);
    close(ent(r, 'reserved'), 1500);
    close(ent(r, 'other'), 500);
  });

  test('when everyone is satisfied each gets its demand, and weights still reflect the shares', () => {
    const r = computeEntitlements(2000, [leaf('a', 100, { shares: 100 }), leaf('b', 300, { shares: 300 })]);
    close(ent(r, 'a'), 100);
    close(ent(r, 'b'), 300);
    // Level if both were hungry: 2000 / 400 = 5 per share.
    close(r.levels.get('') ?? NaN, 5);
    close(weight(r, 'a'), 500);
    close(weight(r, 'b'), 1500);
  });

  test('reservations inside a domain come out of the domain’s entitlement', () => {
    const r = computeEntitlements(2000, [
      group('team', [leaf('t1', HUNGRY, { reservation: 600 }), leaf('t2', HUNGRY)], { reservation: 1000 }),
      leaf('other', HUNGRY),
    ]);
    // Top: team 1000 + 1000/2, other 1000/2.
    close(ent(r, 'team'), 1500);
    close(ent(r, 'other'), 500);
    // Inside: t1 600 + 900/2, t2 900/2.
    close(ent(r, 't1'), 1050);
    close(ent(r, 't2'), 450);
  });

  test('nested domains divide top-down', () => {
    const r = computeEntitlements(1000, [
      group('outer', [group('inner', [leaf('i1', HUNGRY), leaf('i2', HUNGRY, { shares: 300 })]), leaf('o1', HUNGRY)]),
      leaf('top', HUNGRY),
    ]);
    close(ent(r, 'outer'), 500);
    close(ent(r, 'top'), 500);
    close(ent(r, 'inner'), 250);
    close(ent(r, 'o1'), 250);
    close(ent(r, 'i1'), 62.5);
    close(ent(r, 'i2'), 187.5);
  });

  test('a domain without members, or members without demand, gets nothing', () => {
    const r = computeEntitlements(2000, [group('empty', []), group('idle', [leaf('z', 0)]), leaf('a', HUNGRY)]);
    assert.equal(ent(r, 'empty'), 0);
    assert.equal(ent(r, 'idle'), 0);
    assert.equal(ent(r, 'z'), 0);
    close(ent(r, 'a'), 2000);
    assert.ok(weight(r, 'empty') >= MIN_WEIGHT);
  });

  test('missing or negative demand counts as none', () => {
    const r = computeEntitlements(1000, [{ id: 'nodemand', cpu: cpu() }, leaf('negative', -50), leaf('a', HUNGRY)]);
    assert.equal(ent(r, 'nodemand'), 0);
    assert.equal(ent(r, 'negative'), 0);
    assert.equal(r.nodes.get('negative')?.effectiveDemand, 0);
    close(ent(r, 'a'), 1000);
  });

  test('zero or negative capacity gives nothing to anyone', () => {
    for (const capacity of [0, -100]) {
      const r = computeEntitlements(capacity, [leaf('a', HUNGRY, { reservation: 500 }), leaf('b', HUNGRY)]);
      assert.equal(ent(r, 'a'), 0);
      assert.equal(ent(r, 'b'), 0);
      assert.ok(weight(r, 'a') >= MIN_WEIGHT && weight(r, 'b') >= MIN_WEIGHT, 'weights never drop below the minimum');
    }
  });

  test('reservations over a shrunken capacity are scaled down in proportion', () => {
    const r = computeEntitlements(1000, [
      leaf('a', HUNGRY, { reservation: 1200 }),
      leaf('b', HUNGRY, { reservation: 800 }),
      leaf('c', HUNGRY),
    ]);
    close(ent(r, 'a'), 600);
    close(ent(r, 'b'), 400);
    close(ent(r, 'c'), 0);
  });

  test('an empty tree gives an empty result', () => {
    const r = computeEntitlements(2000, []);
    assert.equal(r.nodes.size, 0);
  });

  test('effective demand folds in members’ and the domain’s limits', () => {
    const r = computeEntitlements(4000, [group('d', [leaf('a', 800, { limit: 500 }), leaf('b', 900)], { limit: 1200 })]);
    assert.equal(r.nodes.get('a')?.effectiveDemand, 500);
    assert.equal(r.nodes.get('b')?.effectiveDemand, 900);
    assert.equal(r.nodes.get('d')?.effectiveDemand, 1200);
    close(ent(r, 'd'), 1200);
    close(ent(r, 'a') + ent(r, 'b'), 1200);
    close(ent(r, 'a'), 500);
    close(ent(r, 'b'), 700);
  });
});

// ---- random trees -----------------------------------------------------------------------

interface RawLeaf {
  kind: 'slice';
  reservationShare: number;
  limitExtra: number | null;
  shares: number;
  demand: number;
  /** Identical siblings to make from this spec (for the equal-treatment property). */
  copies: number;
}
interface RawDomain {
  kind: 'domain';
  reservationShare: number;
  limitExtra: number | null;
  shares: number;
  children: Raw[];
}
type Raw = RawLeaf | RawDomain;

const sharesArb = fc.oneof(fc.integer({ min: 1, max: 10000 }), fc.constantFrom(1, 100, 100, 10000));
const reservationShareArb = fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true }));
const limitExtraArb = fc.option(fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constant(0)), { nil: null, freq: 2 });
const demandArb = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 3000 }),
  fc.double({ min: 0, max: 3000, noNaN: true }),
  fc.constant(HUNGRY),
);

const leafArb: fc.Arbitrary<Raw> = fc.record({
  kind: fc.constant('slice' as const),
  reservationShare: reservationShareArb,
  limitExtra: limitExtraArb,
  shares: sharesArb,
  demand: demandArb,
  copies: fc.oneof({ arbitrary: fc.constant(1), weight: 3 }, { arbitrary: fc.integer({ min: 2, max: 3 }), weight: 1 }),
});

function levelArb(depth: number): fc.Arbitrary<Raw[]> {
  const member: fc.Arbitrary<Raw> =
    depth >= 3
      ? leafArb
      : fc.oneof(
          { arbitrary: leafArb, weight: 3 },
          {
            arbitrary: fc.record({
              kind: fc.constant('domain' as const),
              reservationShare: reservationShareArb,
              limitExtra: limitExtraArb,
              shares: sharesArb,
              children: fc.constant(null).chain(() => levelArb(depth + 1)),
            }),
            weight: 1,
          },
        );
  return fc.array(member, { minLength: depth === 0 ? 1 : 0, maxLength: depth === 0 ? 4 : 3 });
}

function countSlices(raws: readonly Raw[]): number {
  return raws.reduce((n, r) => n + (r.kind === 'slice' ? r.copies : countSlices(r.children)), 0);
}

interface Case {
  capacity: number;
  roots: EntitlementNode[];
  /** Parent id per node id, '' for the top. */
  parents: Map<string, string>;
  /** Nodes made from the same raw leaf spec: they must be treated equally. */
  twins: string[][];
}

/**
 * Turn raw specs into an admissible tree: at each level the reservations fit the budget
 * (the capacity at the top, the domain's own reservation inside), and limits are never below
 * reservations.
 */
function materialise(capacity: number, raws: readonly Raw[]): Case {
  const parents = new Map<string, string>();
  const twins: string[][] = [];
  let counter = 0;
  const level = (items: readonly Raw[], budget: number, parentId: string): EntitlementNode[] => {
    const weightOf = (r: Raw) => r.reservationShare * (r.kind === 'slice' ? r.copies : 1);
    const total = items.reduce((t, r) => t + weightOf(r), 0);
    const scale = total > 1 ? 1 / total : 1;
    const nodes: EntitlementNode[] = [];
    for (const raw of items) {
      const reservation = Math.floor(raw.reservationShare * scale * budget);
      const limit = raw.limitExtra === null ? null : Math.max(1, reservation + raw.limitExtra);
      const allocation: CpuAllocation = { reservation, limit, shares: raw.shares };
      if (raw.kind === 'slice') {
        const ids: string[] = [];
        for (let c = 0; c < raw.copies; c++) {
          const id = `slice/${counter++}`;
          parents.set(id, parentId);
          nodes.push({ id, cpu: allocation, demand: raw.demand });
          ids.push(id);
        }
        if (ids.length > 1) twins.push(ids);
      } else {
        const id = `domain/${counter++}`;
        parents.set(id, parentId);
        nodes.push({ id, cpu: allocation, children: level(raw.children, reservation, id) });
      }
    }
    return nodes;
  };
  return { capacity, roots: level(raws, capacity, ''), parents, twins };
}

const caseArb: fc.Arbitrary<Case> = fc
  .tuple(fc.oneof(fc.integer({ min: 0, max: 8000 }), fc.constantFrom(1000, 2000, 1900)), levelArb(0))
  .filter(([, raws]) => countSlices(raws) <= 10)
  .map(([capacity, raws]) => materialise(capacity, raws));

function walk(
  nodes: readonly EntitlementNode[],
  visit: (node: EntitlementNode, path: EntitlementNode[]) => void,
  path: EntitlementNode[] = [],
): void {
  for (const node of nodes) {
    visit(node, path);
    if (node.children) walk(node.children, visit, [...path, node]);
  }
}

/** Sibling groups with the capacity each was divided from. */
function groups(c: Case, r: EntitlementResult): { parent: EntitlementNode | null; capacity: number; members: EntitlementNode[] }[] {
  const out: { parent: EntitlementNode | null; capacity: number; members: EntitlementNode[] }[] = [
    { parent: null, capacity: Math.max(0, c.capacity), members: c.roots },
  ];
  walk(c.roots, (node) => {
    if (node.children) out.push({ parent: node, capacity: r.nodes.get(node.id)!.entitlement, members: node.children });
  });
  return out;
}

/** Independent effective demand: slices' demand and every limit on the way up. */
function refDemand(node: EntitlementNode): number {
  const raw = node.children ? node.children.reduce((t, c) => t + refDemand(c), 0) : Math.max(0, node.demand ?? 0);
  return node.cpu.limit === null ? raw : Math.min(raw, node.cpu.limit);
}

/** Reference water-filling by bisection: sum_i min(cap_i, res_i + shares_i * L) = capacity. */
function refDivide(capacity: number, members: readonly EntitlementNode[], out: Map<string, number>): void {
  const caps = members.map(refDemand);
  const bases = members.map((m, i) => Math.min(m.cpu.reservation, caps[i]!));
  const at = (level: number) => members.reduce((t, m, i) => t + Math.min(caps[i]!, bases[i]! + m.cpu.shares * level), 0);
  let values: number[];
  if (caps.reduce((t, x) => t + x, 0) <= capacity) {
    values = caps;
  } else {
    let lo = 0;
    let hi = capacity + 1;
    for (let i = 0; i < 200; i++) {
      const mid = (lo + hi) / 2;
      if (at(mid) > capacity) hi = mid;
      else lo = mid;
    }
    values = members.map((m, i) => Math.min(caps[i]!, bases[i]! + m.cpu.shares * lo));
  }
  members.forEach((m, i) => {
    out.set(m.id, values[i]!);
    if (m.children) refDivide(values[i]!, m.children, out);
  });
}

function tol(c: Case): number {
  return 1e-6 * Math.max(1, c.capacity);
}

describe('computeEntitlements: properties over random admissible trees', () => {
  test('every node gets a non-negative, finite entitlement and a weight of at least MIN_WEIGHT', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        walk(c.roots, (node) => {
          const e = r.nodes.get(node.id);
          assert.ok(e, `missing ${node.id}`);
          assert.ok(Number.isFinite(e.entitlement) && e.entitlement >= 0, `${node.id}: ${e.entitlement}`);
          assert.ok(Number.isFinite(e.weight) && e.weight >= MIN_WEIGHT, `${node.id} weight ${e.weight}`);
          close(e.effectiveDemand, refDemand(node), 1e-9, `${node.id} effective demand`);
        });
        assert.equal(r.nodes.size, c.parents.size);
      }),
      { numRuns: 300 },
    );
  });

  test('(a) siblings never get more than their capacity; a domain’s members never exceed its limit', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        for (const g of groups(c, r)) {
          const sum = g.members.reduce((t, m) => t + ent(r, m.id), 0);
          assert.ok(sum <= g.capacity + tol(c), `group under ${g.parent?.id ?? 'node'}: ${sum} > ${g.capacity}`);
          if (g.parent && g.parent.cpu.limit !== null) {
            assert.ok(sum <= g.parent.cpu.limit + tol(c), `members of ${g.parent.id}: ${sum} > limit ${g.parent.cpu.limit}`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('(b) a slice (or domain) wanting at least its reservation gets at least its reservation', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        walk(c.roots, (node) => {
          if (refDemand(node) >= node.cpu.reservation) {
            assert.ok(
              ent(r, node.id) >= node.cpu.reservation - tol(c),
              `${node.id}: ${ent(r, node.id)} < reservation ${node.cpu.reservation}`,
            );
          } else {
            // Wanting less than the reservation: it gets all it wants.
            close(ent(r, node.id), refDemand(node), 1e-6, node.id);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  test('(c) no slice exceeds its limit, any enclosing domain’s limit, or its demand', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        walk(c.roots, (node, path) => {
          const e = ent(r, node.id);
          for (const limited of [node, ...path]) {
            if (limited.cpu.limit !== null) assert.ok(e <= limited.cpu.limit + tol(c), `${node.id}: ${e} > limit of ${limited.id}`);
          }
          if (!node.children) assert.ok(e <= Math.max(0, node.demand ?? 0) + tol(c), `${node.id}: ${e} > demand ${node.demand}`);
        });
      }),
      { numRuns: 300 },
    );
  });

  test('(d) work conservation at every level', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        for (const g of groups(c, r)) {
          const wanted = g.members.reduce((t, m) => t + refDemand(m), 0);
          const got = g.members.reduce((t, m) => t + ent(r, m.id), 0);
          if (wanted >= g.capacity) {
            // Contended: the whole capacity is handed out.
            close(got, g.capacity, 1e-6, `group under ${g.parent?.id ?? 'node'}`);
          } else {
            // Not contended: everyone gets all it can use.
            for (const m of g.members) close(ent(r, m.id), refDemand(m), 1e-6, m.id);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('(d) without domain limits, an uncontended node gives every slice min(demand, limit)', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        let domainLimits = false;
        walk(c.roots, (n) => {
          if (n.children && n.cpu.limit !== null) domainLimits = true;
        });
        const topDemand = c.roots.reduce((t, m) => t + refDemand(m), 0);
        fc.pre(!domainLimits && topDemand < c.capacity);
        const r = computeEntitlements(c.capacity, c.roots);
        walk(c.roots, (n) => {
          if (n.children) return;
          const demand = Math.max(0, n.demand ?? 0);
          close(ent(r, n.id), n.cpu.limit === null ? demand : Math.min(demand, n.cpu.limit), 1e-6, n.id);
        });
      }),
      { numRuns: 200 },
    );
  });

  test('(e) identical siblings get identical entitlements and weights', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        for (const ids of c.twins) {
          const first = r.nodes.get(ids[0]!)!;
          for (const id of ids.slice(1)) {
            close(ent(r, id), first.entitlement, 1e-12, id);
            close(weight(r, id), first.weight, 1e-12, id);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('weights of hungry siblings are proportional to their entitlements', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        for (const g of groups(c, r)) {
          const hungry = g.members.filter((m) => {
            const e = r.nodes.get(m.id)!;
            const limitBinds = m.cpu.limit !== null && e.entitlement >= m.cpu.limit - tol(c);
            return e.effectiveDemand > e.entitlement + tol(c) && !limitBinds && e.entitlement >= MIN_WEIGHT;
          });
          if (hungry.length < 2) continue;
          const ratio = weight(r, hungry[0]!.id) / ent(r, hungry[0]!.id);
          for (const m of hungry.slice(1)) close(weight(r, m.id) / ent(r, m.id), ratio, 1e-6, `weight ratio of ${m.id}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('matches a reference water-filling computed by bisection', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const r = computeEntitlements(c.capacity, c.roots);
        const expected = new Map<string, number>();
        refDivide(Math.max(0, c.capacity), c.roots, expected);
        for (const [id, value] of expected) close(ent(r, id), value, 1e-6, id);
      }),
      { numRuns: 300 },
    );
  });

  test('(a)/(c) still hold when reservations do not fit the capacity', () => {
    const arb = fc.record({
      capacity: fc.integer({ min: 0, max: 3000 }),
      members: fc.array(
        fc.record({
          reservation: fc.integer({ min: 0, max: 3000 }),
          shares: sharesArb,
          demand: demandArb,
          limit: fc.option(fc.integer({ min: 1, max: 4000 }), { nil: null }),
        }),
        { minLength: 1, maxLength: 6 },
      ),
    });
    fc.assert(
      fc.property(arb, ({ capacity, members }) => {
        const roots = members.map((m, i) => leaf(`s${i}`, m.demand, { reservation: m.reservation, shares: m.shares, limit: m.limit }));
        const r = computeEntitlements(capacity, roots);
        let sum = 0;
        for (const node of roots) {
          const e = ent(r, node.id);
          sum += e;
          assert.ok(e >= 0);
          assert.ok(e <= (node.demand ?? 0) + 1e-6);
          if (node.cpu.limit !== null) assert.ok(e <= node.cpu.limit + 1e-6);
        }
        assert.ok(sum <= capacity + 1e-6 * Math.max(1, capacity), `${sum} > ${capacity}`);
      }),
      { numRuns: 300 },
    );
  });
});
