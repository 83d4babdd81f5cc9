/**
 * Slices' counters across their groups (src/core/group-counters.ts): a removed group's final
 * reading is retired once, and a slice's figure never goes back when its group is made anew.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { emptyRetired, GROUP_COUNTERS, retire, withRetired, type CounterReading } from '../../src/core/group-counters.js';

test('a group is retired once; the slice shows retired plus current', () => {
  let state = retire(emptyRetired(), 'k0.slice#11', { cpuNs: 500, throttledPeriods: 3 });
  assert.deepEqual(withRetired(state, { cpuNs: 20, throttledPeriods: 1 }), { cpuNs: 520, throttledPeriods: 4 });
  // The same group again (a restart retiring what a kill left): nothing is added.
  assert.equal(retire(state, 'k0.slice#11', { cpuNs: 500, throttledPeriods: 3 }), state);
  // A group made anew at the same path is another group.
  state = retire(state, 'k0.slice#12', { cpuNs: 30 });
  assert.deepEqual(withRetired(state, {}), { cpuNs: 530, throttledPeriods: 3 });
  assert.deepEqual(withRetired(undefined, { oomKills: 1 }), { oomKills: 1 });
});

test('over any sequence of groups that grow and are replaced, every figure only grows', () => {
  const step = fc.record({ replace: fc.boolean(), grow: fc.dictionary(fc.constantFrom(...GROUP_COUNTERS), fc.nat({ max: 1000 })) });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
      let state = emptyRetired();
      let group = 0;
      let reading: CounterReading = {};
      let shown = withRetired(state, reading);
      for (const s of steps) {
        if (s.replace) {
          state = retire(state, `g#${group++}`, reading);
          reading = {};
        }
        for (const [name, by] of Object.entries(s.grow))
          reading[name as keyof CounterReading] = (reading[name as keyof CounterReading] ?? 0) + by;
        const now = withRetired(state, reading);
        for (const name of GROUP_COUNTERS) assert.ok((now[name] ?? 0) >= (shown[name] ?? 0), `${name} went back`);
        shown = now;
      }
    }),
    { numRuns: 2000 },
  );
});
