/**
 * Crash consistency under SIGKILL (issue 16): `npm run chaos -- --json [--kills N] [--seed S]`.
 * A client drives random changes while the daemon is killed at random moments, N times
 * (default 1000); after every restart the store, the kernel and the counters are checked
 * against what was acknowledged (test/helpers/chaos-node.ts says what exactly). The seed is
 * printed first; the same seed replays the same operations and kill delays.
 *
 * Last line: {kills, acknowledged, refused, in_flight_at_kill, lost_acknowledged,
 * half_applied, orphaned_objects, missing_objects, counters_went_back, burners_lost,
 * overcommits, tasks_running_twice, seed, restart_ms_p50, seconds, machine, load}.
 * Exit status 1 when any check failed (the problems are listed on stderr).
 */
import { runNodeChaos } from '../test/helpers/chaos-node.js';
import { kernelSkipReason } from '../test/helpers/env.js';
import { givenFuzzSeed } from '../test/helpers/prng.js';
import { argValue, finish, loadAverage, machine, onInterrupt, round, say } from './lib.js';

if (process.argv.includes('--cluster')) {
  process.stderr.write('chaos: the cluster fault run (--cluster) is not built yet; this command runs the node part only\n');
  process.exit(2);
}
const kills = Number(argValue('--kills') ?? 1000);
if (!Number.isInteger(kills) || kills < 1) {
  process.stderr.write(`chaos: --kills ${argValue('--kills')} must be a whole number of at least 1\n`);
  process.exit(2);
}
const seedText = argValue('--seed');
const seed = seedText !== undefined ? givenFuzzSeed({ SLICED_FUZZ_SEED: seedText }) : Math.floor(Math.random() * 0x100000000);
const missing = kernelSkipReason();
if (missing !== null) {
  process.stderr.write(`chaos: cannot run: ${missing}\n`);
  process.exit(77);
}
say(`chaos: ${kills} kills, seed ${seed} (replay with --seed ${seed})`);
const controller = new AbortController();
const started = performance.now();
const running = runNodeChaos({ kills, seed: seed!, say, signal: controller.signal });
const deregister = onInterrupt(async () => {
  controller.abort();
  await running.catch(() => {});
});
const result = await running;
deregister();
for (const line of result.problems) process.stderr.write(`chaos: ${line}\n`);
finish({
  ...result,
  problems: result.problems.length,
  seconds: round((performance.now() - started) / 1000, 1),
  machine: machine(),
  load: loadAverage(),
});
const failed = result.problems.length > 0;
if (failed) process.exitCode = 1;
