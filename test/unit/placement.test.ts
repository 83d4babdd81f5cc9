import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fitProblems, place, placementScore, type NodeOffer } from '../../src/core/placement.js';

const GiB = 1024 ** 3;
const offer = (node: string, reservedMc: number, reservedGiB = 0, usedMc = 0, schedulable = true): NodeOffer => ({
  node,
  schedulable,
  cpu: { capacity: 2000, reserved: reservedMc, used: usedMc },
  memory: { capacity: 4 * GiB, reserved: reservedGiB * GiB },
});

describe('placement: fit and score of a sliver on a node', () => {
  test('a node fits when unreserved CPU and memory cover the request; each shortfall is named with its numbers', () => {
    assert.deepEqual(fitProblems(offer('a', 1500), { cpuReservation: 500, memory: 0 }), []);
    assert.deepEqual(fitProblems(offer('a', 1600, 3.5), { cpuReservation: 500, memory: GiB }), [
      'CPU: 500m reservation asked, 400m of 2000m unreserved',
      `memory: ${GiB} bytes asked, ${GiB / 2} of ${4 * GiB} unreserved`,
    ]);
    assert.deepEqual(fitProblems(offer('a', 0, 0, 0, false), { cpuReservation: 0, memory: 0 }), [
      'the node is not schedulable (draining or cordoned)',
    ]);
  });

  test('the node left with the most room wins; measured use breaks a tie; then the name', () => {
    const request = { cpuReservation: 200, memory: GiB };
    const result = place([offer('busy', 1000), offer('roomy', 200), offer('full', 1900), offer('drained', 0, 0, 0, false)], request);
    assert.equal(result.node, 'roomy');
    assert.deepEqual(
      result.ranked.map((r) => r.node),
      ['roomy', 'busy'],
    );
    assert.deepEqual(
      result.refused.map((r) => r.node),
      ['full', 'drained'],
    );
    assert.equal(place([offer('b', 500, 0, 1800), offer('a', 500, 0, 100)], request).node, 'a');
    assert.equal(place([offer('b', 500), offer('a', 500)], request).node, 'a');
    assert.deepEqual(place([offer('full', 2000)], request).node, null);
  });

  test('any offers: the chosen node fits, every fitting node is ranked, scores lie in 0..100 and order the ranking', () => {
    const offerArb = fc.record({
      node: fc.stringMatching(/^[a-z]{1,6}$/),
      schedulable: fc.boolean(),
      cpu: fc.record({
        capacity: fc.integer({ min: 0, max: 64_000 }),
        reserved: fc.integer({ min: 0, max: 64_000 }),
        used: fc.integer({ min: 0, max: 64_000 }),
      }),
      memory: fc.record({ capacity: fc.integer({ min: 0, max: 2 ** 40 }), reserved: fc.integer({ min: 0, max: 2 ** 40 }) }),
    });
    const requestArb = fc.record({ cpuReservation: fc.integer({ min: 0, max: 8000 }), memory: fc.integer({ min: 0, max: 2 ** 34 }) });
    fc.assert(
      // Node names are unique in a cluster (a node's name is its membership key).
      fc.property(fc.uniqueArray(offerArb, { maxLength: 8, selector: (o) => o.node }), requestArb, (offers, request) => {
        const result = place(offers, request);
        assert.equal(result.ranked.length + result.refused.length, offers.length);
        for (const r of result.ranked) assert.ok(r.score >= 0 && r.score <= 100);
        for (let i = 1; i < result.ranked.length; i++) assert.ok(result.ranked[i - 1]!.score >= result.ranked[i]!.score);
        if (result.node !== null) {
          const chosen = offers.find((o) => o.node === result.node)!;
          assert.ok(chosen.schedulable && chosen.cpu.capacity - chosen.cpu.reserved >= request.cpuReservation);
          assert.equal(placementScore(chosen, request), result.ranked[0]!.score);
        } else {
          assert.equal(result.ranked.length, 0);
        }
      }),
    );
  });
});
