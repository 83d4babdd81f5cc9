/**
 * The process-management half of the cgroup v2 backend against the real cgroup2 hierarchy
 * at /sys/fs/cgroup/unified, which on this kind of machine holds no controllers (cpu, memory
 * and io are bound to v1): groups, moving processes, cgroup.freeze and cgroup.kill work
 * there without any controller. The CPU and memory files are covered by the fixture test.
 *
 * init() is not called on the real hierarchy: it writes the root's cpu.weight, which needs
 * the cpu controller (see the last test, which shows the refusal on a group of our own).
 */
import { describe, test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { detectLayout } from '../../src/kernel/cgroup/detect.js';
import { CgroupV2Backend } from '../../src/kernel/cgroup/v2.js';
import { SlicedError } from '../../src/core/errors.js';
import { skipWithoutKernel } from '../helpers/env.js';
import {
  busyLoop,
  isAlive,
  killStarted,
  procCgroups,
  procState,
  readIdsOf,
  removeTree,
  sleeper,
  termIgnorer,
  waitFor,
} from './kernel-helpers.js';

const MOUNT = '/sys/fs/cgroup/unified';
const ROOT_NAME = `sliced-kt2${process.pid}`;
const unifiedReason = existsSync(join(MOUNT, 'cgroup.controllers')) ? null : `needs a cgroup2 hierarchy mounted at ${MOUNT}`;

let root: string | null = null;

function setup(t: TestContext): { backend: CgroupV2Backend; own: string; root: string } | null {
  if (skipWithoutKernel(t, unifiedReason)) return null;
  // detectLayout places the root beneath our own cgroup2 group; its parent is that group.
  const unified = detectLayout({ rootName: ROOT_NAME, prefer: 'v1' }).v1?.unified;
  assert.ok(unified, 'detectLayout found the cgroup2 hierarchy');
  const own = dirname(unified);
  assert.ok(own === MOUNT || own.startsWith(`${MOUNT}/`), own);
  root = unified;
  // The root group is made by hand: init() would also write cpu.weight, absent here.
  mkdirSync(root, { recursive: true });
  return { backend: new CgroupV2Backend({ mount: MOUNT, own, root, controllers: [] }), own, root };
}

async function cleanup(): Promise<void> {
  await killStarted();
  if (root) await removeTree([root]);
}

after(cleanup);

const events = (dir: string): Map<string, string> =>
  new Map(
    readFileSync(join(dir, 'cgroup.events'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ') as [string, string]),
  );

describe('cgroup v2 backend on the real cgroup2 hierarchy (no controllers)', () => {
  test('create, exists, children and remove; with no controllers the subtree_control write is empty and accepted', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, root } = env;
    try {
      assert.deepEqual(backend.rootDirectories(), { unified: root });
      assert.equal(backend.exists([]), true);
      backend.create(['d.domain', 's.slice']);
      backend.create(['d.domain', 's.slice']);
      assert.ok(statSync(join(root, 'd.domain', 's.slice')).isDirectory());
      assert.equal(backend.exists(['d.domain', 's.slice']), true);
      assert.equal(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8').trim(), '');
      assert.deepEqual(backend.children([]), ['d.domain']);
      assert.deepEqual(backend.children(['d.domain']), ['s.slice']);
      assert.throws(
        () => backend.remove(['d.domain']),
        (err: unknown) => err instanceof SlicedError && err.code === 'EIO',
      );
      backend.remove(['d.domain', 's.slice']);
      backend.remove(['d.domain']);
      backend.remove(['d.domain']); // missing is fine
      assert.equal(backend.exists(['d.domain']), false);
      assert.equal(existsSync(join(root, 'd.domain')), false);
    } finally {
      await cleanup();
    }
  });

  test('moveProcess, procs, threads, procsFiles and processMemoryDirectory', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, root, own } = env;
    const group = ['d.domain', 'p.slice'];
    try {
      backend.create(group);
      const proc = sleeper();
      assert.equal(backend.processMemoryDirectory(proc.pid), own, 'a new child starts in our own group');
      backend.moveProcess(group, proc.pid);
      assert.ok(procCgroups(proc.pid).get('')?.endsWith(`/${ROOT_NAME}/d.domain/p.slice`));
      assert.deepEqual(backend.procs(group), [proc.pid]);
      assert.deepEqual(backend.threads(group), [proc.pid]);
      assert.deepEqual(backend.procs(['d.domain']), []);
      assert.deepEqual(backend.procsFiles(group), [join(root, 'd.domain', 'p.slice', 'cgroup.procs')]);
      assert.deepEqual(readIdsOf(backend.procsFiles(group)[0]!), [proc.pid]);
      assert.equal(backend.processMemoryDirectory(proc.pid), join(root, 'd.domain', 'p.slice'));
      assert.equal(backend.memoryDirectory(group), join(root, 'd.domain', 'p.slice'));
      assert.equal(events(join(root, 'd.domain')).get('populated'), '1');

      process.kill(proc.pid, 'SIGKILL');
      await proc.exited;
      assert.deepEqual(backend.procs(group), []);
      assert.equal(backend.processMemoryDirectory(proc.pid), null);
      await waitFor('populated 0', () => events(join(root, 'd.domain')).get('populated') === '0');
    } finally {
      await cleanup();
    }
  });

  test('setFrozen freezes and thaws through cgroup.freeze and waits for cgroup.events', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, root } = env;
    const group = ['f.slice'];
    const dir = join(root, 'f.slice');
    try {
      backend.create(group);
      const loop = busyLoop();
      backend.moveProcess(group, loop.pid);
      await backend.setFrozen(group, true);
      assert.equal(readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim(), '1');
      assert.equal(events(dir).get('frozen'), '1');
      const state = procState(loop.pid);
      assert.ok(state !== null && state !== 'R', `a frozen task is not running (state ${state})`);
      const ticks = (): number => Number(readFileSync(`/proc/${loop.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[11]); // utime
      const frozenTicks = ticks();
      await sleep(300);
      assert.equal(ticks(), frozenTicks, 'no CPU time while frozen');

      await backend.setFrozen(group, false);
      assert.equal(events(dir).get('frozen'), '0');
      await waitFor('the loop to run again', () => procState(loop.pid) === 'R' || ticks() > frozenTicks, 2000);
      assert.ok(isAlive(loop.pid));
    } finally {
      await cleanup();
    }
  });

  test('killAll kills every process through cgroup.kill, also ones that ignore SIGTERM and frozen ones', async (t) => {
    const env = setup(t);
    if (!env) return;
    const { backend, root } = env;
    const group = ['k.slice'];
    try {
      backend.create(group);
      const stubborn = termIgnorer();
      backend.moveProcess(group, stubborn.pid);
      await waitFor('the shell to fork into the group', () => backend.procs(group).length >= 2, 3000);
      process.kill(stubborn.pid, 'SIGTERM');
      await sleep(200);
      assert.ok(isAlive(stubborn.pid), 'SIGTERM is ignored');
      backend.killAll(group);
      assert.equal((await stubborn.exited).signal, 'SIGKILL');
      await waitFor('the group to be empty (the forked sleep too)', () => backend.procs(group).length === 0);
      await waitFor('populated 0', () => events(join(root, 'k.slice')).get('populated') === '0');

      const frozen = termIgnorer();
      backend.moveProcess(group, frozen.pid);
      await backend.setFrozen(group, true);
      backend.killAll(group); // cgroup.kill kills frozen tasks without a thaw
      assert.equal((await frozen.exited).signal, 'SIGKILL');
      await backend.setFrozen(group, false);
      await waitFor('the group to be empty', () => backend.procs(group).length === 0);
    } finally {
      await cleanup();
    }
  });

  test('init() needs the cpu controller: without it the root weight write is refused with EIO naming cpu.weight', async (t) => {
    const env = setup(t);
    if (!env) return;
    // "own" is a group of ours here, so that init() writes nothing outside sliced-kt2<pid>.
    const inner = join(env.root, 'sliced-inner');
    const backend = new CgroupV2Backend({ mount: MOUNT, own: env.root, root: inner, controllers: [] });
    try {
      assert.throws(
        () => backend.init(100),
        (err: unknown) => err instanceof SlicedError && err.code === 'EIO' && err.message.includes(join(inner, 'cpu.weight')),
      );
      // The controllers check passed (none wanted) and the empty subtree_control write was accepted.
      assert.ok(statSync(inner).isDirectory());
      const wanting = new CgroupV2Backend({ mount: MOUNT, own: env.root, root: inner });
      assert.throws(
        () => wanting.init(100),
        (err: unknown) => err instanceof SlicedError && err.code === 'EIO' && /controllers cpu, memory are not available/.test(err.message),
      );
    } finally {
      await cleanup();
    }
  });
});
