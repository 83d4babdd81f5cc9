import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { effectiveDomainLimit, effectiveSliceLimit, minLimit } from '../../src/core/limits.js';
import {
  DEFAULT_DOMAIN_PIDS,
  DEFAULT_IO,
  DEFAULT_SLICE_PIDS,
  DEFAULT_MEMORY,
  emptyState,
  type DesiredState,
} from '../../src/core/model.js';

function withDomain(s: DesiredState, name: string, limit: number | null, parent: string | null = null): DesiredState {
  s.domains.set(name, {
    name,
    cpu: { reservation: 0, limit, shares: 100 },
    memory: DEFAULT_MEMORY,
    io: DEFAULT_IO,
    pids: DEFAULT_DOMAIN_PIDS,
    parent,
  });
  return s;
}

function withSlice(s: DesiredState, name: string, limit: number | null, domain: string | null = null): DesiredState {
  s.slices.set(name, {
    name,
    user: `sl-${name}`,
    userCreated: true,
    cpu: { reservation: 0, limit, shares: 100 },
    memory: DEFAULT_MEMORY,
    io: DEFAULT_IO,
    pids: DEFAULT_SLICE_PIDS,
    domain,
    net: null,
  });
  return s;
}

describe('minLimit', () => {
  test('null means no limit', () => {
    assert.equal(minLimit(null, null), null);
    assert.equal(minLimit(500, null), 500);
    assert.equal(minLimit(null, 700), 700);
  });

  test('the smaller of two limits', () => {
    assert.equal(minLimit(500, 700), 500);
    assert.equal(minLimit(700, 500), 500);
    assert.equal(minLimit(1, 1), 1);
  });
});

describe('effectiveDomainLimit', () => {
  test('the node level has no limit', () => {
    assert.equal(effectiveDomainLimit(emptyState(), null), null);
  });

  test('a top-level domain has its own limit', () => {
    assert.equal(effectiveDomainLimit(withDomain(emptyState(), 'd', 800), 'd'), 800);
    assert.equal(effectiveDomainLimit(withDomain(emptyState(), 'd', null), 'd'), null);
  });

  test('a nested domain is bound by every enclosing limit', () => {
    const s = emptyState();
    withDomain(s, 'org', 1000);
    withDomain(s, 'team', 1500, 'org');
    withDomain(s, 'squad', null, 'team');
    withDomain(s, 'tight', 300, 'squad');
    assert.equal(effectiveDomainLimit(s, 'org'), 1000);
    assert.equal(effectiveDomainLimit(s, 'team'), 1000, 'a looser limit inside a tighter one does not help');
    assert.equal(effectiveDomainLimit(s, 'squad'), 1000, 'no limit of its own: inherits');
    assert.equal(effectiveDomainLimit(s, 'tight'), 300);
  });

  test('an unknown domain has no limit', () => {
    assert.equal(effectiveDomainLimit(emptyState(), 'ghost'), null);
  });

  test('a dangling parent stops the walk without failing', () => {
    const s = withDomain(emptyState(), 'd', 400, 'ghost');
    assert.equal(effectiveDomainLimit(s, 'd'), 400);
  });

  test('a cycle in a hand-made state does not loop forever', () => {
    const s = emptyState();
    withDomain(s, 'a', 900, 'b');
    withDomain(s, 'b', 700, 'a');
    assert.equal(effectiveDomainLimit(s, 'a'), 700);
  });
});

describe('effectiveSliceLimit', () => {
  test('a top-level slice has its own limit', () => {
    assert.equal(effectiveSliceLimit(withSlice(emptyState(), 's', 250), 's'), 250);
    assert.equal(effectiveSliceLimit(withSlice(emptyState(), 's', null), 's'), null);
  });

  test('a slice in nested domains gets the smallest limit on its path', () => {
    const s = emptyState();
    withDomain(s, 'org', 1200);
    withDomain(s, 'team', 600, 'org');
    withDomain(s, 'open', null, 'org');
    withSlice(s, 'loose', 2000, 'team');
    withSlice(s, 'tight', 100, 'team');
    withSlice(s, 'free', null, 'team');
    withSlice(s, 'inOpen', null, 'open');
    withSlice(s, 'inOrg', 1500, 'org');
    assert.equal(effectiveSliceLimit(s, 'loose'), 600);
    assert.equal(effectiveSliceLimit(s, 'tight'), 100);
    assert.equal(effectiveSliceLimit(s, 'free'), 600);
    assert.equal(effectiveSliceLimit(s, 'inOpen'), 1200);
    assert.equal(effectiveSliceLimit(s, 'inOrg'), 1200);
  });

  test('an unknown slice has no limit', () => {
    assert.equal(effectiveSliceLimit(emptyState(), 'ghost'), null);
  });

  test('property: the effective limit is the minimum of the limits on the path', () => {
    const arb = fc.record({
      // chain[i] is the limit of the domain at depth i (outermost first).
      chain: fc.array(fc.option(fc.integer({ min: 1, max: 4000 }), { nil: null }), { maxLength: 8 }),
      own: fc.option(fc.integer({ min: 1, max: 4000 }), { nil: null }),
    });
    fc.assert(
      fc.property(arb, ({ chain, own }) => {
        const s = emptyState();
        let parent: string | null = null;
        chain.forEach((limit, i) => {
          withDomain(s, `d${i}`, limit, parent);
          parent = `d${i}`;
        });
        withSlice(s, 'leaf', own, parent);
        const limits = [...chain, own].filter((l): l is number => l !== null);
        const expected = limits.length === 0 ? null : Math.min(...limits);
        assert.equal(effectiveSliceLimit(s, 'leaf'), expected);
        const domainLimits = chain.filter((l): l is number => l !== null);
        assert.equal(effectiveDomainLimit(s, parent), domainLimits.length === 0 ? null : Math.min(...domainLimits));
      }),
    );
  });
});
