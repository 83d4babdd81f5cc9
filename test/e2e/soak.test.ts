/**
 * The soak's short run in the suite (issue 16, part 4): SLICED_SOAK_MINUTES (3) of
 * `npm run soak`'s load on one daemon; nothing grows beyond its noise, no request fails, and
 * nothing is left on the machine afterwards. The hour-long run's figures are in BENCHMARKS.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { skipWithoutKernel } from '../helpers/env.js';
import { fuzzSeed } from '../helpers/prng.js';
import { fitSlope, runSoak } from '../helpers/soak.js';

const MINUTES = Number(process.env.SLICED_SOAK_MINUTES ?? 3);

test('fitSlope: a line and its standard error', () => {
  const flat = fitSlope([0, 1, 2, 3, 4].map((m) => [m, 100 + (m % 2)]));
  assert.ok(Math.abs(flat.perHour) < 20 && flat.stderrPerHour > 0, JSON.stringify(flat));
  const growing = fitSlope([0, 1, 2, 3].map((m) => [m, 10 + 2 * m]));
  assert.equal(growing.perHour, 120);
  assert.equal(growing.stderrPerHour, 0);
});

test(
  `${MINUTES} minutes of churn, burners, vsys calls, traffic and tree rewiring: flat, no errors, nothing left`,
  { timeout: (MINUTES + 5) * 60_000 },
  async (t) => {
    if (skipWithoutKernel(t)) return;
    const seed = fuzzSeed('soak');
    const result = await runSoak({ minutes: MINUTES, seed, say: (line) => process.stderr.write(`soak: ${line}\n`) });
    assert.deepEqual(result.errors, []);
    assert.deepEqual(result.growing, []);
    assert.deepEqual(result.leftover_list, []);
    // It did what it says: changes, calls and samples at the expected pace.
    assert.ok(result.changes > MINUTES * 200, `only ${result.changes} changes in ${MINUTES} minutes`);
    assert.ok(result.vsys_calls > MINUTES * 100, `only ${result.vsys_calls} vsys calls in ${MINUTES} minutes`);
    assert.ok(result.samples.length >= MINUTES * 5, `only ${result.samples.length} samples`);
  },
);
