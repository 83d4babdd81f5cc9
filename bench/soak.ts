/**
 * The soak (issue 16): `npm run soak -- [--minutes N] [--seed S] [--json]` (default 60
 * minutes): one daemon under steady mixed load (test/helpers/soak.ts says what), sampled every
 * 10 s, one line a minute. Last line: {rss_slope_mb_per_h, heap_slope_mb_per_h,
 * native_slope_mb_per_h (RSS outside the JS heap), fd_slope_per_h, objects_slope_per_h, loop_delay_ms_p99, leftovers, changes, vsys_calls,
 * vsys_failures, tree_changes, errors, growing, minutes, seed, machine, load}. Exit status 1
 * when something grows beyond its noise, anything is left behind, or a request failed.
 */
import { runSoak } from '../test/helpers/soak.js';
import { kernelSkipReason } from '../test/helpers/env.js';
import { givenFuzzSeed } from '../test/helpers/prng.js';
import { argValue, finish, loadAverage, machine, onInterrupt, say } from './lib.js';

const minutes = Number(argValue('--minutes') ?? 60);
if (!Number.isFinite(minutes) || minutes < 1 || minutes > 7 * 24 * 60) {
  process.stderr.write(`soak: --minutes ${argValue('--minutes')} must be a number of minutes from 1 to 10080\n`);
  process.exit(2);
}
const seedText = argValue('--seed');
const seed = seedText !== undefined ? givenFuzzSeed({ SLICED_FUZZ_SEED: seedText })! : Math.floor(Math.random() * 0x100000000);
const missing = kernelSkipReason();
if (missing !== null) {
  process.stderr.write(`soak: cannot run: ${missing}\n`);
  process.exit(77);
}
say(`soak: ${minutes} minutes, seed ${seed}`);
const controller = new AbortController();
const running = runSoak({ minutes, seed, say, signal: controller.signal });
const deregister = onInterrupt(async () => {
  controller.abort();
  await running.catch(() => {});
});
const result = await running;
deregister();
for (const line of [...result.growing, ...result.leftover_list.map((l) => `left behind: ${l}`), ...result.errors.slice(0, 50)])
  process.stderr.write(`soak: ${line}\n`);
const { samples: _samples, leftover_list: _list, errors, growing, ...figures } = result;
finish({ ...figures, errors: errors.length, growing, machine: machine(), load: loadAverage() });
if (growing.length > 0 || result.leftovers > 0 || errors.length > 0) process.exitCode = 1;
