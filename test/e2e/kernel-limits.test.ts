/**
 * What a slice's limits do in the kernel, on cgroup v1 and pure cgroup v2 alike, read from
 * the kernel's own files (test/helpers/cgroups.ts), never through the daemon's reading of
 * them: a memory limit OOM-kills inside the slice only and the kill is counted; a CPU cap
 * holds a busy slice to it and the throttling is counted; CPU contention inside a slice
 * shows as the group's pressure. Slices are named ta*.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLICECTL, TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason, skipWith, SLOW } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { Burners } from '../helpers/cpu-load.js';
import type { SliceView } from '../../src/wire/slices.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/kernel-limits: ${skip}\n`);

const MiB = 1024 * 1024;

describe('slice limits in the kernel', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let groups: KernelGroups;
  let burners: Burners;
  /** Millicores of the node, as the daemon reports it. */
  let capacity = 0;

  before(async () => {
    daemon = await TestDaemon.start();
    groups = await KernelGroups.of(daemon);
    burners = new Burners(daemon.api);
    capacity = (await daemon.api.get<{ cpu: { capacity: number } }>('/v1/node')).cpu.capacity;
  });

  after(async () => {
    await burners?.stopAll();
    await daemon?.destroy();
    if (groups) assert.deepEqual(groups.existingDirs(), [], 'cleanup removed the root group in every hierarchy');
  });

  const show = (slice: string): Promise<SliceView> => daemon.cliJson<SliceView>(['slice', 'show', slice]);

  test('a memory limit OOM-kills inside the slice only; the kernel counts the kill and show reports its count', async () => {
    assert.equal((await daemon.cli(['slice', 'create', 'tamem', '--memory', '32M'])).code, 0);
    assert.equal((await daemon.cli(['slice', 'create', 'taother', '--memory', '32M'])).code, 0);
    // A bystander in another slice with the same limit: not a candidate for tamem's OOM.
    const bystander = spawn(process.execPath, [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', 'taother', '--', 'sleep', '600'], {
      stdio: 'ignore',
    });
    try {
      assert.equal(groups.memoryLimit('tamem.slice'), 32 * MiB, 'the kernel holds the limit');
      assert.equal(groups.oomKills('tamem.slice'), 0);
      let sleeper = 0;
      for (let i = 0; i < 200 * SLOW && sleeper === 0; i++) {
        await sleep(25);
        sleeper = groups.procs('taother.slice')[0] ?? 0;
      }
      assert.ok(sleeper > 0, 'the bystander runs in taother');

      // 256 MiB in one string: eight times the limit, so reclaim cannot save it (there is no swap to give, either).
      const hog = await daemon.cli(['exec', '--slice', 'tamem', '--', 'perl', '-e', '$s = "x" x (256 * 1024 * 1024); print "survived\\n"']);
      assert.equal(hog.code, 137, `the hog was SIGKILLed (exit ${hog.code}): ${hog.stdout}${hog.stderr}`);
      assert.doesNotMatch(hog.stdout, /survived/);
      assert.equal(groups.oomKills('tamem.slice'), 1, 'the kernel counted one OOM kill in the slice');
      assert.equal(groups.oomKills('taother.slice'), 0);
      assert.ok(groups.procs('taother.slice').includes(sleeper), "the other slice's process lives on");

      const view = await show('tamem');
      assert.equal(view.live!.oomKills, groups.oomKills('tamem.slice'), "show reports the kernel's count");
      assert.match((await daemon.cli(['slice', 'show', 'tamem'])).stdout, /^OOM kills:\s+1$/m);
    } finally {
      bystander.kill('SIGTERM');
      for (const name of ['tamem', 'taother']) assert.equal((await daemon.cli(['slice', 'delete', name])).code, 0);
    }
  });

  test("a CPU cap holds a busy slice to it; the throttled periods are the kernel's", async () => {
    // A third of the node, whatever its size, reserved so that other work cannot take it; as
    // many burners as CPUs could use all of the node.
    const cap = Math.round(capacity / 3);
    assert.equal((await daemon.cli(['slice', 'create', 'tacap', '--cpu-reservation', `${cap}m`, '--cpu-limit', `${cap}m`])).code, 0);
    try {
      assert.equal(groups.cpuLimit('tacap.slice'), cap, 'the kernel holds the cap');
      await burners.start('tacap', Math.ceil(capacity / 1000));
      await sleep(1000 * SLOW);
      const t0 = performance.now();
      const u0 = groups.cpuUsageNs('tacap.slice');
      await sleep(3000);
      const used = ((groups.cpuUsageNs('tacap.slice') - u0) / 1e6 / (performance.now() - t0)) * 1000;
      // The quota is a hard limit: the slice gets at most the cap (a period's rounding above),
      // and nearly all of it while nothing else has a claim.
      assert.ok(used <= cap * 1.05, `the slice used ${used.toFixed(0)}m under a cap of ${cap}m`);
      assert.ok(used >= cap * 0.5, `the slice used only ${used.toFixed(0)}m of a cap of ${cap}m`);
      const kernel = groups.throttledPeriods('tacap.slice');
      const view = await show('tacap');
      const later = groups.throttledPeriods('tacap.slice');
      assert.ok(kernel > 0, 'the kernel throttled the slice');
      assert.ok(
        view.live!.throttledPeriods >= kernel && view.live!.throttledPeriods <= later,
        `show says ${view.live!.throttledPeriods} throttled periods; the kernel said ${kernel}, then ${later}`,
      );
    } finally {
      await burners.stop('tacap');
      assert.equal((await daemon.cli(['slice', 'delete', 'tacap'])).code, 0);
    }
  });

  test("CPU contention inside a slice is its group's CPU pressure, and show reports it", async (t) => {
    if (groups.pressure('', 'cpu') === null) {
      skipWith(
        t,
        `no per-group pressure files (${groups.backend === 'v1' && groups.roots.unified === undefined ? 'no cgroup2 hierarchy is mounted beside v1' : 'the kernel has no PSI: boot with psi=1'})`,
      );
      return;
    }
    assert.equal((await daemon.cli(['slice', 'create', 'tapsi'])).code, 0);
    try {
      assert.equal(groups.pressure('tapsi.slice', 'cpu')!.some, 0, 'an idle slice has no CPU pressure');
      assert.equal((await show('tapsi')).live!.pressure.cpu?.some, 0, 'and show says so');
      // Twice as many busy loops as CPUs: at every moment some of them wait for a CPU, so
      // "some" approaches 100%; avg10, a ten-second average, passes 25% within seconds (an
      // idle group stays at 0).
      await burners.start('tapsi', 2 * Math.ceil(capacity / 1000));
      let kernel = 0;
      for (let i = 0; i < 60 * SLOW && kernel < 25; i++) {
        await sleep(500);
        kernel = groups.pressure('tapsi.slice', 'cpu')!.some;
      }
      assert.ok(kernel >= 25, `CPU pressure (some, avg10) of the slice's group: ${kernel}%`);
      const before = groups.pressure('tapsi.slice', 'cpu')!.some;
      const view = (await show('tapsi')).live!.pressure.cpu;
      const afterShow = groups.pressure('tapsi.slice', 'cpu')!.some;
      assert.ok(view !== null, "show has the slice's CPU pressure");
      // avg10 is recomputed every 2 s and wanders near its level: show's reading, taken
      // between the two, lies near them.
      const [low, high] = [Math.min(before, afterShow), Math.max(before, afterShow)];
      assert.ok(view.some >= low - 15 && view.some <= high + 15, `show says ${view.some}%, the kernel ${before}% then ${afterShow}%`);
    } finally {
      await burners.stop('tapsi');
      assert.equal((await daemon.cli(['slice', 'delete', 'tapsi'])).code, 0);
    }
  });
});
