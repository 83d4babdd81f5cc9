/**
 * Slices' counters across their groups (src/core/group-counters.ts): what a group counted is
 * added once, a group retired and then kept (a kill between its retirement and its removal)
 * counts on from where it was retired, and a slice's figure never goes back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  emptyRetired,
  GROUP_COUNTERS,
  retire,
  withRetired,
  type CounterReading,
  type RetiredCounters,
} from '../../src/core/group-counters.js';

test('a group is counted once; the slice shows its retired groups plus its current one', () => {
  let state = retire(emptyRetired(), 'k0.slice#11', { cpuNs: 500, throttledPeriods: 3 })!;
  assert.deepEqual(withRetired(state, 'd0.domain/k0.slice#12', { cpuNs: 20, throttledPeriods: 1 }), { cpuNs: 520, throttledPeriods: 4 });
  // The same group again with nothing new (a restart retiring what a kill left): nothing changes.
  assert.equal(retire(state, 'k0.slice#11', { cpuNs: 500, throttledPeriods: 3 }), null);
  // A group made anew at the same path is another group.
  state = retire(state, 'k0.slice#13', { cpuNs: 30 })!;
  assert.deepEqual(withRetired(state, 'x#14', {}), { cpuNs: 530, throttledPeriods: 3 });
  assert.deepEqual(withRetired(undefined, 'x#14', { oomKills: 1 }), { oomKills: 1 });
});

test('a group retired and then kept counts on from its retirement, and is retired again for its growth only', () => {
  let state = retire(emptyRetired(), 'k0.slice#11', { cpuNs: 500 })!;
  // Kept as the slice's group (the kill came before its removal): it reads 600 now.
  assert.deepEqual(withRetired(state, 'k0.slice#11', { cpuNs: 600 }), { cpuNs: 600 });
  state = retire(state, 'k0.slice#11', { cpuNs: 650 })!;
  assert.deepEqual(withRetired(state, 'd0.domain/k0.slice#20', { cpuNs: 5 }), { cpuNs: 655 });
});

test('over any sequence of moves, kills between retirement and removal, and restarts, every figure only grows', () => {
  const step = fc.record({
    action: fc.constantFrom('grow', 'move', 'retire-then-keep', 'retire-again'),
    grow: fc.dictionary(fc.constantFrom(...GROUP_COUNTERS), fc.nat({ max: 1000 })),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 80 }), (steps) => {
      let state: RetiredCounters = emptyRetired();
      let group = 0;
      let reading: CounterReading = {};
      const id = (): string => `g#${group}`;
      let shown = withRetired(state, id(), reading);
      for (const s of steps) {
        if (s.action === 'move') {
          state = retire(state, id(), reading) ?? state;
          group++;
          reading = {};
        } else if (s.action === 'retire-then-keep' || s.action === 'retire-again') state = retire(state, id(), reading) ?? state;
        for (const [name, by] of Object.entries(s.grow))
          reading[name as keyof CounterReading] = (reading[name as keyof CounterReading] ?? 0) + by;
        const now = withRetired(state, id(), reading);
        for (const name of GROUP_COUNTERS) assert.ok((now[name] ?? 0) >= (shown[name] ?? 0), `${name} went back`);
        shown = now;
      }
      // Nothing is counted twice: the figure is the sum of all growth.
      const total = steps.reduce((sum, s) => sum + (s.grow.cpuNs ?? 0), 0);
      assert.equal(shown.cpuNs ?? 0, total);
    }),
    { numRuns: 3000 },
  );
});
