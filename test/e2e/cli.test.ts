/**
 * slicectl against a real daemon: slices and domains through their whole life, the kernel
 * objects they map to, and bad input that must give one clear line, a non-zero exit status
 * and no change at all.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, run, SLICECTL } from '../helpers/daemon.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { freePid } from '../helpers/procs.js';
import type { SliceView, DomainView } from '../../src/wire/slices.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/cli: ${skip}\n`);

describe('slicectl with a real daemon', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let groups: KernelGroups;

  before(async () => {
    daemon = await TestDaemon.start();
    groups = await KernelGroups.of(daemon);
  });

  after(async () => {
    await daemon.destroy();
    assert.deepEqual(groups.existingDirs(), [], 'cleanup removed the root group in every hierarchy');
  });

  test('create, set, show, list and delete a slice; groups and user follow', async () => {
    const created = await daemon.cliJson<SliceView>([
      'slice',
      'create',
      'web',
      '--cpu-reservation',
      '500m',
      '--cpu-limit',
      '1.5',
      '--cpu-shares',
      '300',
      '--memory',
      '256M',
    ]);
    assert.equal(created.user, 'sl-web');
    assert.equal(created.cpu.reservation, 500);
    assert.equal(created.cpu.limit, 1500);
    assert.equal(created.memory.limit, 256 * 1024 * 1024);
    assert.equal(groups.cpuLimit('web.slice'), 1500, 'the kernel caps the group at 1.5 CPUs');
    assert.equal(groups.memoryLimit('web.slice'), 256 * 1024 * 1024);
    const passwd = readFileSync('/etc/passwd', 'utf8');
    assert.match(passwd, /^sl-web:/m);

    const updated = await daemon.cliJson<SliceView>(['slice', 'set', 'web', '--cpu-limit', 'none', '--memory', '1G']);
    assert.equal(updated.cpu.limit, null);
    assert.equal(groups.cpuLimit('web.slice'), null, 'no cap left in the kernel');
    assert.equal(groups.memoryLimit('web.slice'), 1024 ** 3);

    const shown = await daemon.cli(['slice', 'show', 'web']);
    assert.equal(shown.code, 0);
    assert.match(shown.stdout, /CPU reservation:\s+500m/);
    assert.match(shown.stdout, /Memory limit:\s+1G/);

    const list = await daemon.cli(['slice', 'list']);
    assert.match(list.stdout, /^SLICE\s+USER/m);
    assert.match(list.stdout, /^web\s+sl-web/m);

    const deleted = await daemon.cli(['slice', 'delete', 'web']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(groups.existingDirs('web.slice'), [], 'the group is gone from every hierarchy');
    assert.doesNotMatch(readFileSync('/etc/passwd', 'utf8'), /^sl-web:/m);
  });

  test('a domain caps its members and members move at run time with their processes', async () => {
    assert.equal((await daemon.cli(['domain', 'create', 'batch', '--cpu-reservation', '200m', '--cpu-limit', '600m'])).code, 0);
    assert.equal((await daemon.cli(['slice', 'create', 'job1', '--cpu-reservation', '100m'])).code, 0);
    const sleeper = spawn(
      process.execPath,
      [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', 'job1', '--', 'sleep', String(30 * SLOW)],
      { stdio: 'ignore' },
    );
    let pid = 0;
    for (let i = 0; i < 100 * SLOW && pid === 0; i++) {
      await sleep(50);
      pid = groups.procs('job1.slice')[0] ?? 0;
    }
    assert.ok(pid > 0, 'sleep is in the slice');

    const moved = await daemon.cli(['domain', 'add', 'batch', 'job1']);
    assert.equal(moved.code, 0, moved.stderr);
    assert.deepEqual(groups.existingDirs('job1.slice'), [], 'old group removed from every hierarchy');
    assert.deepEqual(groups.missingFrom('batch.domain/job1.slice', pid), [], 'the process moved with its slice, in every hierarchy');
    assert.equal(groups.cpuLimit('batch.domain'), 600, "the domain's cap is in the kernel");

    const shown = await daemon.cliJson<DomainView>(['domain', 'show', 'batch']);
    assert.deepEqual(shown.members.slices, ['job1']);
    const slice = await daemon.cliJson<SliceView>(['slice', 'show', 'job1']);
    assert.equal(slice.cpu.effectiveLimit, 600, 'member inherits the domain cap');

    const notEmpty = await daemon.cli(['domain', 'delete', 'batch']);
    assert.equal(notEmpty.code, 1);
    assert.match(notEmpty.stderr, /still has members/);

    assert.equal((await daemon.cli(['domain', 'remove', 'batch', 'job1'])).code, 0);
    assert.deepEqual(groups.missingFrom('job1.slice', pid), []);
    assert.equal((await daemon.cli(['slice', 'delete', 'job1'])).code, 0);
    assert.equal((await daemon.cli(['domain', 'delete', 'batch'])).code, 0);
    await new Promise((r) => (sleeper.exitCode !== null ? r(null) : sleeper.once('exit', r)));
  });

  test('bad input gives one clear line, a non-zero status, and changes nothing', async () => {
    // The node's guaranteed CPU as the daemon reports it (never an assumed CPU count): keep
    // reserves half of what is free, n1 asks for one millicore more than what is left then.
    const node = await daemon.api.get<{ cpu: { capacity: number; systemReserve: number; available: number } }>('/v1/node');
    const guaranteed = node.cpu.capacity - node.cpu.systemReserve;
    const kept = Math.floor(node.cpu.available / 2);
    assert.ok(kept > 200, `the node has ${node.cpu.available}m free to guarantee; the cases need more than 400m`);
    assert.equal((await daemon.cli(['slice', 'create', 'keep', '--cpu-reservation', `${kept}m`])).code, 0);
    assert.equal((await daemon.cli(['domain', 'create', 'd1'])).code, 0);
    assert.equal((await daemon.cli(['domain', 'create', 'd2', '--parent', 'd1'])).code, 0);
    const snapshot = async (): Promise<string> =>
      JSON.stringify([await daemon.cliJson(['slice', 'list']), await daemon.cliJson(['domain', 'list'])]);
    const before = await snapshot();

    const zombie = await makeZombie();
    const missing = freePid();
    const cases: Array<{ args: string[]; code: number; message: RegExp }> = [
      { args: ['slice', 'show', 'nope'], code: 3, message: /slice "nope" does not exist/ },
      { args: ['slice', 'create', 'keep'], code: 1, message: /slice keep already exists/ },
      { args: ['slice', 'create', 'd1'], code: 1, message: /already used by a domain/ },
      { args: ['slice', 'create', 'a/b'], code: 1, message: /must not contain "\/"/ },
      { args: ['slice', 'create', '..'], code: 1, message: /must not contain "\.\."/ },
      { args: ['slice', 'create', 'x'.repeat(65)], code: 1, message: /65 characters long; at most 64/ },
      { args: ['slice', 'create', 'n1', '--cpu-reservation', '-1'], code: 1, message: /cpu\.reservation "-1"/ },
      { args: ['slice', 'create', 'n1', '--cpu-limit', 'lots'], code: 1, message: /cpu\.limit "lots"/ },
      { args: ['slice', 'create', 'n1', '--cpu-shares', '0'], code: 1, message: /cpu\.shares .*from 1 to 10000/ },
      { args: ['slice', 'create', 'n1', '--cpu-shares', '10001'], code: 1, message: /from 1 to 10000/ },
      { args: ['slice', 'create', 'n1', '--memory', '12Q'], code: 1, message: /memory\.limit "12Q"/ },
      {
        args: ['slice', 'create', 'n1', '--cpu-reservation', `${node.cpu.available - kept + 1}m`],
        code: 1,
        message: new RegExp(`over-commit at node: reservations would total ${guaranteed + 1}m .* = ${guaranteed}m can be guaranteed`),
      },
      {
        args: ['slice', 'create', 'n1', '--cpu-reservation', '200m', '--cpu-limit', '100m'],
        code: 1,
        message: /cpu\.limit 100m is below cpu\.reservation 200m/,
      },
      { args: ['slice', 'create', 'n1', '--domain', 'nodomain'], code: 3, message: /domain "nodomain" does not exist/ },
      { args: ['slice', 'create', 'n1', '--user', 'no-such-user'], code: 3, message: /user no-such-user does not exist/ },
      { args: ['slice', 'create', 'n1', '--user', 'root'], code: 4, message: /uid 0/ },
      { args: ['slice', 'set', 'keep', '--cpu-limit', `${kept - 100}m`], code: 1, message: new RegExp(`below cpu\\.reservation ${kept}m`) },
      { args: ['slice', 'set', 'nope', '--cpu-shares', '5'], code: 3, message: /does not exist/ },
      { args: ['domain', 'add', 'd2', 'd1'], code: 1, message: /domain cycle: d1 -> d2 -> d1/ },
      { args: ['domain', 'add', 'd1', 'ghost'], code: 3, message: /no slice or domain is named "ghost"/ },
      { args: ['domain', 'add', 'd1', 'keep'], code: 1, message: /over-commit at domain d1/ },
      { args: ['attach', 'keep', String(missing)], code: 3, message: new RegExp(`process ${missing} does not exist`) },
      {
        args: ['attach', 'keep', '999999999'],
        code: 2,
        message: /pid "999999999" is not a valid pid: it must be a whole number from 1 to 4194304/,
      },
      { args: ['attach', 'keep', 'abc'], code: 2, message: /pid "abc" is not a valid pid/ },
      { args: ['attach', 'keep', String(zombie.pid)], code: 3, message: /exited while it was being moved/ },
      { args: ['attach', 'keep', '1'], code: 4, message: /init/ },
      { args: ['slice', 'frobnicate'], code: 2, message: /unknown command/ },
    ];
    try {
      for (const c of cases) {
        const result = await daemon.cli(c.args);
        const what = `slicectl ${c.args.join(' ')}`;
        assert.equal(result.code, c.code, `${what}: exit status ${result.code}, stderr: ${result.stderr}`);
        assert.match(result.stderr, c.message, what);
        if (c.code !== 2) {
          assert.equal(result.stderr.trim().split('\n').length, 1, `${what}: one line, got ${JSON.stringify(result.stderr)}`);
          assert.match(result.stderr, /^slicectl: /, what);
        }
      }
    } finally {
      zombie.release();
    }
    assert.equal(await snapshot(), before, 'state is unchanged after every refused command');

    // NUL cannot travel in argv; it arrives through the API.
    await assert.rejects(daemon.api.post('/v1/slices', { name: 'a\u0000b' }), /must not contain NUL/);

    for (const args of [
      ['slice', 'delete', 'keep'],
      ['domain', 'delete', 'd2'],
      ['domain', 'delete', 'd1'],
    ]) {
      assert.equal((await daemon.cli(args)).code, 0);
    }
  });

  test('the daemon not running gives exit status 5', async () => {
    const result = await run(process.execPath, [SLICECTL, '--socket', `${daemon.dir}/nothing.sock`, 'slice', 'list']);
    assert.equal(result.code, 5);
    assert.match(result.stderr, /^slicectl: sliced is not running/);
  });

  test('the API socket is root-only', () => {
    const mode = statSync(daemon.socket).mode & 0o777;
    assert.equal(mode, 0o600);
    assert.equal(statSync(daemon.socket).uid, 0);
  });

  test('--help documents commands and exit codes', async () => {
    const help = await daemon.cli(['--help']);
    assert.equal(help.code, 0);
    for (const word of ['slice', 'domain', 'exec', 'attach', 'status', 'Exit status', '--json'])
      assert.ok(help.stdout.includes(word), word);
  });
});

/** A process that has exited but is not reaped yet: /proc still lists it, the kernel refuses to move it. */
async function makeZombie(): Promise<{ pid: number; release: () => void }> {
  // perl forks a child that exits at once and never reaps it. (Not `sh -c 'true & exec sleep'`:
  // sh sometimes reaps the child before the exec, and the pid is gone.)
  const parent = spawn('perl', ['-e', '$| = 1; my $pid = fork() // die; if ($pid == 0) { exit 0 } print "$pid\n"; sleep 30'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const pid = await new Promise<number>((r) => parent.stdout!.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
  for (let i = 0; i < 100; i++) {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    if (state === 'Z') break;
    await sleep(10);
  }
  return { pid, release: () => parent.kill('SIGKILL') };
}
