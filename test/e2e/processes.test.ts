/**
 * Processes in slices on the real kernel: exec as the slice's user inside every hierarchy,
 * attach, deletion that stops everything (real-time policies reset first, SIGKILL after the
 * grace), and a slice's own user unable to change any allocation.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, SLICECTL } from '../helpers/daemon.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import type { SliceView } from '../../src/wire/slices.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/processes: ${skip}\n`);

async function waitFor<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs * SLOW;
  while (Date.now() < deadline) {
    const value = probe();
    if (value) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('processes in slices', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let scratch: string;
  let groups: KernelGroups;
  const procsOf = (slice: string): number[] => groups.procs(`${slice}.slice`);

  before(async () => {
    daemon = await TestDaemon.start();
    groups = await KernelGroups.of(daemon);
    scratch = mkdtempSync(join(tmpdir(), 'sliced-proc-'));
    chmodSync(scratch, 0o777);
    for (const name of ['pa', 'pb']) assert.equal((await daemon.cli(['slice', 'create', name])).code, 0);
  });

  after(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await daemon.destroy();
  });

  test('exec runs as the slice user in every hierarchy, passes stdio and returns the exit status', async () => {
    const view = await daemon.cliJson<SliceView>(['slice', 'show', 'pa']);
    const result = await daemon.cli(
      [
        'exec',
        '--slice',
        'pa',
        '--env',
        'GREETING=hi',
        '--',
        'sh',
        '-c',
        'id -u; cat /proc/self/cgroup; echo "$GREETING $SLICE $USER"; cat; exit 7',
      ],
      {
        input: 'from stdin\n',
      },
    );
    assert.equal(result.code, 7, result.stderr);
    const lines = result.stdout.split('\n');
    assert.equal(Number(lines[0]), view.uid);
    // Every hierarchy the daemon uses (v1: cpu, cpuacct, memory, freezer, pids ...; v2: the one).
    const cgroupText = lines.filter((l) => /^\d+:[^:]*:\//.test(l)).join('\n');
    assert.deepEqual(groups.misplaced(cgroupText, view.cgroup), [], `exec'd process not in ${view.cgroup} everywhere:\n${cgroupText}`);
    assert.ok(lines.includes('hi pa sl-pa'));
    assert.ok(lines.includes('from stdin'));

    const killed = await daemon.cli(['exec', '--slice', 'pa', '--', 'sh', '-c', 'kill -9 $$']);
    assert.equal(killed.code, 137);
    const missing = await daemon.cli(['exec', '--slice', 'nope', '--', 'true']);
    assert.equal(missing.code, 3);
  });

  test('slices persist with no processes; attach moves a running process in', async () => {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const attached = await daemon.cli(['attach', 'pb', String(sleeper.pid)]);
      assert.equal(attached.code, 0, attached.stderr);
      assert.ok(procsOf('pb').includes(sleeper.pid!));
      assert.deepEqual(groups.missingFrom('pb.slice', sleeper.pid!), [], 'cgroup.procs of every hierarchy holds it');
      const cgroupLines = readFileSync(`/proc/${sleeper.pid}/cgroup`, 'utf8');
      assert.deepEqual(groups.misplaced(cgroupLines, 'pb.slice'), [], cgroupLines);
    } finally {
      sleeper.kill('SIGKILL');
    }
    await waitFor('the slice to empty', () => procsOf('pb').length === 0);
    const list = await daemon.cliJson<SliceView[]>(['slice', 'list']);
    assert.ok(
      list.some((s) => s.name === 'pb'),
      'an empty slice still exists',
    );
  });

  test('a slice user cannot change allocations and reads only its own view', async () => {
    const pa = await daemon.cliJson<SliceView>(['slice', 'show', 'pa']);
    const pb = await daemon.cliJson<SliceView>(['slice', 'show', 'pb']);
    const asPa = { uid: pa.uid!, gid: pa.uid! };
    // The gid of a user created with --user-group is its own group; look it up to be exact.
    asPa.gid = Number(spawnSync('id', ['-g', 'sl-pa'], { encoding: 'utf8' }).stdout.trim());

    const change = await daemon.cli(['slice', 'set', 'pa', '--cpu-shares', '5000'], asPa);
    assert.equal(change.code, 4, change.stderr);
    assert.match(change.stderr, /permission denied/);
    const create = await daemon.cli(['slice', 'create', 'sneaky'], asPa);
    assert.equal(create.code, 4);

    const weightFile = groups.cpuWeightFile('pa.slice');
    const rawBefore = readFileSync(weightFile, 'utf8').trim();
    const wanted = rawBefore === '10000' ? '9999' : '10000'; // valid in cpu.shares and cpu.weight
    const write = spawnSync('sh', ['-c', `echo ${wanted} > ${weightFile}`], { uid: asPa.uid, gid: asPa.gid, encoding: 'utf8' });
    assert.notEqual(write.status, 0, 'the kernel refuses the slice user writing its own cgroup files');
    assert.match(write.stderr, /Permission denied/);
    assert.notEqual(
      readFileSync(weightFile, 'utf8').trim(),
      wanted,
      `the slice user's value did not reach ${weightFile} (${rawBefore} before)`,
    );

    const own = await daemon.cli(['--json', 'slice', 'show', 'pa'], asPa);
    assert.equal(own.code, 0, own.stderr);
    assert.equal((JSON.parse(own.stdout) as SliceView).name, 'pa');
    const other = await daemon.cli(['slice', 'show', 'pb'], asPa);
    assert.equal(other.code, 4, `reading slice pb as ${pa.user} must fail; got ${other.stdout}`);
    const status = await daemon.cli(['--json', 'status', '--once'], asPa);
    assert.equal(status.code, 0, status.stderr);
    const names = (JSON.parse(status.stdout) as { slices: SliceView[] }).slices.map((s) => s.name);
    assert.deepEqual(names, ['pa']);
    assert.ok(pb.uid !== pa.uid);

    const after = await daemon.cliJson<SliceView>(['slice', 'show', 'pa']);
    assert.equal(after.cpu.shares, 100, 'allocation unchanged');
  });

  test('deleting a slice resets real-time policies first, then TERM, then KILL after the grace', async (t) => {
    assert.equal((await daemon.cli(['slice', 'create', 'rt'])).code, 0);
    // Test-only: with RT group scheduling (v1), give the groups real-time runtime so a
    // SCHED_FIFO task can exist in the slice (sliced itself leaves it at 0, which already
    // keeps RT tasks out); without it (cgroup v2) nothing limits RT tasks per group.
    t.diagnostic(`real-time tasks in the slice: ${groups.allowRealtime('rt.slice')}`);
    const policyFile = join(scratch, 'policy');
    // Reports its own policy when SIGTERM arrives, then keeps running: only SIGKILL ends it.
    const script = `trap 'chrt -p $$ > ${policyFile}' TERM; while :; do sleep 0.05; done`;
    const holder = spawn(process.execPath, [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', 'rt', '--', 'sh', '-c', script], {
      stdio: 'ignore',
    });
    const shellPid = await waitFor('the shell in the slice', () =>
      procsOf('rt').find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sh')),
    );
    const chrt = spawnSync('chrt', ['-f', '-p', '10', String(shellPid)], { encoding: 'utf8' });
    assert.equal(chrt.status, 0, chrt.stderr);
    assert.match(spawnSync('chrt', ['-p', String(shellPid)], { encoding: 'utf8' }).stdout, /SCHED_FIFO/);

    const started = Date.now();
    const deleted = await daemon.cli(['slice', 'delete', 'rt']);
    const took = Date.now() - started;
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(readFileSync(policyFile, 'utf8'), /SCHED_OTHER/, 'policy was reset before SIGTERM was delivered');
    assert.ok(took >= 900, `the grace period (1 s) was honoured before SIGKILL; took ${took} ms`);
    assert.equal(
      existsSync(`/proc/${shellPid}`) && !readFileSync(`/proc/${shellPid}/stat`, 'utf8').includes(') Z'),
      false,
      'the process is gone',
    );
    assert.deepEqual(groups.existingDirs('rt.slice'), [], 'the group is gone from every hierarchy');
    assert.match(daemon.log, /reset real-time threads to SCHED_OTHER/);
    // The root group's runtime goes away with the group when the daemon is cleaned up.
    await new Promise((r) => (holder.exitCode !== null ? r(null) : holder.once('exit', r)));
  });
});
