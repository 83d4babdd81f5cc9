/**
 * The config tree's semantics (docs/ARCHITECTURE.md "Config tree", issue 3): component creation by
 * mkdir, the refusals with their codes, the slides' shell sessions as tree operations,
 * stacking precedence and the data flow through threshold -> remote_cache -> port. Fake
 * component types and fake timers: nothing runs unless the test makes it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigTree, type DirNode } from '../../src/framework/tree.js';
import type { FilterInstance } from '../../src/framework/instances.js';
import { assertSound, dirAt, makeTree, refusal, statusOf } from './framework-fixtures.js';

const PROBE = '/probes/cpu';
const SCHED = '/schedulers/CPU_LB';
const POLICY = `${SCHED}/load_balancing`;

/** Run an operation; whatever it does, the tree must stay sound. */
async function step<T>(tree: ConfigTree, what: string, op: () => T | Promise<T>): Promise<T> {
  try {
    return await op();
  } finally {
    assertSound(tree, what);
  }
}

/** The slides' "Setting up a scheduler", with our paths. */
async function setUp(tree: ConfigTree): Promise<void> {
  await step(tree, 'mkdir probe', () => tree.mkdir(PROBE));
  await step(tree, 'probe_period', () => tree.write(`${PROBE}/probe_period`, '1000\n'));
  await step(tree, 'mkdir scheduler', () => tree.mkdir(SCHED));
  await step(tree, 'mkdir policy', () => tree.mkdir(POLICY));
  await step(tree, 'mkdir remote_cache', () => tree.mkdir(`${POLICY}/node_load/remote_cache`));
  await step(tree, 'mkdir threshold', () => tree.mkdir(`${POLICY}/node_load/remote_cache/threshold`));
  await step(tree, 'threshold', () => tree.write(`${POLICY}/node_load/remote_cache/threshold/threshold`, '100\n'));
  await step(tree, 'ln node_load', () => tree.symlink(`${PROBE}/node_load`, `${POLICY}/node_load/remote_cache/threshold/cpu_load`));
  await step(tree, 'ln process_load', () => tree.symlink(`${PROBE}/process_load`, `${POLICY}/process_load/cpu_load`));
  await step(tree, 'attach pid', () => tree.mkdir(`${SCHED}/process_set/single_processes/4242`));
  await step(tree, 'attach session', () => tree.mkdir(`${SCHED}/process_set/process_sessions/77`));
}

/** Everything under a path: `find PATH` (directories, files and links), parents first. */
function find(tree: ConfigTree, path: string): Array<{ path: string; kind: string }> {
  const out: Array<{ path: string; kind: string }> = [{ path, kind: tree.stat(path).kind }];
  for (const e of tree.readdir(path)) {
    const child = `${path}/${e.name}`;
    if (e.kind === 'dir') out.push(...find(tree, child));
    else out.push({ path: child, kind: e.kind });
  }
  return out;
}

describe('config tree: creation by mkdir', () => {
  test('mkdir of a type name instantiates it with its default groups and files', async () => {
    const { tree, fakes } = makeTree();
    await tree.mkdir(PROBE);
    assert.deepEqual(
      tree
        .readdir(PROBE)
        .map((e) => e.name)
        .sort(),
      ['description', 'node_load', 'probe_period', 'process_load'],
    );
    assert.equal(tree.read(`${PROBE}/probe_period`), '1000\n');
    assert.equal(tree.read(`${PROBE}/node_load/type`), 'load\n');
    assert.equal(fakes.probeState.refreshes, 1, 'a new probe refreshes once at creation');
    await tree.mkdir(SCHED);
    assert.deepEqual(
      tree
        .readdir(`${SCHED}/process_set`)
        .map((e) => e.name)
        .sort(),
      ['handle_all', 'pids', 'process_sessions', 'single_processes', 'slices'],
    );
    await tree.mkdir(POLICY);
    const names = tree
      .readdir(POLICY)
      .map((e) => e.name)
      .sort();
    assert.deepEqual(names, ['description', 'node_load', 'process_load', 'status']);
    assert.deepEqual(
      tree
        .readdir(`${POLICY}/node_load`)
        .map((e) => e.name)
        .sort(),
      ['collected_value', 'description', 'type'],
    );
    await tree.mkdir(`${POLICY}/node_load/threshold`);
    assert.equal(tree.read(`${POLICY}/node_load/threshold/threshold`), '0\n');
    assertSound(tree);
  });

  test('an unknown type is ENOENT; a malformed type name too', async () => {
    const { tree } = makeTree();
    await assert.rejects(tree.mkdir('/probes/no_such_probe'), refusal('ENOENT', /no_such_probe/));
    await assert.rejects(tree.mkdir('/probes/Bad-Name'), refusal('ENOENT'));
    await tree.mkdir(SCHED);
    await assert.rejects(tree.mkdir(`${SCHED}/no_such_policy`), refusal('ENOENT'));
    await tree.mkdir(POLICY);
    await assert.rejects(tree.mkdir(`${POLICY}/node_load/no_such_filter`), refusal('ENOENT'));
    assert.deepEqual(tree.readdir('/probes'), []);
    assertSound(tree);
  });

  test('a component created in the wrong place is EINVAL (wrong kind) or EPERM (no mkdir there)', async () => {
    const { tree } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir(SCHED);
    await assert.rejects(tree.mkdir('/probes/threshold'), refusal('EINVAL', /threshold is a filter, not a probe/));
    await assert.rejects(tree.mkdir('/probes/load_balancing'), refusal('EINVAL', /policy, not a probe/));
    await assert.rejects(tree.mkdir(`${SCHED}/threshold`), refusal('EINVAL', /filter, not a policy/));
    await assert.rejects(tree.mkdir(`${SCHED}/cpu`), refusal('EINVAL', /probe, not a policy/));
    await tree.mkdir(POLICY);
    await assert.rejects(tree.mkdir(`${POLICY}/node_load/cpu`), refusal('EINVAL', /probe, not a filter/));
    await assert.rejects(tree.mkdir(`${POLICY}/node_load/counter`), refusal('EINVAL', /policy, not a filter/));
    // Places that take no mkdir at all.
    await assert.rejects(tree.mkdir('/threshold'), refusal('EPERM'));
    await assert.rejects(tree.mkdir(`${PROBE}/threshold`), refusal('EPERM'));
    await assert.rejects(tree.mkdir(`${PROBE}/node_load/threshold`), refusal('EPERM'));
    await assert.rejects(tree.mkdir(`${POLICY}/threshold`), refusal('EPERM'));
    await assert.rejects(tree.mkdir(`${SCHED}/process_set/threshold`), refusal('EPERM'));
    await assert.rejects(tree.mkdir('/slices/anything'), refusal('EPERM'));
    // A file is not a directory.
    await assert.rejects(tree.mkdir(`${PROBE}/probe_period/x`), refusal('ENOTDIR'));
    assertSound(tree);
  });

  test('a scheduler holds one policy: the second is EBUSY; the same name again is EEXIST', async () => {
    const { tree } = makeTree();
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    await assert.rejects(tree.mkdir(`${SCHED}/counter`), refusal('EBUSY', /already has policy load_balancing/));
    await assert.rejects(tree.mkdir(POLICY), refusal('EEXIST'));
    await assert.rejects(tree.mkdir(`${SCHED}/process_set`), refusal('EEXIST'));
    await assert.rejects(tree.mkdir(SCHED), refusal('EEXIST'));
    assert.equal(tree.readdir(SCHED).filter((e) => e.kind === 'dir').length, 2, 'process_set and one policy');
    assertSound(tree);
  });

  test('process set members: pids and session ids are validated; slices by name', async () => {
    const { tree } = makeTree();
    await tree.mkdir(SCHED);
    const ps = `${SCHED}/process_set`;
    for (const bad of ['0', '-1', '01', 'abc', '99999999999', '4194305', '1.5']) {
      await assert.rejects(tree.mkdir(`${ps}/single_processes/${bad}`), refusal('EINVAL'), bad);
      await assert.rejects(tree.mkdir(`${ps}/process_sessions/${bad}`), refusal('EINVAL'), bad);
    }
    for (const bad of ['-x', '.hidden', 'a b', 'é']) await assert.rejects(tree.mkdir(`${ps}/slices/${bad}`), refusal('EINVAL'), bad);
    // What `ps -osid` prints for a shell whose session began outside the PID namespace.
    await assert.rejects(tree.mkdir(`${ps}/process_sessions/0`), /outside this PID namespace; start a new session \(setsid/);
    await tree.mkdir(`${ps}/single_processes/1`);
    await tree.mkdir(`${ps}/slices/web-1`);
    assert.deepEqual(
      tree.readdir(`${ps}/single_processes`).map((e) => e.name),
      ['1'],
    );
    assertSound(tree);
  });

  test('a process directory refuses pids, sessions and slices that do not exist', async () => {
    const { tree } = makeTree();
    tree.setProcessDirectory({
      exists: (pid) => pid === 10,
      sessionMembers: (sid) => (sid === 5 ? [10] : []),
      slicePids: () => [],
      sliceExists: (s) => s === 'web',
      sessionOf: () => 5,
      sliceOf: () => null,
    });
    await tree.mkdir(SCHED);
    const ps = `${SCHED}/process_set`;
    await assert.rejects(tree.mkdir(`${ps}/single_processes/11`), refusal('ESRCH'));
    await assert.rejects(tree.mkdir(`${ps}/process_sessions/6`), refusal('ESRCH'));
    await assert.rejects(tree.mkdir(`${ps}/slices/db`), refusal('ENOENT'));
    await tree.mkdir(`${ps}/single_processes/10`);
    await tree.mkdir(`${ps}/process_sessions/5`);
    await tree.mkdir(`${ps}/slices/web`);
    assert.equal(tree.read(`${ps}/pids`), '10\n');
    assertSound(tree);
  });
});

describe('config tree: links', () => {
  test('a link must point to a probe source (EINVAL), exist (ENOENT) and land in a port or filter (EPERM)', async () => {
    const { tree } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    const port = `${POLICY}/node_load`;
    for (const target of [PROBE, `${PROBE}/probe_period`, SCHED, POLICY, port, '/', '/slices']) {
      assert.throws(() => tree.symlink(target, `${port}/l`), refusal('EINVAL', /is not a probe source/), target);
    }
    assert.throws(() => tree.symlink('/probes/nothing/node_load', `${port}/l`), refusal('ENOENT'));
    assert.throws(() => tree.symlink(`${PROBE}/node_load`, `${POLICY}/l`), refusal('EPERM', /only ports and filters/));
    assert.throws(() => tree.symlink(`${PROBE}/node_load`, `${SCHED}/l`), refusal('EPERM'));
    assert.throws(() => tree.symlink(`${PROBE}/node_load`, `${PROBE}/l`), refusal('EPERM'));
    assert.throws(() => tree.symlink(`${PROBE}/node_load`, '/l'), refusal('EPERM'));
    assert.throws(() => tree.symlink('probes/cpu/node_load', `${port}/l`), refusal('EINVAL', /absolute/));
    assert.equal(tree.readdir(port).filter((e) => e.kind === 'link').length, 0);
    assertSound(tree);
  });

  test('value types must be equal (EINVAL), also through a filter', async () => {
    const { tree } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir('/probes/fake_mem');
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    assert.throws(
      () => tree.symlink(`${PROBE}/process_load`, `${POLICY}/node_load/l`),
      refusal('EINVAL', /process_load.*expects load.*value types must be equal/),
    );
    assert.throws(() => tree.symlink('/probes/fake_mem/memory', `${POLICY}/node_load/l`), refusal('EINVAL', /memory/));
    await tree.mkdir(`${POLICY}/process_load/ewma`);
    assert.throws(() => tree.symlink(`${PROBE}/node_load`, `${POLICY}/process_load/ewma/l`), refusal('EINVAL'));
    tree.symlink(`${PROBE}/process_load`, `${POLICY}/process_load/ewma/l`);
    assertSound(tree);
  });

  test('a slot that already has a source refuses another link or a filter (EPERM) and keeps the first', async () => {
    const { tree } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir('/probes/cpu_always');
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    const port = `${POLICY}/node_load`;
    tree.symlink(`${PROBE}/node_load`, `${port}/first`);
    assert.throws(
      () => tree.symlink('/probes/cpu_always/node_load', `${port}/second`),
      refusal('EPERM', /already has a source \(link first/),
    );
    await assert.rejects(tree.mkdir(`${port}/threshold`), refusal('EPERM', /already has a source/));
    assert.throws(() => tree.symlink(`${PROBE}/node_load`, `${port}/first`), refusal('EEXIST'));
    assert.equal(tree.readlink(`${port}/first`), `${PROBE}/node_load`);
    // And a filter as the source refuses a link next to it.
    const other = `${POLICY}/process_load`;
    await tree.mkdir(`${other}/ewma`);
    assert.throws(() => tree.symlink(`${PROBE}/process_load`, `${other}/l`), refusal('EPERM', /already has a source \(filter ewma\)/));
    await assert.rejects(tree.mkdir(`${other}/rate`), refusal('EPERM'));
    assert.deepEqual(
      tree
        .readdir(port)
        .filter((e) => e.kind !== 'file')
        .map((e) => e.name),
      ['first'],
    );
    assertSound(tree);
  });

  test('link names follow the name rules (EINVAL)', async () => {
    const { tree } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    for (const bad of ['a\nb', ' ', '-rf', '.hidden', 'é', 'x'.repeat(65), 'a..b']) {
      assert.throws(
        () => tree.symlink(`${PROBE}/node_load`, `${POLICY}/node_load/${bad}`),
        refusal('EINVAL', /link name/),
        JSON.stringify(bad),
      );
    }
    tree.symlink(`${PROBE}/node_load`, `${POLICY}/node_load/cpu_load`);
    assertSound(tree);
  });

  test('a link resolves as a path; readlink shows its canonical target', async () => {
    const { tree } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    tree.symlink('//probes///cpu/node_load/', `${POLICY}/node_load/cpu_load`);
    assert.equal(tree.readlink(`${POLICY}/node_load/cpu_load`), `${PROBE}/node_load`);
    assert.equal(tree.read(`${POLICY}/node_load/cpu_load/type`), 'load\n');
    assert.equal(tree.stat(`${POLICY}/node_load/cpu_load`).kind, 'link');
    assert.throws(() => tree.read(`${POLICY}/node_load/cpu_load`), refusal('EISDIR'));
    assertSound(tree);
  });
});

describe('config tree: removal', () => {
  test('rmdir of a probe with links is EBUSY; of a policy with linked ports or a filter with a source ENOTEMPTY', async () => {
    const { tree } = makeTree();
    await setUp(tree);
    assert.throws(() => tree.rmdir(PROBE), refusal('EBUSY', /2 link\(s\)/));
    assert.throws(() => tree.rmdir(POLICY), refusal('ENOTEMPTY', /node_load, process_load/));
    assert.throws(() => tree.rmdir(`${POLICY}/node_load/remote_cache`), refusal('ENOTEMPTY', /filter threshold/));
    assert.throws(() => tree.rmdir(`${POLICY}/node_load/remote_cache/threshold`), refusal('ENOTEMPTY', /link cpu_load/));
    assert.throws(() => tree.rmdir(SCHED), refusal('ENOTEMPTY', /still holds policy/));
    assert.ok(tree.exists(`${POLICY}/node_load/remote_cache/threshold/cpu_load`));
    assertSound(tree);
  });

  test('a scheduler with process set members (or handle_all) is ENOTEMPTY', async () => {
    const { tree } = makeTree();
    await tree.mkdir(SCHED);
    await tree.mkdir(`${SCHED}/process_set/single_processes/5`);
    assert.throws(() => tree.rmdir(SCHED), refusal('ENOTEMPTY', /process_set is not empty/));
    tree.rmdir(`${SCHED}/process_set/single_processes/5`);
    tree.write(`${SCHED}/process_set/handle_all`, '1');
    assert.throws(() => tree.rmdir(SCHED), refusal('ENOTEMPTY'));
    tree.write(`${SCHED}/process_set/handle_all`, '0');
    tree.rmdir(SCHED);
    assert.equal(tree.exists(SCHED), false);
    assertSound(tree);
  });

  test('default groups (port, process_set, its lists, probe sources) are EPERM to rmdir', async () => {
    const { tree } = makeTree();
    await setUp(tree);
    for (const path of [
      `${POLICY}/node_load`,
      `${SCHED}/process_set`,
      `${SCHED}/process_set/single_processes`,
      `${PROBE}/node_load`,
      '/probes',
      '/schedulers',
      '/slices',
    ]) {
      assert.throws(() => tree.rmdir(path), refusal('EPERM'), path);
      assert.ok(tree.exists(path));
    }
    assert.throws(() => tree.rmdir('/'), refusal('EPERM'));
    assert.throws(() => tree.rmdir(`${PROBE}/probe_period`), refusal('ENOTDIR'));
    assert.throws(() => tree.rmdir(`${POLICY}/process_load/cpu_load`), refusal('ENOTDIR'), 'a link is removed with rm');
    assertSound(tree);
  });

  test('rm of an attribute or a read-only file is EPERM; rm of a directory EISDIR', async () => {
    const { tree } = makeTree();
    await setUp(tree);
    for (const path of [
      `${PROBE}/probe_period`,
      `${POLICY}/node_load/remote_cache/threshold/threshold`,
      `${POLICY}/node_load/collected_value`,
      `${SCHED}/process_set/handle_all`,
      `${POLICY}/status`,
    ]) {
      assert.throws(() => tree.unlink(path), refusal('EPERM', /attribute and cannot be removed/), path);
      assert.ok(tree.exists(path));
    }
    assert.throws(() => tree.unlink(POLICY), refusal('EISDIR'));
    assert.throws(() => tree.unlink(`${POLICY}/nothing`), refusal('ENOENT'));
    assertSound(tree);
  });
});

describe('config tree: attributes', () => {
  test('a rejected write is EINVAL and leaves the old value', async () => {
    const { tree } = makeTree();
    await setUp(tree);
    const thr = `${POLICY}/node_load/remote_cache/threshold/threshold`;
    for (const bad of ['', 'abc', 'NaN', 'Infinity', '1e999', '10 20', '0x']) {
      assert.throws(() => tree.write(thr, bad), refusal('EINVAL', /threshold/), bad);
      assert.equal(tree.read(thr), '100\n');
    }
    for (const bad of ['-1', '1.5', '3600001', 'x', '']) {
      assert.throws(() => tree.write(`${PROBE}/probe_period`, bad), refusal('EINVAL', /probe_period/), bad);
      assert.equal(tree.read(`${PROBE}/probe_period`), '1000\n');
    }
    for (const bad of ['2', 'yes', '-1']) {
      assert.throws(() => tree.write(`${SCHED}/process_set/handle_all`, bad), refusal('EINVAL'), bad);
      assert.equal(tree.read(`${SCHED}/process_set/handle_all`), '0\n');
    }
    assertSound(tree);
  });

  test('a cross-attribute rule (hysteresis low above high) is refused with the old value kept', async () => {
    const { tree } = makeTree();
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    const h = `${POLICY}/node_load/hysteresis`;
    await tree.mkdir(h);
    tree.write(`${h}/high`, '50');
    tree.write(`${h}/low`, '20');
    assert.throws(() => tree.write(`${h}/low`, '60'), refusal('EINVAL', /low 60 must not be above high 50/));
    assert.equal(tree.read(`${h}/low`), '20\n');
    assert.throws(() => tree.write(`${h}/high`, '10'), refusal('EINVAL'));
    assert.equal(tree.read(`${h}/high`), '50\n');
  });

  test('read-only files are EPERM on write; directories EISDIR', async () => {
    const { tree } = makeTree();
    await setUp(tree);
    for (const path of [
      `${PROBE}/node_load/value`,
      `${PROBE}/node_load/type`,
      `${PROBE}/description`,
      `${POLICY}/status`,
      `${POLICY}/node_load/collected_value`,
      `${POLICY}/node_load/remote_cache/value`,
      `${SCHED}/process_set/pids`,
    ]) {
      const before = tree.read(path);
      assert.throws(() => tree.write(path, '1'), refusal('EPERM', /read-only/), path);
      assert.equal(tree.read(path), before);
    }
    assert.throws(() => tree.write(POLICY, '1'), refusal('EISDIR'));
    assert.throws(() => tree.write(`${PROBE}/nothing`, '1'), refusal('ENOENT'));
  });

  test('an accepted write is applied and a trailing newline is ignored', async () => {
    const { tree, timers } = makeTree();
    await tree.mkdir(PROBE);
    tree.write(`${PROBE}/probe_period`, '250\n');
    assert.equal(tree.read(`${PROBE}/probe_period`), '250\n');
    assert.deepEqual(
      [...timers.intervals.values()].map((i) => i.ms),
      [250],
      'the probe timer follows probe_period',
    );
    tree.write(`${PROBE}/probe_period`, '0');
    assert.equal(timers.intervals.size, 0, 'probe_period 0: no timer');
  });
});

describe('config tree: path validation', () => {
  test('relative paths, "." and "..", NUL and over-long paths are EINVAL', async () => {
    const { tree } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    const bad = [
      'probes/cpu',
      '',
      '/probes/../probes/cpu',
      '/probes/./cpu',
      '/probes/cpu/..',
      '/probes/c\0pu',
      `/${'a'.repeat(256)}`,
      `/${'a/'.repeat(2100)}`,
      `/${'a/'.repeat(70)}`,
    ];
    for (const path of bad) {
      await assert.rejects(tree.mkdir(path), refusal('EINVAL'), JSON.stringify(path).slice(0, 40));
      assert.throws(() => tree.read(path), refusal('EINVAL'));
      assert.throws(() => tree.write(path, '1'), refusal('EINVAL'));
      assert.throws(() => tree.rmdir(path), refusal('EINVAL'));
      assert.throws(() => tree.unlink(path), refusal('EINVAL'));
      assert.throws(() => tree.symlink(path, `${POLICY}/node_load/l`), refusal('EINVAL'));
      assert.throws(() => tree.symlink(`${PROBE}/node_load`, path), refusal('EINVAL'));
    }
    assert.throws(() => tree.readdir('/probes/../'), refusal('EINVAL'));
    assertSound(tree);
  });

  test('scheduler names follow the name rules (EINVAL)', async () => {
    const { tree } = makeTree();
    for (const bad of ['-rf', '.x', 'a b', 'x'.repeat(65), 'é', 'a..b', 'a\nb']) {
      await assert.rejects(tree.mkdir(`/schedulers/${bad}`), refusal('EINVAL'), bad);
    }
    assert.deepEqual(
      tree.readdir('/schedulers').map((e) => e.name),
      ['precedence'],
      'no scheduler was made (the stacking order file alone)',
    );
  });
});

describe("config tree: the slides' sessions", () => {
  test('setting up a scheduler, then querying data', async () => {
    const { tree, fakes, timers } = makeTree();
    await setUp(tree);
    fakes.probeState.cpuLoads = [150, 20];
    timers.fire();
    assert.equal(tree.read(`${PROBE}/node_load/value`), 'cpu0 150\ncpu1 20\n');
    assert.equal(tree.read(`${POLICY}/node_load/collected_value`), 'cpu0 150\ncpu1 20\n', 'through threshold and remote_cache');
    assert.equal(tree.read(`${POLICY}/node_load/remote_cache/value`), 'cpu0 150\ncpu1 20\n');
    assert.equal(
      tree.read(`${POLICY}/node_load/remote_cache/collected_value`),
      tree.read(`${POLICY}/node_load/remote_cache/threshold/value`),
    );
    assert.deepEqual(
      fakes.updates.get(POLICY)!.filter((u) => u.startsWith('node_load')),
      ['node_load cpu0 150, cpu1 20'],
    );
    assert.deepEqual(
      tree.readdir(`${SCHED}/process_set/single_processes`).map((e) => e.name),
      ['4242'],
    );
  });

  test('modifying a policy: remove the threshold filter and relink, while the rest keeps running', async () => {
    const { tree, fakes, timers } = makeTree();
    await setUp(tree);
    await step(tree, 'mkdir counter sched', () => tree.mkdir('/schedulers/other'));
    await step(tree, 'mkdir counter', () => tree.mkdir('/schedulers/other/counter'));
    await step(tree, 'ln counter', () => tree.symlink(`${PROBE}/node_load`, '/schedulers/other/counter/node_load/l'));
    const count = (): number => statusOf(tree, '/schedulers/other/counter').count as number;
    let load = 0;
    const tick = (): void => {
      fakes.probeState.cpuLoads = [++load * 10, 0];
      timers.fire();
    };
    tick();
    tick();
    const counted = count();
    assert.ok(counted >= 2);
    const RC = `${POLICY}/node_load/remote_cache`;
    await step(tree, 'rm threshold/cpu_load', () => tree.unlink(`${RC}/threshold/cpu_load`));
    tick();
    await step(tree, 'rmdir threshold', () => tree.rmdir(`${RC}/threshold`));
    tick();
    await step(tree, 'ln remote_cache/cpu_load', () => tree.symlink(`${PROBE}/node_load`, `${RC}/cpu_load`));
    assert.equal(count(), counted + 2, 'the other policy kept counting through the change, no reset');
    // Without the threshold, small loads now reach the policy.
    fakes.probeState.cpuLoads = [5, 1];
    timers.fire();
    assert.equal(fakes.updates.get(POLICY)!.at(-1), 'node_load cpu0 5, cpu1 1');
    assert.equal(count(), counted + 3);
    assert.equal(dirAt(tree, POLICY).policy!.activations, fakes.updates.get(POLICY)!.length);
  });

  test('replacing a policy: find -type l | rm, then find | tac | xargs rmdir, then a new policy', async () => {
    const { tree, fakes, timers } = makeTree();
    await setUp(tree);
    for (const { path, kind } of find(tree, POLICY)) if (kind === 'link') await step(tree, `rm ${path}`, () => tree.unlink(path));
    // `find $POLICY | tac | xargs -n 1 rmdir`: every entry, deepest last-listed first; files
    // and default groups refuse, the components go.
    const outcomes: string[] = [];
    for (const { path } of find(tree, POLICY).reverse()) {
      try {
        await step(tree, `rmdir ${path}`, () => tree.rmdir(path));
        outcomes.push(`removed ${path}`);
      } catch (err) {
        assert.ok(['ENOTDIR', 'EPERM'].includes((err as { code: string }).code), `${path}: ${(err as Error).message}`);
      }
    }
    assert.deepEqual(outcomes, [
      `removed ${POLICY}/node_load/remote_cache/threshold`,
      `removed ${POLICY}/node_load/remote_cache`,
      `removed ${POLICY}`,
    ]);
    assert.equal(tree.exists(POLICY), false);
    await step(tree, 'rmdir probe', () => tree.rmdir(PROBE));
    await step(tree, 'mkdir probe', () => tree.mkdir(PROBE));
    await step(tree, 'mkdir new policy', () => tree.mkdir(`${SCHED}/counter`));
    await step(tree, 'ln new policy', () => tree.symlink(`${PROBE}/node_load`, `${SCHED}/counter/node_load/cpu_load`));
    fakes.probeState.cpuLoads = [1, 2];
    timers.fire();
    assert.ok((statusOf(tree, `${SCHED}/counter`).count as number) >= 1);
    assert.deepEqual(
      tree.readdir(`${SCHED}/process_set/single_processes`).map((e) => e.name),
      ['4242'],
      'the process set stayed',
    );
  });

  test('stacking: handle_all first, then the schedulers holding the parent in reverse attach order', async () => {
    const { tree } = makeTree();
    const mk = async (name: string, answer: string): Promise<void> => {
      await step(tree, `mkdir ${name}`, () => tree.mkdir(`/schedulers/${name}`));
      await step(tree, `mkdir ${name} placer`, () => tree.mkdir(`/schedulers/${name}/placer`));
      tree.write(`/schedulers/${name}/placer/answer`, answer);
    };
    const task = { parentPid: 100, sessionId: 7, slice: 'web' };
    await mk('cpu_lb', 'node_a');
    await mk('swap_avoidance', 'node_b');
    assert.deepEqual(tree.placeNewTask(task), { node: null, refused: null, scheduler: null }, 'nobody holds the process');
    await tree.mkdir('/schedulers/cpu_lb/process_set/single_processes/100');
    assert.equal(tree.placeNewTask(task).node, 'node_a');
    await tree.mkdir('/schedulers/swap_avoidance/process_set/single_processes/100');
    assert.deepEqual(
      tree.placeNewTask(task),
      { node: 'node_b', refused: null, scheduler: 'swap_avoidance' },
      'the later attach takes precedence',
    );
    // A later attach of cpu_lb by session puts it in front again.
    await tree.mkdir('/schedulers/cpu_lb/process_set/process_sessions/7');
    assert.equal(tree.placeNewTask(task).scheduler, 'cpu_lb');
    // No opinion: the next one answers.
    tree.write('/schedulers/cpu_lb/placer/answer', 'none');
    assert.equal(tree.placeNewTask(task).scheduler, 'swap_avoidance');
    // A refusal wins when it comes first.
    tree.write('/schedulers/cpu_lb/placer/answer', 'refuse');
    assert.deepEqual(tree.placeNewTask(task), { node: null, refused: '/schedulers/cpu_lb/placer refuses', scheduler: 'cpu_lb' });
    // ...and not when it comes after a valid answer.
    tree.write('/schedulers/cpu_lb/placer/answer', 'node_a');
    tree.write('/schedulers/swap_avoidance/placer/answer', 'refuse');
    assert.equal(tree.placeNewTask(task).node, 'node_a');
    // handle_all schedulers come before all of them, the latest first.
    await mk('all_1', 'node_x');
    await mk('all_2', 'node_y');
    tree.write('/schedulers/all_1/process_set/handle_all', '1');
    assert.equal(tree.placeNewTask(task).scheduler, 'all_1');
    assert.equal(tree.placeNewTask({ parentPid: 1, sessionId: null, slice: null }).scheduler, 'all_1', 'handle_all holds every process');
    tree.write('/schedulers/all_2/process_set/handle_all', '1');
    assert.equal(tree.placeNewTask(task).scheduler, 'all_2');
    tree.write('/schedulers/all_2/placer/answer', 'none');
    assert.equal(tree.placeNewTask(task).scheduler, 'all_1');
    // The stacking order as /schedulers/precedence shows it: rank, scheduler, what holds, attach number.
    const order = (): string[][] =>
      tree
        .read('/schedulers/precedence')
        .trimEnd()
        .split('\n')
        .map((line) => line.split(' ').slice(1, 3));
    assert.deepEqual(order(), [
      ['all_2', 'handle_all'],
      ['all_1', 'handle_all'],
      ['cpu_lb', 'process_sessions/7'],
      ['swap_avoidance', 'single_processes/100'],
      ['cpu_lb', 'single_processes/100'],
    ]);
    assert.throws(() => tree.write('/schedulers/precedence', '1'), refusal('EPERM'), 'read-only');
    tree.write('/schedulers/all_1/process_set/handle_all', '0');
    assert.equal(tree.placeNewTask(task).scheduler, 'cpu_lb');
    // A slice member counts too.
    await mk('by_slice', 'node_s');
    await tree.mkdir('/schedulers/by_slice/process_set/slices/web');
    assert.equal(tree.placeNewTask(task).scheduler, 'by_slice');
    assert.equal(tree.placeNewTask({ ...task, slice: 'db' }).scheduler, 'cpu_lb');
    // A scheduler without a policy has no opinion.
    await tree.mkdir('/schedulers/empty');
    await tree.mkdir('/schedulers/empty/process_set/single_processes/100');
    assert.equal(tree.placeNewTask(task).scheduler, 'by_slice');
    assertSound(tree);
  });
});

describe('config tree: data flow', () => {
  test('a probe refresh reaches the policy through threshold -> remote_cache -> port; threshold drops values at or under it', async () => {
    const { tree, fakes, timers } = makeTree();
    await setUp(tree);
    const all = fakes.updates.get(POLICY)!;
    assert.deepEqual(all, ['process_load '], 'linking delivers the current (empty) process loads; loads of 0 stay under the threshold');
    all.length = 0;
    const log = all;
    fakes.probeState.cpuLoads = [150, 30];
    timers.fire();
    assert.deepEqual(log, ['node_load cpu0 150, cpu1 30']);
    fakes.probeState.cpuLoads = [100, 99];
    timers.fire();
    assert.equal(log.length, 1, 'largest value 100 is not above threshold 100: dropped');
    assert.equal(tree.read(`${POLICY}/node_load/collected_value`), 'cpu0 150\ncpu1 30\n', 'the port keeps the last value that passed');
    assert.equal(tree.read(`${POLICY}/node_load/remote_cache/threshold/collected_value`), 'cpu0 100\ncpu1 99\n');
    fakes.probeState.cpuLoads = [10, 101];
    timers.fire();
    assert.deepEqual(log.at(-1), 'node_load cpu0 10, cpu1 101');
    const threshold = dirAt(tree, `${POLICY}/node_load/remote_cache/threshold`).slot as FilterInstance;
    assert.equal(threshold.passed, 2, 'of the value delivered at link time and three refreshes');
    // process_load is linked straight to the port.
    fakes.probeState.processLoads.set(4242, 70);
    timers.fire();
    assert.equal(log.at(-1), 'process_load 4242 70');
    assertSound(tree);
  });

  test('has_changed: an unchanged refresh is not published; notifyUnchanged publishes every period', async () => {
    const { tree, fakes, timers } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir('/probes/cpu_always');
    for (const [sched, probe] of [
      ['quiet', PROBE],
      ['loud', '/probes/cpu_always'],
    ] as const) {
      await tree.mkdir(`/schedulers/${sched}`);
      await tree.mkdir(`/schedulers/${sched}/counter`);
      tree.symlink(`${probe}/node_load`, `/schedulers/${sched}/counter/node_load/l`);
    }
    const count = (s: string): number => statusOf(tree, `/schedulers/${s}/counter`).count as number;
    // Linking delivers the current value at once (a late policy must not wait for a change).
    assert.equal(count('quiet'), 1);
    assert.equal(count('loud'), 1);
    for (let i = 0; i < 5; i++) timers.fire();
    assert.equal(count('quiet'), 1, 'nothing changed: no update');
    assert.equal(count('loud'), 6, 'notifyUnchanged: one update per period');
    fakes.probeState.cpuLoads = [1, 2];
    timers.fire();
    assert.equal(count('quiet'), 2);
    timers.fire();
    assert.equal(count('quiet'), 2);
    fakes.probeState.cpuLoads = [1, 2, 3];
    timers.fire();
    assert.equal(count('quiet'), 3, 'a new row is a change');
  });

  test('probe_period 0: the value is refreshed when read', async () => {
    const { tree, fakes, timers } = makeTree();
    await tree.mkdir(PROBE);
    tree.write(`${PROBE}/probe_period`, '0');
    fakes.probeState.cpuLoads = [7];
    timers.fire();
    assert.equal(tree.read(`${PROBE}/node_load/value`), 'cpu0 7\n');
  });

  test('remote_cache without services.remote passes the local value unchanged', async () => {
    const { tree, fakes, timers } = makeTree();
    await tree.mkdir(PROBE);
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    await tree.mkdir(`${POLICY}/node_load/remote_cache`);
    tree.symlink(`${PROBE}/node_load`, `${POLICY}/node_load/remote_cache/l`);
    fakes.probeState.cpuLoads = [3, 4];
    timers.fire();
    assert.equal(tree.read(`${POLICY}/node_load/collected_value`), 'cpu0 3\ncpu1 4\n');
    assert.equal(tree.read(`${POLICY}/node_load/remote_cache/value`), tree.read(`${PROBE}/node_load/value`));
    assert.equal(timers.intervals.size, 1, 'only the probe timer');
  });

  test('a failing policy does not stop the other subscribers of the source', async () => {
    const { tree, fakes, timers, registry } = makeTree();
    registry.add({
      kind: 'policy',
      name: 'broken',
      description: 'throws',
      ports: [{ name: 'node_load', valueType: 'load', description: '' }],
      create: () => ({
        onUpdate() {
          throw new Error('boom');
        },
      }),
    });
    await tree.mkdir(PROBE);
    await tree.mkdir('/schedulers/a');
    await tree.mkdir('/schedulers/a/broken');
    tree.symlink(`${PROBE}/node_load`, '/schedulers/a/broken/node_load/l');
    await tree.mkdir('/schedulers/b');
    await tree.mkdir('/schedulers/b/counter');
    tree.symlink(`${PROBE}/node_load`, '/schedulers/b/counter/node_load/l');
    fakes.probeState.cpuLoads = [9];
    timers.fire();
    assert.equal(statusOf(tree, '/schedulers/b/counter').count, 2);
    assert.equal(statusOf(tree, '/schedulers/a/broken').failures, 2);
  });

  test('mutations are reported to listeners with canonical paths', async () => {
    const { tree } = makeTree();
    const seen: string[] = [];
    tree.onMutation((m) => seen.push(`${m.op} ${m.path}`));
    await tree.mkdir('//probes/cpu/');
    await tree.mkdir(SCHED);
    await tree.mkdir(POLICY);
    tree.symlink(`${PROBE}/node_load`, `${POLICY}/node_load//l`);
    tree.write(`${PROBE}/probe_period`, '5');
    assert.throws(() => tree.write(`${PROBE}/probe_period`, 'x'));
    tree.unlink(`${POLICY}/node_load/l`);
    tree.rmdir(POLICY);
    assert.deepEqual(seen, [
      `mkdir ${PROBE}`,
      `mkdir ${SCHED}`,
      `mkdir ${POLICY}`,
      `ln ${POLICY}/node_load/l`,
      `write ${PROBE}/probe_period`,
      `rm ${POLICY}/node_load/l`,
      `rmdir ${POLICY}`,
    ]);
  });
});

test('a tree with only fake timers starts no real timers (nothing runs on its own)', async () => {
  const { tree, timers } = makeTree();
  await setUp(tree);
  assert.equal(timers.intervals.size, 1);
  tree.destroyAll();
  assert.equal(timers.intervals.size, 0, 'destroyAll stops the probe');
  assert.ok(tree instanceof ConfigTree);
  const root = tree.root as DirNode;
  assert.equal(root.kind, 'dir');
});
