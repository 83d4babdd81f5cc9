/**
 * The tree as a document (slicectl dump / apply) and the TreeService: round trip, idempotent
 * apply, a safe plan order, all-or-nothing apply, persistence through the embedded store,
 * the default document on the first start only, and caller rights.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigTree } from '../../src/framework/tree.js';
import { dumpTree, executePlan, parseTreeYaml, planApply, treeToYaml, type PlanStep } from '../../src/framework/document.js';
import { ADMIN, TreeService, type Caller } from '../../src/framework/service.js';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { assertSound, makeTree, refusal, silentLog } from './framework-fixtures.js';

const P = '/schedulers/CPU_LB/load_balancing';

/** A tree using most of what a document can say. */
async function richTree(tree: ConfigTree): Promise<void> {
  await tree.mkdir('/probes/cpu');
  tree.write('/probes/cpu/probe_period', '500');
  await tree.mkdir('/probes/cpu_always');
  await tree.mkdir('/schedulers/CPU_LB');
  await tree.mkdir(P);
  await tree.mkdir(`${P}/node_load/remote_cache`);
  tree.write(`${P}/node_load/remote_cache/prefetch_period_ms`, '1500');
  await tree.mkdir(`${P}/node_load/remote_cache/threshold`);
  tree.write(`${P}/node_load/remote_cache/threshold/threshold`, '100');
  tree.symlink('/probes/cpu/node_load', `${P}/node_load/remote_cache/threshold/cpu_load`);
  await tree.mkdir(`${P}/process_load/ewma`);
  tree.write(`${P}/process_load/ewma/alpha`, '0.25');
  tree.symlink('/probes/cpu_always/process_load', `${P}/process_load/ewma/procs`);
  await tree.mkdir('/schedulers/CPU_LB/process_set/single_processes/4242');
  await tree.mkdir('/schedulers/CPU_LB/process_set/process_sessions/77');
  await tree.mkdir('/schedulers/CPU_LB/process_set/slices/web');
  await tree.mkdir('/schedulers/all');
  await tree.mkdir('/schedulers/all/placer');
  tree.write('/schedulers/all/placer/answer', 'node_b');
  tree.write('/schedulers/all/process_set/handle_all', '1');
  await tree.mkdir('/schedulers/idle');
  await tree.mkdir('/schedulers/hyst');
  await tree.mkdir('/schedulers/hyst/counter');
  await tree.mkdir('/schedulers/hyst/counter/node_load/hysteresis');
  tree.write('/schedulers/hyst/counter/node_load/hysteresis/high', '80');
  tree.write('/schedulers/hyst/counter/node_load/hysteresis/low', '20');
  tree.symlink('/probes/cpu/node_load', '/schedulers/hyst/counter/node_load/hysteresis/l');
  assertSound(tree, 'rich tree');
}

async function apply(tree: ConfigTree, registry: Parameters<typeof planApply>[1], doc: ReturnType<typeof dumpTree>): Promise<PlanStep[]> {
  const plan = await planApply(tree, registry, doc);
  await executePlan(tree, plan);
  assertSound(tree, 'apply');
  return plan;
}

describe('dump and apply', () => {
  test('dump -> YAML -> apply on an empty tree reproduces the same dump', async () => {
    const a = makeTree();
    await richTree(a.tree);
    const yaml = treeToYaml(a.tree);
    assert.match(yaml, /cpu_load: -> \/probes\/cpu\/node_load/);
    assert.match(yaml, /handle_all: 1/);
    assert.doesNotMatch(yaml, /collected_value|status|description/, 'read-only files are not part of the document');
    const b = makeTree();
    await apply(b.tree, b.registry, parseTreeYaml(yaml, 'dump'));
    assert.deepEqual(dumpTree(b.tree), dumpTree(a.tree));
    assert.equal(treeToYaml(b.tree), yaml);
    assert.equal(b.tree.placeNewTask({ parentPid: 1, sessionId: null, slice: null }).node, 'node_b');
  });

  test('apply is idempotent: the second plan is empty', async () => {
    const a = makeTree();
    await richTree(a.tree);
    const doc = dumpTree(a.tree);
    const b = makeTree();
    assert.ok((await apply(b.tree, b.registry, doc)).length > 10);
    assert.deepEqual(await planApply(b.tree, b.registry, doc), []);
    assert.deepEqual(await planApply(a.tree, a.registry, doc), [], 'a tree is already equal to its own dump');
  });

  test('the plan order is safe: rm links, rmdir deepest first, mkdir parents first, writes, then links', async () => {
    const { tree, registry } = makeTree();
    await richTree(tree);
    // Target: the slides' "modify" (threshold gone, remote_cache linked directly), a new
    // scheduler with a filter chain, the hysteresis scheduler gone, a new probe period.
    const doc = dumpTree(tree) as Record<string, any>;
    const rc = doc.schedulers.CPU_LB.load_balancing.node_load.remote_cache;
    delete rc.threshold;
    rc.cpu_load = '-> /probes/cpu/node_load';
    delete doc.schedulers.hyst;
    doc.probes.cpu.probe_period = 250;
    doc.schedulers.fresh = { counter: { node_load: { ewma: { alpha: 0.5, rate: { l: '-> /probes/cpu_always/node_load' } } } } };
    const plan = await planApply(tree, registry, doc);
    const order = ['rm', 'rmdir', 'mkdir', 'write', 'ln'];
    const ranks = plan.map((s) => order.indexOf(s.op));
    assert.deepEqual(
      ranks,
      [...ranks].sort((x, y) => x - y),
      `plan in phase order: ${plan.map((s) => s.op).join(' ')}`,
    );
    const rmdirs = plan.filter((s) => s.op === 'rmdir').map((s) => s.path);
    assert.deepEqual(
      rmdirs,
      [
        '/schedulers/hyst/counter/node_load/hysteresis',
        `${P}/node_load/remote_cache/threshold`,
        '/schedulers/hyst/counter',
        '/schedulers/hyst',
      ].sort((x, y) => y.split('/').length - x.split('/').length || rmdirs.indexOf(x) - rmdirs.indexOf(y)),
    );
    for (let i = 1; i < rmdirs.length; i++) assert.ok(rmdirs[i]!.split('/').length <= rmdirs[i - 1]!.split('/').length, 'deepest first');
    const mkdirs = plan.filter((s) => s.op === 'mkdir').map((s) => s.path);
    assert.deepEqual(mkdirs, [
      '/schedulers/fresh',
      '/schedulers/fresh/counter',
      '/schedulers/fresh/counter/node_load/ewma',
      '/schedulers/fresh/counter/node_load/ewma/rate',
    ]);
    assert.deepEqual(
      plan
        .filter((s) => s.op === 'rm')
        .map((s) => s.path)
        .sort(),
      [`${P}/node_load/remote_cache/threshold/cpu_load`, '/schedulers/hyst/counter/node_load/hysteresis/l'].sort(),
    );
    assert.deepEqual(
      plan
        .filter((s) => s.op === 'ln')
        .map((s) => s.path)
        .sort(),
      [`${P}/node_load/remote_cache/cpu_load`, '/schedulers/fresh/counter/node_load/ewma/rate/l'],
    );
    // A dry run changed nothing; executing it reaches the document.
    const before = dumpTree(tree);
    assert.notDeepEqual(before, doc);
    await executePlan(tree, plan);
    assertSound(tree);
    assert.deepEqual(dumpTree(tree), doc);
  });

  test('a document that removes a scheduler with handle_all on can be applied', async () => {
    const { tree, registry } = makeTree();
    await richTree(tree);
    const doc = dumpTree(tree) as Record<string, any>;
    delete doc.schedulers.all;
    await apply(tree, registry, doc);
    assert.equal(tree.exists('/schedulers/all'), false);
    assert.deepEqual(dumpTree(tree), doc);
  });

  test('attributes with a cross rule apply from a document whatever the order (hysteresis, swap_avoidance thresholds)', async () => {
    const a = makeTree();
    await a.tree.mkdir('/schedulers/s');
    await a.tree.mkdir('/schedulers/s/counter');
    await a.tree.mkdir('/schedulers/s/counter/node_load/hysteresis');
    const h = '/schedulers/s/counter/node_load/hysteresis';
    // Negative thresholds (a rate filter below it can produce them): low first, then high.
    a.tree.write(`${h}/low`, '-10');
    a.tree.write(`${h}/high`, '-5');
    const yaml = treeToYaml(a.tree);
    const b = makeTree();
    await apply(b.tree, b.registry, parseTreeYaml(yaml, 'dump'));
    assert.equal(treeToYaml(b.tree), yaml);
  });

  test('slice names that look like numbers survive the round trip', async () => {
    const a = makeTree();
    await a.tree.mkdir('/schedulers/s');
    for (const slice of ['0123', '12345678901234567890', '1e3', 'true', 'null'])
      await a.tree.mkdir(`/schedulers/s/process_set/slices/${slice}`);
    await a.tree.mkdir('/schedulers/s/process_set/single_processes/99');
    const yaml = treeToYaml(a.tree);
    const b = makeTree();
    await apply(b.tree, b.registry, parseTreeYaml(yaml, 'dump'));
    assert.deepEqual(
      b.tree
        .readdir('/schedulers/s/process_set/slices')
        .map((e) => e.name)
        .sort(),
      ['0123', '12345678901234567890', '1e3', 'null', 'true'],
    );
    assert.equal(treeToYaml(b.tree), yaml);
  });

  test('a document with an error in the middle fails naming the step and leaves the tree exactly as before', async () => {
    const cases: Array<{ what: string; edit: (doc: Record<string, any>) => void; code: string; step: RegExp }> = [
      {
        what: 'unknown type',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.remote_cache.no_such_filter = {}),
        code: 'ENOENT',
        step: /no_such_filter/,
      },
      {
        what: 'bad value',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.remote_cache.threshold.threshold = 'lots'),
        code: 'EINVAL',
        step: /step \d+ of \d+ \(write .*threshold\/threshold = lots\) failed/,
      },
      {
        what: 'bad link target',
        edit: (d) => (d.schedulers.hyst.counter.node_load.hysteresis.l = '-> /probes/cpu/process_load'),
        code: 'EINVAL',
        step: /step \d+ of \d+ \(ln -s \/probes\/cpu\/process_load .*\) failed.*value types must be equal/,
      },
      {
        what: 'link to nothing',
        edit: (d) => (d.schedulers.hyst.counter.node_load.hysteresis.l = '-> /probes/nothing/x'),
        code: 'ENOENT',
        step: /ln -s \/probes\/nothing\/x/,
      },
      {
        what: 'two sources on a port',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.extra = '-> /probes/cpu/node_load'),
        code: 'EPERM',
        step: /already has a source/,
      },
      {
        what: 'type in the wrong place',
        edit: (d) => (d.probes.threshold = {}),
        code: 'EINVAL',
        step: /threshold is a filter, not a probe/,
      },
      { what: 'a second policy', edit: (d) => (d.schedulers.CPU_LB.counter = {}), code: 'EBUSY', step: /already has policy/ },
      {
        what: 'bad pid',
        edit: (d) => (d.schedulers.CPU_LB.process_set.single_processes = [4242, 'x']),
        code: 'EINVAL',
        step: /single_processes\/x/,
      },
      {
        what: 'bad period with other changes before it',
        edit: (d) => {
          delete d.schedulers.hyst;
          d.schedulers.n = { counter: {} };
          d.probes.cpu.probe_period = -1;
        },
        code: 'EINVAL',
        step: /probe_period = -1/,
      },
      { what: 'a read-only view', edit: (d) => (d.slices = {}), code: 'EINVAL', step: /read-only view/ },
      { what: 'a read-only file', edit: (d) => (d.schedulers.CPU_LB.load_balancing.status = 'x'), code: 'EPERM', step: /status/ },
    ];
    for (const c of cases) {
      const { tree, registry, timers } = makeTree();
      await richTree(tree);
      const before = treeToYaml(tree);
      const timersBefore = timers.intervals.size;
      const doc = dumpTree(tree) as Record<string, any>;
      c.edit(doc);
      await assert.rejects(
        (async () => executePlan(tree, await planApply(tree, registry, doc)))(),
        (err: unknown) => refusal(c.code, c.step)(err),
        c.what,
      );
      assertSound(tree, c.what);
      assert.equal(treeToYaml(tree), before, `${c.what}: tree unchanged`);
      assert.equal(timers.intervals.size, timersBefore, `${c.what}: no probe left running`);
    }
  });

  test('a failed apply keeps the stacking precedence of what it undid', async () => {
    const { tree, registry } = makeTree();
    for (const s of ['a', 'b']) {
      await tree.mkdir(`/schedulers/${s}`);
      await tree.mkdir(`/schedulers/${s}/placer`);
      tree.write(`/schedulers/${s}/placer/answer`, `node_${s}`);
    }
    await tree.mkdir('/schedulers/b/process_set/single_processes/7');
    await tree.mkdir('/schedulers/a/process_set/single_processes/7');
    const task = { parentPid: 7, sessionId: null, slice: null };
    assert.equal(tree.placeNewTask(task).node, 'node_a', 'a attached last');
    const doc = dumpTree(tree) as Record<string, any>;
    delete doc.schedulers.b.process_set; // removes b's member (the earlier attach)...
    doc.schedulers.b.placer.answer = 'bad answer'; // ...then fails
    await assert.rejects(async () => executePlan(tree, await planApply(tree, registry, doc)), refusal('EINVAL', /answer/));
    assert.ok(tree.exists('/schedulers/b/process_set/single_processes/7'));
    assert.equal(tree.placeNewTask(task).node, 'node_a', 'the undo restored the member with its place in the order');
  });

  test('YAML that is not a mapping, or nests absurdly, is EINVAL', () => {
    assert.throws(() => parseTreeYaml('- a\n- b\n', 'doc'), refusal('EINVAL', /mapping/));
    assert.throws(() => parseTreeYaml('a: [\n', 'doc'), refusal('EINVAL', /not valid YAML/));
    assert.deepEqual(parseTreeYaml('', 'doc'), {});
  });
});

describe('TreeService', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sliced-tree-service-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const DEFAULT_DOC =
    'probes:\n  cpu:\n    probe_period: 700\nschedulers:\n  base:\n    counter:\n      node_load:\n        l: -> /probes/cpu/node_load\n';

  async function start(
    storeDir: string,
    defaultCalls: { n: number },
  ): Promise<{ service: TreeService; store: EmbeddedStore; tree: ConfigTree }> {
    const store = await EmbeddedStore.open(storeDir);
    const { tree, registry } = makeTree();
    const service = new TreeService(tree, registry, { local: store }, silentLog);
    await service.restore(() => {
      defaultCalls.n++;
      return DEFAULT_DOC;
    });
    assertSound(tree, 'restore');
    return { service, store, tree };
  }

  test('the default document is applied on the first start only; changes survive a restart', async () => {
    const storeDir = join(dir, 'persist');
    const calls = { n: 0 };
    const first = await start(storeDir, calls);
    assert.equal(calls.n, 1);
    assert.equal(first.tree.read('/probes/cpu/probe_period'), '700\n');
    await first.service.write(ADMIN, '/probes/cpu/probe_period', '300');
    await first.service.mkdir(ADMIN, '/schedulers/CPU_LB');
    await first.service.mkdir(ADMIN, P);
    await first.service.mkdir(ADMIN, `${P}/node_load/threshold`);
    await first.service.write(ADMIN, `${P}/node_load/threshold/threshold`, '42');
    await first.service.symlink(ADMIN, '/probes/cpu/node_load', `${P}/node_load/threshold/cpu_load`);
    await first.service.mkdir(ADMIN, '/schedulers/CPU_LB/process_set/single_processes/4242');
    await first.service.write(ADMIN, '/schedulers/CPU_LB/process_set/handle_all', '1');
    // A refused change is not persisted.
    await assert.rejects(first.service.write(ADMIN, `${P}/node_load/threshold/threshold`, 'x'), refusal('EINVAL'));
    // A removal is persisted too.
    await first.service.unlink(ADMIN, '/schedulers/base/counter/node_load/l');
    await first.service.rmdir(ADMIN, '/schedulers/base/counter');
    const expected = treeToYaml(first.tree);
    first.tree.destroyAll();
    await first.store.close();

    const second = await start(storeDir, calls);
    assert.equal(calls.n, 1, 'not applied again');
    assert.equal(treeToYaml(second.tree), expected);
    assert.equal(second.tree.read(`${P}/node_load/threshold/threshold`), '42\n');
    // Removing everything and restarting does not bring the default back.
    await second.service.apply(ADMIN, {}, false);
    const empty = treeToYaml(makeTree().tree);
    assert.equal(treeToYaml(second.tree), empty);
    second.tree.destroyAll();
    await second.store.close();
    const third = await start(storeDir, calls);
    assert.equal(calls.n, 1);
    assert.equal(treeToYaml(third.tree), empty);
    third.tree.destroyAll();
    await third.store.close();
  });

  // Attributes are stored with the sequence of their write and restored in that order, so
  // the attach order of handle_all (stacking precedence) survives a restart.
  test('stacking precedence among handle_all schedulers survives a restart', async () => {
    const storeDir = join(dir, 'precedence');
    const calls = { n: 0 };
    const first = await start(storeDir, calls);
    for (const s of ['b_first', 'a_second']) {
      await first.service.mkdir(ADMIN, `/schedulers/${s}`);
      await first.service.mkdir(ADMIN, `/schedulers/${s}/placer`);
      await first.service.write(ADMIN, `/schedulers/${s}/placer/answer`, s);
      await first.service.write(ADMIN, `/schedulers/${s}/process_set/handle_all`, '1');
    }
    const task = { parentPid: 1, sessionId: null, slice: null };
    assert.equal(first.tree.placeNewTask(task).node, 'a_second');
    // Turned off and on again: b_first is now the latest attach.
    await first.service.write(ADMIN, '/schedulers/b_first/process_set/handle_all', '0');
    await first.service.write(ADMIN, '/schedulers/b_first/process_set/handle_all', '1');
    assert.equal(first.tree.placeNewTask(task).node, 'b_first');
    first.tree.destroyAll();
    await first.store.close();
    const second = await start(storeDir, calls);
    assert.equal(second.tree.placeNewTask(task).node, 'b_first');
    second.tree.destroyAll();
    await second.store.close();
  });

  test('attributes checked against each other are restored whatever their order in the store', async () => {
    const storeDir = join(dir, 'cross');
    const calls = { n: 0 };
    const first = await start(storeDir, calls);
    const sa = '/schedulers/mem/swap_avoidance';
    await first.service.mkdir(ADMIN, '/schedulers/mem');
    await first.service.mkdir(ADMIN, sa);
    await first.service.write(ADMIN, `${sa}/high`, '50'); // stored first...
    await first.service.write(ADMIN, `${sa}/low`, '30');
    await first.service.write(ADMIN, `${sa}/low`, '0.5'); // ...so at restore high=1 comes while low is still 2
    await first.service.write(ADMIN, `${sa}/high`, '1');
    first.tree.destroyAll();
    await first.store.close();
    const second = await start(storeDir, calls);
    assert.equal(second.tree.read(`${sa}/high`), '1\n');
    assert.equal(second.tree.read(`${sa}/low`), '0.5\n');
    second.tree.destroyAll();
    await second.store.close();
    const third = await start(storeDir, calls);
    assert.equal(third.tree.read(`${sa}/high`), '1\n', 'not dropped from the store either');
    third.tree.destroyAll();
    await third.store.close();
  });

  test('apply through the service is all or nothing, also in the store', async () => {
    const storeDir = join(dir, 'atomic');
    const calls = { n: 0 };
    const first = await start(storeDir, calls);
    const before = treeToYaml(first.tree);
    const dry = (await first.service.apply(ADMIN, 'schedulers:\n  x:\n    counter: {}\n', true)).steps;
    assert.deepEqual(dry.map((s) => `${s.op} ${s.path}`).slice(-2), ['mkdir /schedulers/x', 'mkdir /schedulers/x/counter']);
    assert.equal(treeToYaml(first.tree), before, 'a dry run changes nothing');
    await assert.rejects(
      first.service.apply(ADMIN, 'schedulers:\n  x:\n    counter:\n      node_load:\n        nope: {}\n', false),
      refusal('ENOENT'),
    );
    assert.equal(treeToYaml(first.tree), before);
    first.tree.destroyAll();
    await first.store.close();
    const second = await start(storeDir, calls);
    assert.equal(treeToYaml(second.tree), before, 'nothing of the failed apply was persisted');
    second.tree.destroyAll();
    await second.store.close();
  });

  test('a slice caller reads only /slices/<own> and changes nothing', async () => {
    const store = await EmbeddedStore.open(join(dir, 'rights'));
    const { tree, registry } = makeTree();
    tree.setProvider('slices', {
      names: () => ['web', 'db'],
      files: (name) => (['web', 'db'].includes(name) ? { usage: () => `${name} usage\n` } : null),
    });
    const service = new TreeService(tree, registry, { local: store }, silentLog);
    await service.restore(() => DEFAULT_DOC);
    const web: Caller = { admin: false, slice: 'web' };
    const nobody: Caller = { admin: false, slice: null };
    assert.equal(service.read(web, '/slices/web/usage'), 'web usage\n');
    assert.deepEqual(
      service.readdir(web, '/slices').map((e) => e.name),
      ['web'],
    );
    assert.deepEqual(
      service.readdir(web, '/').map((e) => e.name),
      ['slices'],
    );
    assert.throws(() => service.read(web, '/slices/db/usage'), refusal('EPERM'));
    assert.throws(() => service.readdir(web, '/slices/db'), refusal('EPERM'));
    assert.throws(() => service.read(web, '/probes/cpu/probe_period'), refusal('EPERM'));
    assert.throws(() => service.readdir(web, '/schedulers'), refusal('EPERM'));
    assert.throws(() => service.readlink(web, '/schedulers/base/counter/node_load/l'), refusal('EPERM'));
    assert.throws(() => service.stat(web, '/probes'), refusal('EPERM'));
    assert.throws(() => service.dump(web), refusal('EPERM'));
    assert.throws(() => service.read(nobody, '/slices/web/usage'), refusal('EPERM'));
    const before = treeToYaml(tree);
    for (const caller of [web, nobody]) {
      assert.throws(() => service.mkdir(caller, '/schedulers/x'), refusal('EPERM'));
      assert.throws(() => service.rmdir(caller, '/schedulers/base'), refusal('EPERM'));
      assert.throws(() => service.write(caller, '/probes/cpu/probe_period', '1'), refusal('EPERM'));
      assert.throws(() => service.symlink(caller, '/probes/cpu/node_load', '/schedulers/base/counter/node_load/m'), refusal('EPERM'));
      assert.throws(() => service.unlink(caller, '/schedulers/base/counter/node_load/l'), refusal('EPERM'));
      assert.throws(() => service.apply(caller, {}, false), refusal('EPERM'));
      assert.throws(() => service.apply(caller, {}, true), refusal('EPERM'));
    }
    assert.equal(treeToYaml(tree), before);
    assert.equal(service.read(ADMIN, '/probes/cpu/probe_period'), '700\n');
    tree.destroyAll();
    await store.close();
  });
});
