/**
 * sliced in a delegated cgroup v2 group, as systemd's Delegate=yes hands one to a service
 * (packaging/sliced.service): the daemon moves itself into `supervisor/`, enables the
 * controllers in the group and puts its root group beside the leaf; slices work below; a
 * restart happens in the leaf; `sliced --cleanup`, run from elsewhere, leaves the group as it
 * was. The group stands for the service's: /sys/fs/cgroup/sliced-test-svc-<pid>.
 *
 * Needs a pure cgroup v2 host: this machine binds cpu to cgroup v1, so here the tests skip;
 * they run in the VM (scripts/v2-vm -- node --import tsx --test test/e2e/delegated-group.test.ts).
 */
import { describe, test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLICED, TestDaemon } from '../helpers/daemon.js';
import { Burners, CpuUsageReader } from '../helpers/cpu-load.js';
import { skipWithoutKernel } from '../helpers/env.js';

const MOUNT = '/sys/fs/cgroup';
const IN_VM = process.env.SLICED_IN_V2_VM === '1';

function v2Reason(): string | null {
  let controllers = '';
  try {
    controllers = readFileSync(join(MOUNT, 'cgroup.controllers'), 'utf8');
  } catch {
    return `needs a pure cgroup v2 host (no ${MOUNT}/cgroup.controllers: this machine mounts cgroup v1 there); runs in the VM: scripts/v2-vm -- node --import tsx --test test/e2e/delegated-group.test.ts`;
  }
  const wanted = ['cpu', 'memory'].filter((c) => !controllers.split(/\s+/).includes(c));
  return wanted.length === 0
    ? null
    : `needs the ${wanted.join(' and ')} controller in cgroup v2 (${MOUNT}/cgroup.controllers lists: ${controllers.trim() || 'none'})`;
}

const read = (path: string): string => readFileSync(path, 'utf8').trim();
const words = (path: string): string[] => read(path).split(/\s+/).filter(Boolean);
const ids = (path: string): number[] => words(path).map(Number);
const childGroups = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();

/** Groups made by these tests, removed at the end (also on failure). */
const made: string[] = [];
/** Processes started by these tests, killed at the end. */
const started: number[] = [];

function delegatedGroup(name: string): string {
  const dir = join(MOUNT, `sliced-test-svc-${process.pid}${name}`);
  mkdirSync(dir);
  made.push(dir);
  return dir;
}

async function removeGroups(): Promise<void> {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  for (const dir of made.splice(0).reverse()) {
    for (let i = 0; i < 100 && existsSync(dir); i++) {
      try {
        // Children first (what a failed test left), deepest first.
        const walk = (at: string): string[] => childGroups(at).flatMap((c) => [...walk(join(at, c)), join(at, c)]);
        for (const child of walk(dir)) {
          for (const pid of ids(join(child, 'cgroup.procs'))) process.kill(pid, 'SIGKILL');
          rmdirSync(child);
        }
        rmdirSync(dir);
      } catch {
        await sleep(50);
      }
    }
  }
}

after(removeGroups);

async function waitFor(what: string, check: () => boolean, ms = IN_VM ? 30_000 : 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function setup(t: TestContext): boolean {
  return !skipWithoutKernel(t, v2Reason());
}

describe('sliced in a delegated cgroup v2 group (systemd Delegate=yes layout)', () => {
  test("a group holding processes sliced did not start (the shell that runs it, that shell's sleep): the start is refused naming them, and nothing changes", async (t) => {
    if (!setup(t)) return;
    const group = delegatedGroup('-busy');
    const dir = mkdtempSync(join(tmpdir(), 'sliced-sb2-'));
    try {
      const args = [
        '--state-dir',
        join(dir, 'state'),
        '--run-dir',
        join(dir, 'run'),
        '--cgroup-root',
        `sliced-sb2${process.pid}`,
        '--no-net',
      ];
      // The shell joins the group, starts a sleep there and runs sliced without exec: the
      // group then holds sh, sleep and sliced, as a service started through a wrapper would.
      const script = 'echo $$ > "$0/cgroup.procs" || exit 9; sleep 600 & echo $!; "$@"; exit $?';
      const shell = spawn('/bin/sh', ['-c', script, group, process.execPath, SLICED, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      started.push(shell.pid!);
      let stdout = '';
      let stderr = '';
      shell.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      shell.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => shell.once('exit', resolve));
      const sleepPid = Number(stdout.split('\n')[0]);
      started.push(sleepPid);
      assert.equal(code, 1, `sliced refuses to start (exit 1): ${stderr}`);
      assert.match(stderr, new RegExp(`cgroup ${group} holds processes sliced did not start: `));
      assert.match(stderr, new RegExp(`\\b${shell.pid} \\(sh\\)`), stderr);
      assert.match(stderr, new RegExp(`\\b${sleepPid} \\(sleep\\)`), stderr);
      assert.deepEqual(childGroups(group), [], 'no supervisor leaf, no root group');
      assert.equal(read(join(group, 'cgroup.subtree_control')), '', 'no controllers enabled');
      assert.deepEqual(ids(join(group, 'cgroup.procs')), [sleepPid], 'the sleep was left where it was');
      assert.equal(existsSync(join(dir, 'state')), false, 'no state directory');
      assert.equal(existsSync(join(dir, 'run', 'cgroup.json')), false, 'no delegation record');
    } finally {
      await removeGroups();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('sliced alone in the group: supervisor/ leaf, controllers, slices with cpu.weight, cpu.max and memory.max; restart in the leaf; --cleanup leaves the group as it was', async (t) => {
    if (!setup(t)) return;
    const group = delegatedGroup('');
    const leaf = join(group, 'supervisor');
    const before = { subtree: read(join(group, 'cgroup.subtree_control')), controllers: words(join(group, 'cgroup.controllers')) };
    let daemon: TestDaemon | null = null;
    const burners: Burners[] = [];
    try {
      const startedAt = performance.now();
      daemon = await TestDaemon.start(['--cpu-control', 'static'], { cgroup: group });
      t.diagnostic(`start in the delegated group: ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);
      const pid = daemon.pid!;
      const root = join(group, daemon.cgroupRoot);

      // The layout: the daemon and every thread of it in the leaf; the group holds nobody.
      assert.equal(read(`/proc/${pid}/cgroup`), `0::${group.slice(MOUNT.length)}/supervisor`);
      assert.deepEqual(ids(join(group, 'cgroup.procs')), [], 'no process in the managed group');
      assert.deepEqual(ids(join(group, 'cgroup.threads')), [], 'no thread in the managed group');
      const tids = readdirSync(`/proc/${pid}/task`).map(Number);
      const leafThreads = new Set(ids(join(leaf, 'cgroup.threads')));
      assert.ok(tids.length > 1 && tids.every((tid) => leafThreads.has(tid)), `all ${tids.length} threads of the daemon are in the leaf`);
      const wanted = ['cpu', 'io', 'memory', 'pids'].filter((c) => before.controllers.includes(c));
      assert.deepEqual(words(join(group, 'cgroup.subtree_control')), wanted, 'the controllers sliced uses, enabled in the group');
      assert.deepEqual(childGroups(group), [daemon.cgroupRoot, 'supervisor'].sort(), 'the root group beside the leaf');
      const record = JSON.parse(readFileSync(join(daemon.runDir, 'cgroup.json'), 'utf8')) as {
        managed: string;
        supervisorMade: boolean;
        controllersAdded: string[];
      };
      assert.equal(record.managed, group);
      assert.equal(record.supervisorMade, true);
      assert.deepEqual([...record.controllersAdded].sort(), wanted.filter((c) => !before.subtree.split(/\s+/).includes(c)).sort());

      // Slices below work: weights (static mode: cpu.weight = shares), a CPU cap, a memory limit.
      for (const [name, extra] of [
        ['sb2w', ['--cpu-shares', '300']],
        ['sb2v', ['--cpu-shares', '100']],
        ['sb2c', ['--cpu-limit', '300m']],
        ['sb2m', ['--memory', '64M']],
      ] as const) {
        const created = await daemon.cli(['slice', 'create', name, ...extra]);
        assert.equal(created.code, 0, created.stderr);
      }
      // The control loop writes the weights once a period.
      await waitFor(
        'cpu.weight 300 and 100',
        () => read(join(root, 'sb2w.slice', 'cpu.weight')) === '300' && read(join(root, 'sb2v.slice', 'cpu.weight')) === '100',
      );
      assert.equal(read(join(root, 'sb2c.slice', 'cpu.max')), '30000 100000');
      assert.equal(read(join(root, 'sb2m.slice', 'memory.max')), String(64 * 1024 * 1024));

      const reader = new CpuUsageReader(daemon.api);
      await reader.resolve(['sb2w', 'sb2v', 'sb2c']);
      const cpus = availableParallelism();
      const window = IN_VM ? 6000 : 3000;
      const measure = async (): Promise<Map<string, number>> => {
        await sleep(1000); // let the burners settle
        const a = reader.sample();
        await sleep(window);
        const b = reader.sample();
        return new Map([...a.u].map(([s, u]) => [s, (b.u.get(s)! - u) / ((b.t - a.t) * 1e6)]));
      };
      const weights = new Burners(daemon.api);
      burners.push(weights);
      // Two burners per CPU in each slice, so that every CPU sees both slices.
      await weights.start('sb2w', 2 * cpus);
      await weights.start('sb2v', 2 * cpus);
      const shared = await measure();
      await weights.stopAll();
      const ratio = shared.get('sb2w')! / shared.get('sb2v')!;
      t.diagnostic(
        `cpu.weight 300:100 with ${2 * cpus} burners each: ${shared.get('sb2w')!.toFixed(2)} and ${shared.get('sb2v')!.toFixed(2)} CPUs, ratio ${ratio.toFixed(2)}`,
      );
      assert.ok(ratio > 2.4 && ratio < 3.6, `cpu.weight 300:100 gives about 3:1 (measured ${ratio.toFixed(2)})`);

      const capped = new Burners(daemon.api);
      burners.push(capped);
      await capped.start('sb2c', cpus);
      const cap = (await measure()).get('sb2c')!;
      t.diagnostic(`cpu.max 300m with ${cpus} burners: ${cap.toFixed(3)} CPUs`);
      assert.ok(Math.abs(cap - 0.3) < 0.05, `cpu.max 30000/100000 holds the slice at 0.3 CPU (measured ${cap.toFixed(3)})`);

      const hog = await daemon.cli(['exec', '--slice', 'sb2m', '--', 'python3', '-c', "x = b'x' * (256 * 1024 * 1024)"]);
      assert.notEqual(hog.code, 0, 'the 256M allocation does not survive a 64M limit');
      const events = new Map(
        read(join(root, 'sb2m.slice', 'memory.events'))
          .split('\n')
          .map((l) => l.split(' ') as [string, string]),
      );
      assert.ok(Number(events.get('oom_kill')) >= 1, `memory.max: OOM kill counted (${JSON.stringify([...events])})`);

      // Stop: the slices keep running, still capped.
      await daemon.stop();
      assert.ok(ids(join(root, 'sb2c.slice', 'cgroup.procs')).length >= cpus, 'the capped burners still run');
      assert.equal(read(join(root, 'sb2c.slice', 'cpu.max')), '30000 100000');
      assert.deepEqual(ids(join(leaf, 'cgroup.procs')), [], 'nothing of the daemon is left in the leaf');
      // A new process can no longer be put into the group itself (it has controllers on):
      // what systemd < 254 tries at a restart (see README, sliced under systemd).
      const newcomer = spawn('sleep', ['600'], { stdio: 'ignore' });
      started.push(newcomer.pid!);
      assert.throws(
        () => writeFileSync(join(group, 'cgroup.procs'), String(newcomer.pid)),
        (err: NodeJS.ErrnoException) => err.code === 'EBUSY',
      );
      newcomer.kill('SIGKILL');

      // Restart in the leaf (systemd >= 254 with DelegateSubgroup=supervisor does so): the
      // daemon manages the leaf's parent and adopts the running slices.
      daemon.cgroup = leaf;
      const restartedAt = performance.now();
      await daemon.launch();
      t.diagnostic(`restart in the leaf: ${((performance.now() - restartedAt) / 1000).toFixed(1)} s`);
      assert.equal(read(`/proc/${daemon.pid}/cgroup`), `0::${group.slice(MOUNT.length)}/supervisor`);
      assert.deepEqual(childGroups(group), [daemon.cgroupRoot, 'supervisor'].sort());
      assert.deepEqual(ids(join(group, 'cgroup.procs')), []);
      const adopted = await daemon.cliJson<{ live?: { procs?: number } }>(['slice', 'show', 'sb2c']);
      assert.ok((adopted.live?.procs ?? 0) >= cpus, `the restarted daemon sees the slice's processes: ${JSON.stringify(adopted.live)}`);
      assert.equal(read(join(root, 'sb2c.slice', 'cpu.max')), '30000 100000');
      assert.deepEqual(
        JSON.parse(readFileSync(join(daemon.runDir, 'cgroup.json'), 'utf8')),
        record,
        'the record still says sliced made the leaf',
      );
      await capped.stopAll();

      // --cleanup, run from the test's own group (not the daemon's), finds the group through
      // the record and leaves it as it was: no child groups, the same controllers.
      await daemon.destroy();
      daemon = null;
      assert.deepEqual(childGroups(group), [], 'no leaf, no root group');
      assert.equal(read(join(group, 'cgroup.subtree_control')), before.subtree, 'the controllers as before');
      assert.deepEqual(ids(join(group, 'cgroup.procs')), []);
    } finally {
      for (const b of burners) await b.stopAll();
      await daemon?.destroy().catch(() => undefined);
      await removeGroups();
    }
  });
});
