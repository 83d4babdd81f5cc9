/**
 * Crash consistency under SIGKILL (issue 16): `npm run chaos -- --json [--kills N] [--seed S]`,
 * and of a cluster under faults: `npm run chaos -- --cluster --json [--faults N] [--seed S]
 * [--history FILE]` (test/helpers/chaos-cluster.ts says what it does and checks).
 * A client drives random changes while the daemon is killed at random moments, N times
 * (default 1000); after every restart the store, the kernel and the counters are checked
 * against what was acknowledged (test/helpers/chaos-node.ts says what exactly). The seed is
 * printed first; the same seed replays the same operations and kill delays.
 *
 * Last line: {kills, acknowledged, refused, in_flight_at_kill, lost_acknowledged,
 * half_applied, orphaned_objects, missing_objects, counters_went_back, burners_lost,
 * overcommits, tasks_running_twice, seed, restart_ms_p50, seconds, machine, load}; with
 * --cluster: {faults, kills, cuts, pauses, fault_kinds, acknowledged, refused, uncertain,
 * lost_acknowledged, half_applied, orphaned_objects, missing_objects, overcommits,
 * allocation_versions_checked, tasks_submitted, tasks_failed_over, agents_seen_down,
 * tasks_running_twice, tasks_not_running, diverged, unhealed, seed, history, seconds, machine, load}.
 * Exit status 1 when any check failed (the problems are listed on stderr).
 */
import { runClusterChaos } from '../test/helpers/chaos-cluster.js';
import { runNodeChaos } from '../test/helpers/chaos-node.js';
import { commandSkipReason, kernelSkipReason } from '../test/helpers/env.js';
import { etcdSkipReason } from '../test/helpers/etcd.js';
import { givenFuzzSeed } from '../test/helpers/prng.js';
import { argValue, finish, loadAverage, machine, onInterrupt, round, say } from './lib.js';

const cluster = process.argv.includes('--cluster');
/** A whole number of at least 1 given with `flag`, or `fallback`. */
function count(flag: string, fallback: number): number {
  const value = Number(argValue(flag) ?? fallback);
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`chaos: ${flag} ${argValue(flag)} must be a whole number of at least 1\n`);
    process.exit(2);
  }
  return value;
}
const seedText = argValue('--seed');
const seed = seedText !== undefined ? givenFuzzSeed({ SLICED_FUZZ_SEED: seedText })! : Math.floor(Math.random() * 0x100000000);
const missing =
  kernelSkipReason() ??
  (cluster ? (etcdSkipReason() ?? commandSkipReason('nft', 'nftables') ?? commandSkipReason('flock', 'util-linux')) : null);
if (missing !== null) {
  process.stderr.write(`chaos: cannot run: ${missing}\n`);
  process.exit(77);
}
const controller = new AbortController();
const started = performance.now();
let running: Promise<{ problems: string[] }>;
if (cluster) {
  const faults = count('--faults', 40);
  const historyFile = argValue('--history') ?? `/tmp/sliced-chaos-cluster-${seed}.jsonl`;
  say(
    `chaos: cluster of 3 agents and 3 etcd members, ${faults} faults, seed ${seed} (replay with --cluster --seed ${seed}); history in ${historyFile}`,
  );
  running = runClusterChaos({ faults, seed, historyFile, say, signal: controller.signal });
} else {
  const kills = count('--kills', 1000);
  say(`chaos: ${kills} kills, seed ${seed} (replay with --seed ${seed})`);
  running = runNodeChaos({ kills, seed, say, signal: controller.signal });
}
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
