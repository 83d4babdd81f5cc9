/**
 * The cgroup v1 backend against the real kernel: cpu, cpuacct, memory and freezer are v1
 * hierarchies here, plus the cgroup2 "unified" hierarchy for cgroup.kill. Every group lives
 * under "sliced-kt<pid>" beneath this process's own group in each hierarchy and is removed
 * at the end of each test, together with every process the test started.
 */
import { describe, test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBackend, detectLayout } from '../../src/kernel/cgroup/detect.js';
import { CgroupV1Backend, weightToShares, type V1Layout } from '../../src/kernel/cgroup/v1.js';
import { SlicedError } from '../../src/core/errors.js';
import { readProcCgroups } from '../../src/kernel/procfs.js';
import { skipWith, skipWithoutKernel } from '../helpers/env.js';
import {
  busyLoop,
  isAlive,
  killStarted,
  procCgroups,
  procState,
  readIdsOf,
  removeTree,
  sleeper,
  start,
  termIgnorer,
  waitFor,
} from './kernel-helpers.js';

const ROOT_NAME = `sliced-kt${process.pid}`;
const v1Reason = existsSync('/sys/fs/cgroup/cpu/cpu.shares') ? null : 'needs the cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu';

let backend: CgroupV1Backend | null = null;
let layout: V1Layout | null = null;

/** Skip with the printed reason, or give the backend and layout (created on first use). */
function setup(t: TestContext): { backend: CgroupV1Backend; layout: V1Layout } | null {
  if (skipWithoutKernel(t, v1Reason)) return null;
  if (!backend || !layout) {
    const detected = detectLayout({ rootName: ROOT_NAME, prefer: 'v1' });
    assert.equal(detected.kind, 'v1');
    layout = detected.v1!;
    const created = createBackend(detected);
    assert.ok(created instanceof CgroupV1Backend);
    backend = created;
  }
  return { backend, layout };
}

async function cleanup(): Promise<void> {
  await killStarted();
  if (backend) await removeTree(Object.values(backend.rootDirectories()));
}

after(cleanup);

const readTrim = (path: string): string => readFileSync(path, 'utf8').trim();

/** The I/O schedulers the block devices offer, for skip reasons ("sda: [mq-deadline] kyber none"). */
function ioSchedulers(): string {
  const devices = readdirSync('/sys/block').filter((d) => existsSync(`/sys/block/${d}/queue/scheduler`) && !/^(loop|ram|zram)/.test(d));
  return devices.map((d) => `${d}: ${readTrim(`/sys/block/${d}/queue/scheduler`)}`).join('; ') || 'no block device';
}

describe('cgroup v1 weights', () => {
  test('weightToShares maps cgroup v2 weights onto cpu.shares exactly like systemd', () => {
    assert.equal(weightToShares(100), 1024);
    assert.equal(weightToShares(1), 10);
    assert.equal(weightToShares(10000), 102400);
    // systemd: CLAMP(weight * CGROUP_CPU_SHARES_DEFAULT / CGROUP_WEIGHT_DEFAULT, 2, 262144) in
    // uint64_t arithmetic, so the division truncates.
    for (let weight = 1; weight <= 10000; weight++) {
      const systemd = Math.min(262144, Math.max(2, Math.floor((weight * 1024) / 100)));
      assert.equal(weightToShares(weight), systemd, `weight ${weight}`);
    }
  });
});

describe('cgroup v1 backend on the real kernel', () => {
  test('init creates the root in every hierarchy beneath our own groups and sets its cpu.shares', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    try {
      backend.init(1900);
      backend.init(1900); // idempotent
      const dirs = backend.rootDirectories();
      assert.deepEqual(Object.keys(dirs).sort(), ['blkio', 'cpu', 'cpuacct', 'freezer', 'memory', 'pids', 'unified']);
      const own = readProcCgroups('self');
      for (const [hierarchy, dir] of Object.entries(dirs)) {
        assert.ok(statSync(dir).isDirectory(), `${hierarchy}: ${dir}`);
        assert.ok(dir.endsWith(`/${ROOT_NAME}`), dir);
        const line = hierarchy === 'unified' ? own.find((l) => l.hierarchyId === 0) : own.find((l) => l.controllers.includes(hierarchy));
        assert.ok(line, `own ${hierarchy} line`);
        assert.ok(dir.endsWith(join(line.path, ROOT_NAME)), `${dir} lies beneath our own ${hierarchy} group ${line.path}`);
      }
      assert.equal(readTrim(join(layout.cpu, 'cpu.shares')), String(weightToShares(1900)));
      assert.equal(readTrim(join(layout.cpu, 'cpu.shares')), '19456');
      assert.equal(backend.exists([]), true);
    } finally {
      await cleanup();
    }
    assert.equal(existsSync(layout.cpu), false);
  });

  test('create, exists, children and remove work on nested groups in every hierarchy', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend } = env;
    const group = ['d.domain', 's.slice'];
    try {
      backend.init(100);
      assert.equal(backend.exists(group), false);
      backend.create(group);
      backend.create(group); // idempotent
      assert.equal(backend.exists(['d.domain']), true);
      assert.equal(backend.exists(group), true);
      for (const root of Object.values(backend.rootDirectories())) {
        assert.ok(statSync(join(root, ...group)).isDirectory(), join(root, ...group));
      }
      assert.deepEqual(backend.children([]), ['d.domain']);
      assert.deepEqual(backend.children(['d.domain']), ['s.slice']);
      assert.deepEqual(backend.children(group), []);
      assert.deepEqual(backend.children(['missing.domain']), []);

      // A group with a child cannot go first.
      assert.throws(
        () => backend.remove(['d.domain']),
        (err: unknown) => err instanceof SlicedError && err.code === 'EIO',
      );
      backend.remove(group);
      backend.remove(['d.domain']);
      assert.equal(backend.exists(group), false);
      assert.equal(backend.exists(['d.domain']), false);
      for (const root of Object.values(backend.rootDirectories())) assert.equal(existsSync(join(root, 'd.domain')), false);
      backend.remove(group); // a missing group is not an error
      assert.deepEqual(backend.children([]), []);
    } finally {
      await cleanup();
    }
  });

  test('weights, CPU limits and memory limits are written in v1 units', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    const group = ['w.slice'];
    const cpuDir = join(layout.cpu, 'w.slice');
    const memDir = join(layout.memory, 'w.slice');
    try {
      backend.init(100);
      backend.create(group);
      for (const [weight, shares] of [
        [100, 1024],
        [1, 10],
        [10000, 102400],
        [250, 2560],
      ] as const) {
        backend.setCpuWeight(group, weight);
        assert.equal(readTrim(join(cpuDir, 'cpu.shares')), String(shares), `weight ${weight}`);
      }
      assert.equal(readTrim(join(cpuDir, 'cpu.cfs_period_us')), '100000');
      backend.setCpuLimit(group, 250);
      assert.equal(readTrim(join(cpuDir, 'cpu.cfs_quota_us')), '25000');
      backend.setCpuLimit(group, 1500);
      assert.equal(readTrim(join(cpuDir, 'cpu.cfs_quota_us')), '150000');
      backend.setCpuLimit(group, null);
      assert.equal(readTrim(join(cpuDir, 'cpu.cfs_quota_us')), '-1');

      assert.equal(backend.readMemory(group).limitBytes, null, 'a new group has no memory limit');
      backend.setMemory(group, { limit: 64 * 1024 * 1024, high: null, swap: null });
      assert.equal(readTrim(join(memDir, 'memory.limit_in_bytes')), String(64 * 1024 * 1024));
      const limited = backend.readMemory(group);
      assert.equal(limited.limitBytes, 64 * 1024 * 1024);
      assert.ok(limited.currentBytes >= 0);
      assert.equal(limited.oomKills, 0);
      backend.setMemory(group, { limit: null, high: null, swap: null });
      assert.equal(backend.readMemory(group).limitBytes, null);
      assert.equal(backend.memoryDirectory(group), memDir);
    } finally {
      await cleanup();
    }
  });

  test('memory soft limit in v1 files', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    const group = ['mem.slice'];
    const memDir = join(layout.memory, 'mem.slice');
    const M = 1024 * 1024;
    try {
      backend.init(100);
      backend.create(group);
      backend.setMemory(group, { limit: 64 * M, high: 48 * M, swap: null });
      assert.equal(readTrim(join(memDir, 'memory.limit_in_bytes')), String(64 * M));
      assert.equal(readTrim(join(memDir, 'memory.soft_limit_in_bytes')), String(48 * M));
      backend.setMemory(group, { limit: null, high: null, swap: null });
      assert.equal(backend.readMemory(group).limitBytes, null);
    } finally {
      await cleanup();
    }
  });

  test('memory+swap (memsw = limit + swap) in v1 files; a swap cap without a limit is refused', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    const group = ['mem.slice'];
    const memDir = join(layout.memory, 'mem.slice');
    const M = 1024 * 1024;
    try {
      backend.init(100);
      backend.create(group);
      if (!existsSync(join(memDir, 'memory.memsw.limit_in_bytes'))) {
        skipWith(t, `the kernel has no swap accounting (no memory.memsw.limit_in_bytes in ${memDir}; boot with swapaccount=1)`);
        return;
      }
      backend.setMemory(group, { limit: 64 * M, high: 48 * M, swap: 32 * M });
      assert.equal(readTrim(join(memDir, 'memory.limit_in_bytes')), String(64 * M));
      assert.equal(readTrim(join(memDir, 'memory.memsw.limit_in_bytes')), String(96 * M));
      // Raising the limit above the old memsw works because memsw is lifted first.
      backend.setMemory(group, { limit: 256 * M, high: null, swap: 0 });
      assert.equal(readTrim(join(memDir, 'memory.memsw.limit_in_bytes')), String(256 * M));
      assert.throws(
        () => backend.setMemory(group, { limit: null, high: null, swap: 16 * M }),
        /memory\.swap needs a memory\.limit on cgroup v1/,
      );
      backend.setMemory(group, { limit: null, high: null, swap: null });
      assert.equal(backend.readMemory(group).limitBytes, null);
    } finally {
      await cleanup();
    }
  });

  test('blkio: no caps on a new group; I/O counters start at zero', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    if (!layout.blkio) {
      skipWith(t, 'the blkio controller is not mounted as a cgroup v1 hierarchy');
      return;
    }
    const group = ['io.slice'];
    const dir = join(layout.blkio, 'io.slice');
    try {
      backend.init(100);
      backend.create(group);
      assert.equal(backend.hierarchicalIoCaps, false);
      backend.setIoCaps(group, []);
      assert.equal(readTrim(join(dir, 'blkio.throttle.read_bps_device')), '');
      assert.deepEqual(backend.readIo(group), { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 });
    } finally {
      await cleanup();
    }
  });

  test('blkio: BFQ weight is io.weight/10', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    if (!layout.blkio) {
      skipWith(t, 'the blkio controller is not mounted as a cgroup v1 hierarchy');
      return;
    }
    const group = ['io.slice'];
    const dir = join(layout.blkio, 'io.slice');
    try {
      backend.init(100);
      backend.create(group);
      // BFQ adds blkio.bfq.* to every group but the root while it is loaded.
      if (!existsSync(join(dir, 'blkio.bfq.weight'))) {
        skipWith(
          t,
          `no BFQ: a new group has no blkio.bfq.weight (BFQ is not loaded or not in this kernel; schedulers offered: ${ioSchedulers()})`,
        );
        return;
      }
      backend.setIoWeight(group, 900);
      assert.equal(readTrim(join(dir, 'blkio.bfq.weight')), '90');
    } finally {
      await cleanup();
    }
  });

  test('pids: pids.max caps the group\'s tasks (a fork past it fails and is counted); "max" lifts it', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    if (!layout.pids) {
      t.skip('the pids controller is not mounted');
      return;
    }
    const group = ['p.slice'];
    const dir = join(layout.pids, 'p.slice');
    try {
      backend.init(100);
      assert.equal(backend.pidsUnavailable(), null);
      backend.create(group);
      assert.equal(readTrim(join(dir, 'pids.max')), 'max', 'a new group has no cap');
      backend.setPidsMax(group, 8);
      assert.equal(readTrim(join(dir, 'pids.max')), '8');
      // The shell joins every hierarchy, then starts sleeps until a fork fails (dash then exits).
      const joins = backend
        .procsFiles(group)
        .map((file) => `echo $$ > ${file}`)
        .join('; ');
      const bomb = start('sh', ['-c', `${joins}; i=0; while [ $i -lt 40 ]; do sleep 600 & i=$((i+1)); done; wait`]);
      const { code } = await bomb.exited;
      assert.notEqual(code, 0, 'the shell stopped at a refused fork');
      const stats = backend.readPids(group)!;
      assert.equal(stats.max, 8);
      assert.equal(stats.current, 7, 'the shell (8th task) started 7 sleeps and exited');
      assert.equal(backend.procs(group).length, 7);
      assert.ok(stats.refused >= 1, `refused forks counted: ${stats.refused}`);
      if (stats.peak !== null) assert.equal(stats.peak, 8);
      backend.setPidsMax(group, null);
      assert.equal(readTrim(join(dir, 'pids.max')), 'max');
      assert.equal(backend.readPids(group)!.max, null);
    } finally {
      await cleanup();
    }
  });

  test('create() completes a group made before the pids hierarchy was used, and its processes join it there', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    if (!layout.pids) {
      t.skip('the pids controller is not mounted');
      return;
    }
    const { pids: _pids, ...withoutPids } = layout;
    const older = new CgroupV1Backend(withoutPids);
    const group = ['u.domain', 'u.slice'];
    try {
      backend.init(100);
      older.create(group);
      const proc = sleeper();
      older.moveProcess(group, proc.pid);
      assert.equal(existsSync(join(layout.pids, 'u.domain')), false);
      assert.ok(!procCgroups(proc.pid).get('pids')?.includes(ROOT_NAME), 'not in our pids groups yet');
      backend.create(['u.domain']);
      backend.create(group);
      assert.ok(procCgroups(proc.pid).get('pids')?.endsWith(`/${ROOT_NAME}/u.domain/u.slice`), procCgroups(proc.pid).get('pids'));
      assert.deepEqual(readIdsOf(join(layout.pids, 'u.domain', 'u.slice', 'cgroup.procs')), [proc.pid]);
      assert.equal(backend.readPids(group)!.current, 1);
    } finally {
      await cleanup();
    }
  });

  test('moveProcess puts a process into the group in every hierarchy; procs, threads and procsFiles list it', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    const group = ['d.domain', 's.slice'];
    try {
      backend.init(100);
      backend.create(group);
      const proc = sleeper();
      const ownMemory = readProcCgroups('self').find((l) => l.controllers.includes('memory'))!.path;
      assert.equal(backend.processMemoryDirectory(proc.pid), join(layout.memoryMount, ownMemory));

      backend.moveProcess(group, proc.pid);
      const lines = procCgroups(proc.pid);
      for (const controller of ['cpu', 'cpuacct', 'memory', 'freezer', 'blkio', 'pids', '']) {
        const path = lines.get(controller);
        assert.ok(path?.endsWith(`/${ROOT_NAME}/d.domain/s.slice`), `${controller || 'cgroup2'}: ${path}`);
      }
      assert.deepEqual(backend.procs(group), [proc.pid]);
      assert.deepEqual(backend.threads(group), [proc.pid]);
      assert.deepEqual(backend.procs(['d.domain']), []);

      const files = backend.procsFiles(group);
      const expected = Object.values(backend.rootDirectories()).map((root) => join(root, 'd.domain', 's.slice', 'cgroup.procs'));
      assert.deepEqual([...files].sort(), [...expected].sort());
      assert.equal(files.length, 7, 'cpu, cpuacct, memory, freezer, blkio, pids and unified');
      for (const file of files) assert.deepEqual(readIdsOf(file), [proc.pid], file);

      assert.equal(backend.processMemoryDirectory(proc.pid), backend.memoryDirectory(group));
      assert.equal(backend.processMemoryDirectory(proc.pid), join(layout.memory, 'd.domain', 's.slice'));

      process.kill(proc.pid, 'SIGKILL');
      await proc.exited;
      assert.deepEqual(backend.procs(group), []);
      assert.equal(backend.processMemoryDirectory(proc.pid), null, 'a process that is gone has no memory cgroup');
      // A process in the root memory group (kthreadd, only read here) is in the mount itself,
      // spelled without a trailing slash so that the agent's prefix check sees our groups below it.
      // In a PID namespace (a container) kthreadd is not visible and this part has nothing to read.
      if (existsSync('/proc/2/cgroup') && readProcCgroups(2).find((l) => l.controllers.includes('memory'))?.path === '/') {
        assert.equal(backend.processMemoryDirectory(2), layout.memoryMount);
      }
    } finally {
      await cleanup();
    }
  });

  test('CPU usage grows under load, a 200m quota holds the group to a fifth of a CPU and is seen as throttling', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend } = env;
    const group = ['busy.slice'];
    try {
      // The quota caps what the loop takes from anything else running on the machine; a high
      // root weight makes sure it does get its quota when the node is busy (other benchmarks).
      backend.init(10000);
      backend.create(group);
      backend.setCpuLimit(group, 200);
      assert.equal(backend.readCpuUsageNs(group), 0);
      const loop = busyLoop();
      backend.moveProcess(group, loop.pid);
      await sleep(300);
      const before = backend.readCpuUsageNs(group);
      assert.ok(before > 0, 'usage grows while the loop runs');

      const throttleBefore = backend.readCpuThrottle(group);
      const t0 = process.hrtime.bigint();
      await sleep(2000);
      const used = backend.readCpuUsageNs(group) - before;
      const elapsed = Number(process.hrtime.bigint() - t0);
      // In CPUs, whatever the node has: 200m is a fifth of one CPU.
      const cpus = used / elapsed;
      assert.ok(Math.abs(cpus - 0.2) <= 0.04, `the group used ${(cpus * 1000).toFixed(0)}m (want 200m ± 40m)`);

      const throttle = backend.readCpuThrottle(group);
      assert.ok(throttle.periods > throttleBefore.periods, `periods ${throttle.periods}`);
      assert.ok(throttle.throttledPeriods > throttleBefore.throttledPeriods, `throttled periods ${throttle.throttledPeriods}`);
      assert.ok(throttle.throttledNs > 0, `throttled ns ${throttle.throttledNs}`);
      // Usage counts the children too: the root group includes the slice's time (read the
      // slice first: the loop keeps running between the two reads).
      const sliceUsage = backend.readCpuUsageNs(group);
      assert.ok(backend.readCpuUsageNs([]) >= sliceUsage);
    } finally {
      await cleanup();
    }
  });

  test('setFrozen(true) stops every task of the group and setFrozen(false) resumes them', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    const group = ['frozen.slice'];
    const stateFile = join(layout.freezer, 'frozen.slice', 'freezer.state');
    try {
      backend.init(10000);
      backend.create(group);
      backend.setCpuLimit(group, 500);
      const loop = busyLoop();
      backend.moveProcess(group, loop.pid);
      await waitFor('the loop to use CPU', () => backend.readCpuUsageNs(group) > 10_000_000);

      await backend.setFrozen(group, true);
      assert.equal(readTrim(stateFile), 'FROZEN');
      const state = procState(loop.pid);
      assert.ok(state !== null && state !== 'R', `a frozen task is not running (state ${state})`);
      const frozenAt = backend.readCpuUsageNs(group);
      await sleep(300);
      assert.equal(backend.readCpuUsageNs(group), frozenAt, 'no CPU time while frozen');
      assert.ok(isAlive(loop.pid));

      await backend.setFrozen(group, false);
      assert.equal(readTrim(stateFile), 'THAWED');
      await waitFor('the loop to run again', () => backend.readCpuUsageNs(group) > frozenAt + 10_000_000, 2000);
    } finally {
      await cleanup();
    }
  });

  test('killAll kills every process of the group, also ones that ignore SIGTERM and ones that are frozen', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend } = env;
    const group = ['kill.slice'];
    try {
      backend.init(100);
      backend.create(group);
      const stubborn = termIgnorer();
      backend.moveProcess(group, stubborn.pid);
      // Its shell forks a sleep every second, and the sleep is born in the group.
      await waitFor('the shell to fork into the group', () => backend.procs(group).length >= 2, 3000);
      process.kill(stubborn.pid, 'SIGTERM');
      await sleep(200);
      assert.ok(isAlive(stubborn.pid), 'SIGTERM is ignored');

      backend.killAll(group);
      assert.equal((await stubborn.exited).signal, 'SIGKILL');
      await waitFor('the group to be empty', () => backend.procs(group).length === 0);

      // The agent's sequence for stopping a group: freeze, kill, thaw.
      const frozen = termIgnorer();
      backend.moveProcess(group, frozen.pid);
      await backend.setFrozen(group, true);
      backend.killAll(group);
      await backend.setFrozen(group, false);
      assert.equal((await frozen.exited).signal, 'SIGKILL');
      await waitFor('the group to be empty', () => backend.procs(group).length === 0);
    } finally {
      await cleanup();
    }
  });

  test('the kernel refuses a child quota above its parent quota: EIO naming the file', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, layout } = env;
    const parent = ['q.domain'];
    const child = ['q.domain', 'c.slice'];
    const childFile = join(layout.cpu, 'q.domain', 'c.slice', 'cpu.cfs_quota_us');
    const parentFile = join(layout.cpu, 'q.domain', 'cpu.cfs_quota_us');
    try {
      backend.init(100);
      backend.create(child);
      backend.setCpuLimit(parent, 300);
      assert.throws(
        () => backend.setCpuLimit(child, 500),
        (err: unknown) =>
          err instanceof SlicedError && err.code === 'EIO' && err.message.includes(childFile) && err.message.includes('50000'),
      );
      assert.equal(readTrim(childFile), '-1', 'the refused value was not applied');
      backend.setCpuLimit(child, 200);
      assert.equal(readTrim(childFile), '20000');
      // ... and lowering a parent below a child is refused as well, so limits must be written
      // children-first when lowering and parents-first when raising (the agent's two passes).
      assert.throws(
        () => backend.setCpuLimit(parent, 100),
        (err: unknown) => err instanceof SlicedError && err.code === 'EIO' && err.message.includes(parentFile),
      );
      assert.equal(readTrim(parentFile), '30000');
      backend.setCpuLimit(child, 100);
      backend.setCpuLimit(parent, 100);
      assert.equal(readTrim(parentFile), '10000');
    } finally {
      await cleanup();
    }
  });
});
