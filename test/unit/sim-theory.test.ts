/**
 * The simulator against queueing theory (issue 18): 1,000 one-CPU nodes, Poisson arrivals and
 * exponential service at load 0.9 a node. Random placement must give the M/M/1 mean sojourn,
 * 10.0; the power of two choices (best_of_two) the supermarket model's fixed point, 2.614;
 * both within 2%. At load 0.9 an M/M/1 queue forgets its past slowly (a relaxation time of
 * ~380 service times), so the random run needs millions of jobs for its mean to be within
 * 2% with a margin: 8 million here (standard deviation ~0.7%: 2% is 3 of them), ~17 s. The
 * runs are seeded (1, or SLICED_FUZZ_SEED), so a run is the same every time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mm1Sojourn, supermarketSojourn, theoryRun } from '../../src/sim/theory.js';
import { givenFuzzSeed } from '../helpers/prng.js';

const NODES = 1000;
const SEED = givenFuzzSeed() ?? 1;
const LOAD = 0.9;

test('the theory: M/M/1 is 10.0 and the supermarket model with two choices 2.614 at load 0.9', () => {
  assert.ok(Math.abs(mm1Sojourn(LOAD) - 10) < 1e-12);
  assert.equal(Number(supermarketSojourn(LOAD, 2).toFixed(3)), 2.614);
});

test('random placement on 1,000 nodes at load 0.9: mean sojourn within 2% of M/M/1 (10.0)', async (t) => {
  const r = await theoryRun('random', { nodes: NODES, jobs: 8_000_000, load: LOAD, seed: SEED });
  const error = r.sojourn.mean / mm1Sojourn(LOAD) - 1;
  t.diagnostic(
    `mean sojourn ${r.sojourn.mean.toFixed(4)} (${(100 * error).toFixed(2)}%), ${r.measured} jobs, seed ${SEED}, ${r.wallSeconds.toFixed(1)} s`,
  );
  assert.ok(Math.abs(error) <= 0.02, `mean sojourn ${r.sojourn.mean} is ${(100 * error).toFixed(2)}% from 10.0`);
});

test('best_of_two on 1,000 nodes at load 0.9: mean sojourn within 2% of the supermarket model (2.614)', async (t) => {
  const r = await theoryRun('best_of_two', { nodes: NODES, jobs: 1_000_000, load: LOAD, seed: SEED });
  const expected = supermarketSojourn(LOAD, 2);
  const error = r.sojourn.mean / expected - 1;
  t.diagnostic(
    `mean sojourn ${r.sojourn.mean.toFixed(4)} (${(100 * error).toFixed(2)}%), ${r.measured} jobs, seed ${SEED}, ${r.wallSeconds.toFixed(1)} s`,
  );
  assert.ok(Math.abs(error) <= 0.02, `mean sojourn ${r.sojourn.mean} is ${(100 * error).toFixed(2)}% from ${expected.toFixed(3)}`);
});
