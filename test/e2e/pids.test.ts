/**
 * Task limits per slice on the real kernel (issue 11, item 3). Before them a slice's
 * processes stayed in the root pids group and its user's RLIMIT_NPROC was above pid_max, so
 * a fork bomb in a slice without a memory limit could take every PID of the node. Every
 * slice now has a pids group whose pids.max defaults to 15% of the node's PID space.
 *
 * The fork bomb is bounded (a shell starting at most `default + 500` sleeps, exiting at the
 * first refused fork) so that the test can never exhaust the node itself, with or without
 * the fix: without it, the shell starts all of them and exits 0.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason, skipWith } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';

/** Whether the kernel has a pids controller at all, read from /proc (not from sliced). */
function pidsSkipReason(): string | null {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '));
  if (mounts.some((f) => f[2] === 'cgroup' && (f[3] ?? '').split(',').includes('pids'))) return null;
  const unified = mounts.find((f) => f[2] === 'cgroup2')?.[1];
  if (
    unified &&
    existsSync(join(unified, 'cgroup.controllers')) &&
    readFileSync(join(unified, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('pids')
  ) {
    return null;
  }
  return 'needs the pids cgroup controller (a cgroup v1 pids hierarchy, or pids in cgroup v2)';
}

const skip = kernelSkipReason() ?? pidsSkipReason();
if (skip) process.stderr.write(`SKIP e2e/pids: ${skip}\n`);

const sysctl = (name: string): number => Number(readFileSync(`/proc/sys/kernel/${name}`, 'utf8').trim());
/** Tasks on the node now ("running/total" in /proc/loadavg). */
const tasksOnNode = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[3]!.split('/')[1]);
const readTrim = (path: string): string => readFileSync(path, 'utf8').trim();

/**
 * A bounded fork bomb: start up to `count` sleeps (not holding slicectl's pipes, so exec
 * returns when the shell does). dash exits at the first fork it is refused ("Cannot fork").
 */
const bombScript = (count: number): string => `i=0; while [ $i -lt ${count} ]; do sleep 600 </dev/null >/dev/null 2>&1 & i=$((i+1)); done`;

interface PidsLive {
  current: number;
  max: number | null;
  peak: number | null;
  refused: number;
}
interface SliceJson {
  name: string;
  cgroup: string;
  pids: { max: number | 'default' | null; effectiveMax: number | null; unavailable?: string };
  live?: { procs: number; pids: PidsLive | null };
}
interface NodeJson {
  pids: { space: number; inUse: number; sliceDefault: number | null; defaultSetting: string; enforced: boolean; reason?: string };
}

describe('per-slice task limits (pids)', { skip: skip ?? false }, () => {
  const space = Math.min(sysctl('pid_max'), sysctl('threads-max'));
  /** The documented default: 15% of min(kernel.pid_max, kernel.threads-max), as systemd's DefaultTasksMax. */
  const expectedDefault = Math.floor((space * 15) / 100);
  let daemon: TestDaemon;
  let groups: KernelGroups;
  let metricsPort: number;
  let destroyed = false;

  before(async () => {
    metricsPort = await freePort();
    daemon = await TestDaemon.start(['--metrics-port', String(metricsPort)]);
    groups = await KernelGroups.of(daemon);
  });

  after(async () => {
    if (!destroyed) await daemon.destroy();
  });

  /** The node view; skips the test when sliced reports the limits as not enforced. */
  async function nodeOrSkip(t: TestContext): Promise<NodeJson | null> {
    const node = await daemon.api.get<NodeJson>('/v1/node');
    if (node.pids?.enforced === false) {
      skipWith(t, node.pids.reason ?? 'sliced reports task limits as not enforced');
      return null;
    }
    return node;
  }

  /** Directory of a group in the hierarchy holding the pids controller. */
  const pidsDir = (cgroup: string): string => groups.pidsDir(cgroup)!;

  test('a bounded fork bomb in a slice with no options stops at the default pids.max; the node keeps its PIDs; show, status and metrics report it; delete ends it', async (t) => {
    const node = await nodeOrSkip(t);
    if (!node) return;
    assert.equal((await daemon.cli(['slice', 'create', 'pcbomb'])).code, 0);
    try {
      const bound = expectedDefault + 500;
      const before = tasksOnNode();
      const started = Date.now();
      const bomb = await daemon.cli(['exec', '--slice', 'pcbomb', '--', 'sh', '-c', bombScript(bound)]);
      const seconds = (Date.now() - started) / 1000;
      const during = tasksOnNode();
      const view = await daemon.cliJson<SliceJson>(['slice', 'show', 'pcbomb']);
      const left = view.live!.procs;
      t.diagnostic(
        `pid space ${space}, default limit ${expectedDefault}; bomb bounded at ${bound} sleeps: exit ${bomb.code} after ${seconds.toFixed(1)} s, ` +
          `${left} sleeps left in the slice, pids.current ${view.live?.pids?.current}, peak ${view.live?.pids?.peak}, refused ${view.live?.pids?.refused}; ` +
          `node tasks ${before} before, ${during} during (free PIDs ${space - during})`,
      );
      assert.notEqual(
        bomb.code,
        0,
        `the bomb's shell must have been refused a fork (it started all ${bound} sleeps otherwise): ${bomb.stderr}`,
      );
      assert.equal(left, expectedDefault - 1, 'the shell was the last task the limit allowed; its sleeps are what is left');

      assert.deepEqual(view.pids, { max: 'default', effectiveMax: expectedDefault });
      assert.equal(readTrim(join(pidsDir(view.cgroup), 'pids.max')), String(expectedDefault), 'the kernel holds the limit');
      const live = view.live!.pids!;
      assert.equal(live.current, expectedDefault - 1);
      assert.equal(live.max, expectedDefault);
      assert.ok(live.refused >= 1, `refused forks counted: ${live.refused}`);
      if (live.peak !== null) assert.equal(live.peak, expectedDefault);
      // Other work on the machine comes and goes; the bomb itself added at most its limit.
      assert.ok(
        during - before <= expectedDefault + 1000,
        `the node keeps its PIDs: ${before} tasks before, ${during} during, ${space - during} of ${space} free`,
      );

      const shown = await daemon.cli(['slice', 'show', 'pcbomb']);
      assert.match(shown.stdout, new RegExp(`^Pids limit: +${expectedDefault} \\(default\\)$`, 'm'));
      assert.match(
        shown.stdout,
        new RegExp(`^Tasks: +${expectedDefault - 1} of ${expectedDefault}(, peak ${expectedDefault})?, \\d+ forks? refused$`, 'm'),
      );

      const status = await daemon.cliJson<{ node: NodeJson; slices: SliceJson[] }>(['status', '--once']);
      assert.equal(status.node.pids.space, space);
      assert.equal(status.node.pids.sliceDefault, expectedDefault);
      assert.equal(status.node.pids.defaultSetting, '15%');
      assert.equal(status.slices.find((s) => s.name === 'pcbomb')!.live!.pids!.current, expectedDefault - 1);
      const table = (await daemon.cli(['status', '--once'])).stdout;
      assert.match(table, new RegExp(`^pids: \\d+ of ${space} in use, slice default ${expectedDefault} \\(15%\\)$`, 'm'));
      const header = table.split('\n').find((line) => line.startsWith('SLICE'))!;
      assert.match(header, /PROCS +PIDS +PIDS-MAX$/);
      assert.match(table, new RegExp(`^pcbomb .* ${expectedDefault - 1} +${expectedDefault - 1} +${expectedDefault}$`, 'm'));

      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, new RegExp(`^sliced_slice_pids\\{slice="pcbomb",domain=""\\} ${expectedDefault - 1}$`, 'm'));
      assert.match(metrics, new RegExp(`^sliced_slice_pids_max\\{slice="pcbomb",domain=""\\} ${expectedDefault}$`, 'm'));
      assert.match(metrics, /^sliced_slice_pids_refused_total\{slice="pcbomb",domain=""\} [1-9]\d*$/m);
    } finally {
      const deleted = await daemon.cli(['slice', 'delete', 'pcbomb']);
      assert.equal(deleted.code, 0, deleted.stderr);
    }
    assert.equal(existsSync(pidsDir('pcbomb.slice')), false, 'the pids group is gone with the slice');
  });

  test('--pids-max sets a limit, "none" lifts it, "default" restores it; bad values are refused with what is allowed; exec joins the pids group', async (t) => {
    const node = await nodeOrSkip(t);
    if (!node) return;
    assert.equal((await daemon.cli(['slice', 'create', 'pclim', '--pids-max', '64'])).code, 0);
    try {
      const file = join(pidsDir('pclim.slice'), 'pids.max');
      assert.equal(readTrim(file), '64');
      assert.deepEqual((await daemon.cliJson<SliceJson>(['slice', 'show', 'pclim'])).pids, { max: 64, effectiveMax: 64 });
      const joined = await daemon.cli(['exec', '--slice', 'pclim', '--', 'cat', '/proc/self/cgroup']);
      assert.equal(joined.code, 0, joined.stderr);
      const placement = groups.placement(joined.stdout)[groups.backend === 'v1' ? 'pids' : 'unified'];
      assert.ok(placement?.endsWith(`/${daemon.cgroupRoot}/pclim.slice`), `exec'd process is in the slice's pids group: ${placement}`);
      assert.deepEqual(groups.misplaced(joined.stdout, 'pclim.slice'), [], 'and in its groups of every other hierarchy');
      // exec and vsys scripts join the groups whose cgroup.procs files the daemon lists (one list for both).
      const plan = await daemon.api.post<{ procsFiles: string[] }>('/v1/slices/pclim/exec-plan', { pid: process.pid });
      assert.ok(plan.procsFiles.includes(join(pidsDir('pclim.slice'), 'cgroup.procs')), plan.procsFiles.join(' '));

      assert.equal((await daemon.cli(['slice', 'set', 'pclim', '--pids-max', 'none'])).code, 0);
      assert.equal(readTrim(file), 'max');
      assert.match((await daemon.cli(['slice', 'show', 'pclim'])).stdout, /^Pids limit: +none$/m);
      assert.equal((await daemon.cli(['slice', 'set', 'pclim', '--pids-max', 'default'])).code, 0);
      assert.equal(readTrim(file), String(expectedDefault));

      for (const bad of ['0', '-5', 'lots', '1.5', '4194305']) {
        const refused = await daemon.cli(['slice', 'set', 'pclim', '--pids-max', bad]);
        assert.equal(refused.code, 1, `${bad}: ${refused.stderr}`);
        assert.equal(
          refused.stderr.trim(),
          `slicectl: slice: pids.max ${JSON.stringify(bad)} must be a whole number of tasks from 1 to 4194304, "none" or "default" (the node's default share of its PIDs)`,
        );
      }
      const tooMany = await daemon.cli(['slice', 'set', 'pclim', '--pids-max', String(space + 1)]);
      assert.equal(tooMany.code, 1);
      assert.match(
        tooMany.stderr,
        new RegExp(
          `slice pclim: pids\\.max ${space + 1} is above the ${space} tasks this node can hold .*give at most ${space}, or "none"`,
        ),
      );
      assert.equal(readTrim(file), String(expectedDefault), 'a refused value changes nothing');
      const domainDefault = await daemon.cli(['domain', 'create', 'pcbad', '--pids-max', 'default']);
      assert.equal(domainDefault.code, 1);
      assert.match(domainDefault.stderr, /domain: pids\.max "default" must be a whole number of tasks from 1 to 4194304, "none"$/m);
    } finally {
      assert.equal((await daemon.cli(['slice', 'delete', 'pclim'])).code, 0);
    }
  });

  test("a domain's pids.max bounds its members together; the members keep their own", async (t) => {
    const node = await nodeOrSkip(t);
    if (!node) return;
    assert.equal((await daemon.cli(['domain', 'create', 'pcdom', '--pids-max', '20'])).code, 0);
    try {
      assert.equal((await daemon.cli(['slice', 'create', 'pcin', '--domain', 'pcdom', '--pids-max', '100'])).code, 0);
      assert.equal(readTrim(join(pidsDir('pcdom.domain'), 'pids.max')), '20');
      assert.equal(readTrim(join(pidsDir('pcdom.domain/pcin.slice'), 'pids.max')), '100');
      const bomb = await daemon.cli(['exec', '--slice', 'pcin', '--', 'sh', '-c', bombScript(60)]);
      assert.notEqual(bomb.code, 0, "stopped by the domain's limit");
      const slice = await daemon.cliJson<SliceJson>(['slice', 'show', 'pcin']);
      assert.equal(slice.live!.pids!.current, 19, 'the domain allowed 20 tasks: the shell and 19 sleeps');
      assert.equal(slice.live!.pids!.max, 100);
      const domain = await daemon.cliJson<{ pids: SliceJson['pids']; live: { pids: PidsLive } }>(['domain', 'show', 'pcdom']);
      assert.deepEqual(domain.pids, { max: 20, effectiveMax: 20 });
      assert.equal(domain.live.pids.current, 19);
      assert.match((await daemon.cli(['domain', 'show', 'pcdom'])).stdout, /^Pids limit: +20$/m);
    } finally {
      await daemon.cli(['slice', 'delete', 'pcin']);
      assert.equal((await daemon.cli(['domain', 'delete', 'pcdom'])).code, 0);
    }
  });

  test('after an upgrade a slice stored without pids gets the default, and its running processes join its new pids group', async (t) => {
    const node = await nodeOrSkip(t);
    if (!node) return;
    if (groups.backend !== 'v1') {
      skipWith(
        t,
        'simulates a cgroup v1 node whose pids hierarchy sliced did not use yet; on v2 pids is a controller of the one hierarchy, enabled with the others (tested in test/kernel/cgroup-v2-fixture.test.ts)',
      );
      return;
    }
    assert.equal((await daemon.cli(['slice', 'create', 'pcold'])).code, 0);
    try {
      const started = await daemon.cli(['exec', '--slice', 'pcold', '--', 'sh', '-c', 'sleep 600 </dev/null >/dev/null 2>&1 & echo $!']);
      const sleeper = Number(started.stdout.trim());
      assert.ok(sleeper > 0, started.stderr);
      await daemon.stop();
      // What an older version left: the spec without pids, the slice's process in the root pids group, no pids groups.
      const store = await EmbeddedStore.open(daemon.stateDir);
      const spec = JSON.parse((await store.get('/slices/pcold'))!) as Record<string, unknown>;
      delete spec.pids;
      await store.txn([{ type: 'put', key: '/slices/pcold', value: JSON.stringify(spec) }]);
      await store.close();
      const root = groups.pidsDir()!;
      writeFileSync(join(root, '..', 'cgroup.procs'), String(sleeper)); // the test's own pids group, where it started
      rmdirSync(join(root, 'pcold.slice'));
      rmdirSync(root);

      await daemon.launch();
      const view = await daemon.cliJson<SliceJson>(['slice', 'show', 'pcold']);
      assert.deepEqual(view.pids, { max: 'default', effectiveMax: expectedDefault });
      assert.equal(readTrim(join(root, 'pcold.slice', 'pids.max')), String(expectedDefault));
      const line = readTrim(`/proc/${sleeper}/cgroup`)
        .split('\n')
        .find((l) => /^\d+:pids:/.test(l));
      assert.ok(line?.endsWith(`/${daemon.cgroupRoot}/pcold.slice`), `the running process joined the new pids group: ${line}`);
      assert.equal(view.live!.pids!.current, 1);
    } finally {
      assert.equal((await daemon.cli(['slice', 'delete', 'pcold'])).code, 0);
    }
  });

  test('sliced --cleanup removes the pids groups with the others', async (t) => {
    const node = await nodeOrSkip(t);
    if (!node) return;
    assert.equal((await daemon.cli(['slice', 'create', 'pcclean'])).code, 0);
    const root = groups.pidsDir()!;
    assert.ok(existsSync(join(root, 'pcclean.slice')));
    destroyed = true;
    await daemon.destroy(); // stop, then sliced --cleanup
    assert.equal(existsSync(root), false, `${root} removed`);
    assert.deepEqual(groups.existingDirs(), [], 'and the root group of every other hierarchy');
  });
});
