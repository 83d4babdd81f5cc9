/**
 * Issue 11, item 9: dump and apply round-trip when process-set members have ended; apply's
 * checks run before the first step (and in a dry run) and agree with what executing the plan
 * meets; undo never fails on members that vanished; a plan that stops the daemon's own CPU
 * control loop (/schedulers/cpu) needs confirming.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSlicedError } from '../../src/core/errors.js';
import type { ConfigTree, ProcessDirectory } from '../../src/framework/tree.js';
import { dumpTree, executePlan, parseTreeYaml, planApply, treeToYaml, type PlanStep } from '../../src/framework/document.js';
import { checkPlan, describeProblems } from '../../src/framework/plan-check.js';
import { ADMIN, TreeService } from '../../src/framework/service.js';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { assertSound, makeTree, refusal, silentLog } from './framework-fixtures.js';

/** Processes, sessions and slices that tests start and end at will. */
function processes(): ProcessDirectory & { pids: Set<number>; sessions: Map<number, number[]>; slices: Set<string> } {
  const pids = new Set<number>();
  const sessions = new Map<number, number[]>();
  const slices = new Set<string>();
  return {
    pids,
    sessions,
    slices,
    exists: (pid) => pids.has(pid),
    sessionMembers: (sid) => sessions.get(sid) ?? [],
    slicePids: () => [],
    sliceExists: (slice) => slices.has(slice),
    sessionOf: () => null,
    sliceOf: () => null,
  };
}

async function withMembers(tree: ConfigTree): Promise<ReturnType<typeof processes>> {
  const procs = processes();
  procs.pids.add(4242);
  procs.sessions.set(77, [78, 79]);
  procs.slices.add('web');
  tree.setProcessDirectory(procs);
  await tree.mkdir('/probes/cpu');
  await tree.mkdir('/schedulers/s');
  await tree.mkdir('/schedulers/s/counter');
  tree.symlink('/probes/cpu/node_load', '/schedulers/s/counter/node_load/l');
  await tree.mkdir('/schedulers/s/process_set/single_processes/4242');
  await tree.mkdir('/schedulers/s/process_set/process_sessions/77');
  await tree.mkdir('/schedulers/s/process_set/slices/web');
  return procs;
}

function endAll(procs: ReturnType<typeof processes>): void {
  procs.pids.clear();
  procs.sessions.clear();
  procs.slices.clear();
}

describe('members that ended', () => {
  test('the dump leaves out members whose processes ended; applying it removes them, and its own dump is then a no-op', async () => {
    const { tree, registry } = makeTree();
    const procs = await withMembers(tree);
    assert.match(treeToYaml(tree), /single_processes:\n\s+- 4242/);
    endAll(procs);
    const yaml = treeToYaml(tree);
    assert.doesNotMatch(yaml, /4242|77|web|single_processes|process_sessions/, yaml);
    const doc = parseTreeYaml(yaml, 'dump');
    const plan = await planApply(tree, registry, doc);
    assert.deepEqual((await checkPlan(tree, registry, plan)).problems, []);
    await executePlan(tree, plan);
    assertSound(tree);
    assert.deepEqual(tree.readdir('/schedulers/s/process_set/process_sessions'), []);
    assert.deepEqual(await planApply(tree, registry, doc), []);
  });

  test('a document naming a member that ended is a problem before anything runs, with the step named', async () => {
    const { tree, registry } = makeTree();
    const procs = await withMembers(tree);
    const doc = dumpTree(tree) as Record<string, any>;
    doc.schedulers.t = { process_set: { single_processes: [4242], process_sessions: [77] } };
    endAll(procs);
    const plan = await planApply(tree, registry, doc);
    const check = await checkPlan(tree, registry, plan);
    assert.deepEqual(
      check.problems.map((p) => p.code),
      ['ESRCH', 'ESRCH'],
    );
    const message = describeProblems(plan, check.problems);
    assert.match(
      message,
      /^step \d+ of \d+ \(mkdir \/schedulers\/t\/process_set\/single_processes\/4242\) failed: process 4242 does not exist; step \d+ of \d+ \(mkdir \/schedulers\/t\/process_set\/process_sessions\/77\) failed: session 77 has no processes$/,
    );
    // What the check says is what executing the plan meets.
    await assert.rejects(executePlan(tree, plan), refusal('ESRCH', /process 4242 does not exist; nothing was changed/));
    // Members kept in the tree although ended are worth a warning, not a problem.
    assert.ok(
      check.warnings.some((w) => /\/schedulers\/s\/process_set\/single_processes\/4242 is kept, but what it names has ended/.test(w)),
      check.warnings.join('\n'),
    );
  });

  test('undoing the removal of a member that ended cannot fail: the member is restored as it was', async () => {
    const { tree, registry } = makeTree();
    const procs = await withMembers(tree);
    await tree.mkdir('/schedulers/s2');
    await tree.mkdir('/schedulers/s2/counter');
    await tree.mkdir('/schedulers/s2/counter/node_load/hysteresis');
    const before = treeToYaml(tree);
    endAll(procs);
    const doc = dumpTree(tree) as Record<string, any>; // without the ended members: the plan removes them first
    const h = doc.schedulers.s2.counter.node_load.hysteresis;
    h.high = 10;
    h.low = 50; // a rule between two attributes: only the component sees it, when applied
    const plan = await planApply(tree, registry, doc);
    assert.ok(plan.some((s) => s.op === 'rmdir' && s.path.endsWith('/4242')));
    assert.deepEqual((await checkPlan(tree, registry, plan)).problems, []);
    await assert.rejects(executePlan(tree, plan), (err: unknown) => {
      assert.ok(isSlicedError(err));
      assert.match(err.message, /low 50 must not be above high 10; nothing was changed$/);
      return true;
    });
    assertSound(tree);
    for (const m of ['single_processes/4242', 'process_sessions/77', 'slices/web'])
      assert.ok(tree.exists(`/schedulers/s/process_set/${m}`), m);
    procs.pids.add(4242);
    procs.sessions.set(77, [78]);
    procs.slices.add('web');
    assert.equal(treeToYaml(tree), before, 'exactly as before');
  });
});

describe("apply's checks agree with executing the plan", () => {
  const P = '/schedulers/CPU_LB/load_balancing';
  async function rich(tree: ConfigTree): Promise<void> {
    await tree.mkdir('/probes/cpu');
    await tree.mkdir('/probes/fake_mem');
    await tree.mkdir('/schedulers/CPU_LB');
    await tree.mkdir(P);
    await tree.mkdir(`${P}/node_load/threshold`);
    tree.symlink('/probes/cpu/node_load', `${P}/node_load/threshold/cpu_load`);
    tree.symlink('/probes/cpu/process_load', `${P}/process_load/p`);
    await tree.mkdir('/schedulers/all');
    await tree.mkdir('/schedulers/all/placer');
    tree.write('/schedulers/all/process_set/handle_all', '1');
    await tree.mkdir('/schedulers/h');
    await tree.mkdir('/schedulers/h/counter');
    await tree.mkdir('/schedulers/h/counter/node_load/hysteresis');
  }

  test('the error cases of executePlan are found by the check, same code, same step', async () => {
    const cases: Array<{ what: string; edit: (doc: Record<string, any>) => void; code: string; step: RegExp }> = [
      {
        what: 'bad value',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.threshold.threshold = 'lots'),
        code: 'EINVAL',
        step: /write .*threshold\/threshold = lots/,
      },
      {
        what: 'value types differ',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.threshold.cpu_load = '-> /probes/cpu/process_load'),
        code: 'EINVAL',
        step: /value types must be equal/,
      },
      {
        what: 'link to nothing',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.threshold.cpu_load = '-> /probes/nothing/x'),
        code: 'ENOENT',
        step: /ln -s \/probes\/nothing\/x/,
      },
      {
        what: 'link to a file',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.threshold.cpu_load = '-> /probes/cpu/probe_period'),
        code: 'EINVAL',
        step: /not a probe source/,
      },
      {
        what: 'two sources',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.node_load.extra = '-> /probes/cpu/node_load'),
        code: 'EPERM',
        step: /already has a source/,
      },
      { what: 'a second policy', edit: (d) => (d.schedulers.CPU_LB.counter = {}), code: 'EBUSY', step: /already has policy/ },
      {
        what: 'bad pid',
        edit: (d) => (d.schedulers.CPU_LB.process_set = { single_processes: ['x'] }),
        code: 'EINVAL',
        step: /single_processes\/x/,
      },
      {
        what: 'session 0',
        edit: (d) => (d.schedulers.CPU_LB.process_set = { process_sessions: [0] }),
        code: 'EINVAL',
        step: /outside this PID namespace/,
      },
      { what: 'bad scheduler name', edit: (d) => (d.schedulers['bad name!'] = {}), code: 'EINVAL', step: /scheduler name/ },
      { what: 'bad period', edit: (d) => (d.probes.cpu.probe_period = -1), code: 'EINVAL', step: /probe_period = -1/ },
      { what: 'bad handle_all', edit: (d) => (d.schedulers.all.process_set.handle_all = 2), code: 'EINVAL', step: /handle_all = 2/ },
      {
        what: 'bad value in a new component',
        edit: (d) => (d.schedulers.n = { counter: { node_load: { ewma: { alpha: 7 } } } }),
        code: 'EINVAL',
        step: /ewma\/alpha = 7/,
      },
      { what: 'a read-only file', edit: (d) => (d.schedulers.CPU_LB.load_balancing.status = 'x'), code: 'EPERM', step: /status/ },
      { what: 'a file that does not exist', edit: (d) => (d.probes.cpu.nope = 1), code: 'ENOENT', step: /nope/ },
      {
        what: 'removing a probe still linked',
        edit: (d) => delete d.probes.cpu,
        code: 'EBUSY',
        step: /rmdir \/probes\/cpu\) failed: .*in use/,
      },
      {
        what: 'a filter where a link stays',
        edit: (d) => (d.schedulers.CPU_LB.load_balancing.process_load.ewma = {}),
        code: 'EPERM',
        step: /mkdir .*process_load\/ewma/,
      },
    ];
    for (const c of cases) {
      const { tree, registry } = makeTree();
      await rich(tree);
      const before = treeToYaml(tree);
      const doc = JSON.parse(JSON.stringify(dumpTree(tree))) as Record<string, any>;
      c.edit(doc);
      const plan = await planApply(tree, registry, JSON.parse(JSON.stringify(doc)));
      const check = await checkPlan(tree, registry, plan);
      let executed: unknown = null;
      try {
        await executePlan(tree, plan);
      } catch (err) {
        executed = err;
      }
      assert.ok(isSlicedError(executed), `${c.what}: executing the plan fails`);
      assert.equal(executed.code, c.code, `${c.what}: ${executed.message}`);
      assert.equal(check.problems[0]?.code, executed.code, `${c.what}: ${JSON.stringify(check.problems)} vs ${executed.message}`);
      assert.match(describeProblems(plan, check.problems), c.step, c.what);
      const failedStep = /^step (\d+) of/.exec(executed.message)![1];
      assert.equal(String(check.problems[0]!.step), failedStep, `${c.what}: the same step (${executed.message})`);
      assert.equal(treeToYaml(tree), before, `${c.what}: unchanged`);
    }
  });

  test('random documents: the check finds a problem exactly when executing the plan fails (300 documents)', async () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const pick = <T>(list: readonly T[]): T => list[rnd(list.length)]!;
    const values = [
      '1',
      '-1',
      '0',
      '100',
      'x',
      '0.5',
      '2',
      'none',
      'node_a',
      '3600001',
      '-> /probes/cpu/node_load',
      '-> /probes/cpu/process_load',
      '-> /probes/fake_mem/memory',
      '-> /probes/nope/x',
    ];
    const names = [
      'threshold',
      'ewma',
      'rate',
      'hysteresis',
      'counter',
      'placer',
      'cpu',
      'l',
      'probe_period',
      'alpha',
      'high',
      'low',
      'answer',
      'handle_all',
      'node_load',
      'process_set',
      'fake_mem',
    ];
    let agreed = 0;
    let failures = 0;
    for (let round = 0; round < 300; round++) {
      const { tree, registry } = makeTree();
      await rich(tree);
      const doc = JSON.parse(JSON.stringify(dumpTree(tree))) as Record<string, any>;
      // A few random edits anywhere in the document: delete, set a value or a link, add a directory.
      for (let e = 0; e < 1 + rnd(3); e++) {
        let node: Record<string, any> = doc;
        for (let depth = 0; depth < 6; depth++) {
          const dirs = Object.entries(node).filter(([, v]) => v !== null && typeof v === 'object' && !Array.isArray(v));
          if (dirs.length === 0 || rnd(3) === 0) break;
          node = pick(dirs)[1];
        }
        const action = rnd(3);
        const keys = Object.keys(node);
        if (action === 0 && keys.length > 0) delete node[pick(keys)];
        else if (action === 1) node[pick(names)] = pick(values);
        else node[pick(names)] = {};
      }
      let plan: PlanStep[];
      try {
        plan = await planApply(tree, registry, doc);
      } catch {
        continue; // refused while planning: nothing to compare
      }
      const check = await checkPlan(tree, registry, plan);
      let failure: Error | null = null;
      try {
        await executePlan(tree, plan);
      } catch (err) {
        failure = err as Error;
      }
      assertSound(tree, `round ${round}`);
      if (failure && check.problems.length === 0) {
        // The one thing the check cannot see: hysteresis low above high.
        assert.match(
          failure.message,
          /must not be above high/,
          `round ${round}: the check missed: ${failure.message}\n${JSON.stringify(doc)}`,
        );
        continue;
      }
      assert.equal(
        check.problems.length > 0,
        failure !== null,
        `round ${round}: check ${JSON.stringify(check.problems)}, executed ${failure?.message ?? 'fine'}\n${JSON.stringify(doc)}`,
      );
      if (failure) {
        failures++;
        // The executor retries a refused write after the others of its directory, so it may report a later problem first.
        const step = Number(/^step (\d+) of/.exec(failure.message)![1]);
        assert.ok(
          check.problems.some((p) => p.step === step),
          `round ${round}: ${failure.message} vs ${JSON.stringify(check.problems)}`,
        );
      }
      agreed++;
    }
    // Both sides exercised: plans that apply and plans that fail.
    assert.ok(agreed - failures >= 20 && failures >= 50, `enough documents compared: ${agreed} agreed, ${failures} of them failing`);
  });
});

describe('the control loop', () => {
  async function withLoop(tree: ConfigTree): Promise<void> {
    await tree.mkdir('/probes/cpu');
    await tree.mkdir('/schedulers/cpu');
    await tree.mkdir('/schedulers/cpu/counter');
    tree.symlink('/probes/cpu/node_load', '/schedulers/cpu/counter/node_load/l');
  }

  test('a plan that removes /schedulers/cpu, or starves its policy, needs confirming; rewiring it does not', async () => {
    const { tree, registry } = makeTree();
    await withLoop(tree);
    const confirmOf = async (edit: (d: Record<string, any>) => void): Promise<string[]> => {
      const doc = dumpTree(tree) as Record<string, any>;
      edit(doc);
      return (await checkPlan(tree, registry, await planApply(tree, registry, doc))).confirm;
    };
    assert.match((await confirmOf((d) => delete d.schedulers.cpu)).join(), /removes \/schedulers\/cpu, the daemon's own CPU control loop/);
    assert.match((await confirmOf((d) => delete d.schedulers.cpu.counter.node_load.l)).join(), /stops the daemon's own CPU control loop/);
    assert.deepEqual(await confirmOf((d) => (d.schedulers.cpu.counter.node_load = { ewma: { l: '-> /probes/cpu/node_load' } })), []);
    assert.deepEqual(await confirmOf((d) => (d.schedulers.other = {})), []);
  });

  describe('through the service', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'sliced-plan-check-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('apply refuses it without force (nothing changed), a dry run warns, force applies it', async () => {
      const store = await EmbeddedStore.open(join(dir, 'loop'));
      const { tree, registry } = makeTree();
      const service = new TreeService(tree, registry, { local: store }, silentLog);
      await service.restore(
        () => 'probes:\n  cpu: {}\nschedulers:\n  cpu:\n    counter:\n      node_load:\n        l: -> /probes/cpu/node_load\n',
      );
      const before = treeToYaml(tree);
      const dry = await service.apply(ADMIN, 'probes:\n  cpu: {}\n', true);
      assert.deepEqual(dry.problems, []);
      assert.match(dry.warnings.join(), /removes \/schedulers\/cpu/);
      await assert.rejects(
        service.apply(ADMIN, 'probes:\n  cpu: {}\n', false),
        refusal(
          'EBUSY',
          /removes \/schedulers\/cpu, the daemon's own CPU control loop.*nothing was changed \(confirm with slicectl apply --force/,
        ),
      );
      assert.equal(treeToYaml(tree), before);
      const forced = await service.apply(ADMIN, 'probes:\n  cpu: {}\n', false, { force: true });
      assert.match(forced.warnings.join(), /removes \/schedulers\/cpu/);
      assert.equal(tree.exists('/schedulers/cpu'), false);
      // A plan with problems is refused before its first step, naming every problem.
      await assert.rejects(
        service.apply(ADMIN, 'probes:\n  cpu:\n    probe_period: x\nschedulers:\n  "a b": {}\n', false),
        refusal(
          'EINVAL',
          /^step 1 of 2 \(mkdir \/schedulers\/a b\) failed: scheduler name .*; step 2 of 2 \(write \/probes\/cpu\/probe_period = x\) failed: .*; nothing was changed$/,
        ),
      );
      tree.destroyAll();
      await store.close();
    });
  });
});
