/**
 * Crash consistency of a cluster under faults (issue 16, part 2), a short run of
 * `npm run chaos -- --cluster` (which runs 40 faults): three agents on a 3-member etcd while
 * agents and members are killed, cut off with nft and frozen past the lease TTL, one fault of
 * each kind, and clients on every node drive changes and tasks. After healing nothing
 * acknowledged is lost, the nodes converge, no node over-committed in etcd's history, and no
 * task ran on two nodes at once (test/helpers/chaos-cluster.ts). The seed is printed;
 * SLICED_FUZZ_SEED replays it. The history (JSON lines) is kept when the test fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { commandSkipReason, skipWith, skipWithoutKernel } from '../helpers/env.js';
import { etcdSkipReason } from '../helpers/etcd.js';
import { fuzzSeed } from '../helpers/prng.js';
import { runClusterChaos } from '../helpers/chaos-cluster.js';
import { readMounts } from '../../src/kernel/procfs.js';

const FAULTS = Number(process.env.SLICED_CHAOS_FAULTS ?? 9);

test(
  `a cluster under ${FAULTS} faults (kills, nft cuts, pauses past the lease) loses nothing acknowledged, converges, never over-commits, never runs a task twice`,
  { timeout: 900_000 },
  async (t) => {
    if (skipWithoutKernel(t, etcdSkipReason(), commandSkipReason('nft', 'nftables'), commandSkipReason('flock', 'util-linux'))) return;
    if (!readMounts().some((m) => m.fsType === 'cgroup2')) {
      return skipWith(t, "no cgroup2 hierarchy is mounted: nft cannot tell one agent's sockets apart to cut it off");
    }
    const seed = fuzzSeed('cluster chaos');
    const historyFile = `/tmp/sliced-chaos-cluster-${seed}-${process.pid}.jsonl`;
    const result = await runClusterChaos({ faults: FAULTS, seed, historyFile, say: (line) => process.stderr.write(`chaos: ${line}\n`) });
    assert.deepEqual(result.problems, [], `seed ${seed}; the history is in ${historyFile}`);
    assert.equal(result.faults, FAULTS);
    for (const figure of [
      'lost_acknowledged',
      'half_applied',
      'orphaned_objects',
      'missing_objects',
      'overcommits',
      'tasks_running_twice',
      'tasks_not_running',
      'diverged',
      'unhealed',
    ] as const)
      assert.equal(result[figure], 0, figure);
    // The run did something: changes acknowledged on every node, tasks placed, allocation records read back.
    assert.ok(result.acknowledged >= FAULTS * 10, `only ${result.acknowledged} requests acknowledged in ${FAULTS} faults`);
    assert.ok(result.tasks_submitted > 0, 'no task was submitted');
    assert.ok(result.allocation_versions_checked > 0, 'no allocation record was read back from the history');
    rmSync(historyFile, { force: true });
  },
);
