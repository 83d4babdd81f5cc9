/**
 * Crash consistency of one node under SIGKILL (issue 16, part 1), a short run of
 * `npm run chaos` (which runs 1000 kills): the daemon is killed at random moments while a
 * client drives random changes, and after every restart nothing acknowledged is lost, nothing
 * in flight is half applied, the kernel equals the store and counters never go back
 * (test/helpers/chaos-node.ts). The seed is printed; SLICED_FUZZ_SEED replays it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { skipWithoutKernel } from '../helpers/env.js';
import { fuzzSeed } from '../helpers/prng.js';
import { runNodeChaos } from '../helpers/chaos-node.js';

const KILLS = Number(process.env.SLICED_CHAOS_KILLS ?? 20);

test(`the daemon killed ${KILLS} times with SIGKILL mid-change loses nothing and leaves nothing`, { timeout: 600_000 }, async (t) => {
  if (skipWithoutKernel(t)) return;
  const seed = fuzzSeed('node chaos');
  const result = await runNodeChaos({ kills: KILLS, seed, say: (line) => process.stderr.write(`chaos: ${line}\n`) });
  assert.deepEqual(result.problems, [], `seed ${seed}`);
  assert.equal(result.kills, KILLS);
  for (const figure of [
    'lost_acknowledged',
    'half_applied',
    'orphaned_objects',
    'missing_objects',
    'counters_went_back',
    'burners_lost',
    'server_errors',
    'failed_starts',
  ] as const)
    assert.equal(result[figure], 0, figure);
  // The run did something: changes were acknowledged, and some were cut off by kills.
  assert.ok(result.acknowledged >= KILLS * 2, `only ${result.acknowledged} changes acknowledged in ${KILLS} rounds`);
  assert.ok(result.in_flight_at_kill > 0, 'no change was in flight at any kill');
});
