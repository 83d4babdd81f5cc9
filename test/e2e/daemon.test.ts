/**
 * The daemon's life: restart and crash lose nothing and adopt running processes, stray or
 * missing groups are reconciled, a second daemon on the same state is refused, the admin
 * group opens the socket, and metrics are served on 127.0.0.1 only when asked for.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, freePort, run, SLICED, SLICECTL } from '../helpers/daemon.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/daemon: ${skip}\n`);

describe('daemon restart, crash and reconciliation', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let groups: KernelGroups;
  const state = async (): Promise<string> =>
    JSON.stringify([await daemon.cliJson(['slice', 'list']), await daemon.cliJson(['domain', 'list'])]);

  before(async () => {
    daemon = await TestDaemon.start();
    groups = await KernelGroups.of(daemon);
  });

  after(async () => {
    await daemon.destroy();
    assert.deepEqual(groups.existingDirs(), [], 'cleanup removed the root group in every hierarchy');
  });

  test('restart (SIGTERM) and crash (SIGKILL) keep the state and adopt running processes', async () => {
    assert.equal((await daemon.cli(['domain', 'create', 'grp', '--cpu-reservation', '300m', '--cpu-limit', '800m'])).code, 0);
    assert.equal(
      (await daemon.cli(['slice', 'create', 'keeper', '--domain', 'grp', '--cpu-reservation', '200m', '--memory', '64M'])).code,
      0,
    );
    assert.equal((await daemon.cli(['slice', 'create', 'other', '--cpu-shares', '700'])).code, 0);
    const worker = spawn(
      process.execPath,
      [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', 'keeper', '--', 'sleep', String(60 * SLOW)],
      { stdio: 'ignore' },
    );
    const keeper = 'grp.domain/keeper.slice';
    let pid = 0;
    for (let i = 0; i < 200 * SLOW && !pid; i++) {
      await sleep(25);
      pid = groups.procs(keeper)[0] ?? 0;
    }
    assert.ok(pid > 0);
    const before = await state();

    await daemon.restart('SIGTERM');
    assert.equal(await state(), before, 'state survives a clean restart');
    assert.deepEqual(groups.missingFrom(keeper, pid), [], 'process adopted, not killed, in every hierarchy');
    assert.match(daemon.log, /"adoptedGroups":2/);

    // Created, then the daemon is killed without any chance to flush.
    assert.equal((await daemon.cli(['slice', 'create', 'late', '--cpu-limit', '250m'])).code, 0);
    await daemon.restart('SIGKILL');
    const afterCrash = JSON.parse(await state()) as Array<Array<{ name: string }>>;
    assert.deepEqual(afterCrash[0]!.map((s) => s.name).sort(), ['keeper', 'late', 'other']);
    assert.deepEqual(groups.missingFrom(keeper, pid), [], 'process survives a daemon crash');
    assert.equal(groups.cpuLimit('late.slice'), 250, 'the slice created just before the crash has its cap in the kernel');
    worker.kill('SIGTERM');
    spawnSync('kill', ['-9', String(pid)]);
  });

  test('at start, groups nobody asked for are emptied and removed; missing groups are recreated', async () => {
    await daemon.stop();
    // A group left by a slice whose deletion was cut short, with a process inside.
    const stray = groups.dir(groups.primary, 'stray.slice');
    mkdirSync(stray);
    const lingering = spawn('sleep', [String(60 * SLOW)], { stdio: 'ignore' });
    writeFileSync(`${stray}/cgroup.procs`, String(lingering.pid));
    // A slice's group removed behind the daemon's back.
    rmdirSync(groups.dir(groups.primary, 'other.slice'));
    await daemon.launch();
    assert.equal(existsSync(stray), false, 'stray group removed');
    const exit = await new Promise<string | null>((r) =>
      lingering.exitCode !== null || lingering.signalCode !== null ? r(lingering.signalCode) : lingering.once('exit', (_c, s) => r(s)),
    );
    assert.ok(exit === 'SIGTERM' || exit === 'SIGKILL', `stray process was stopped (${exit})`);
    assert.ok(groups.exists('other.slice'), 'missing group recreated');
    assert.equal(groups.cpuLimit('other.slice'), null);
    assert.equal(groups.memoryLimit('other.slice'), null);
  });

  test('a move cut short by a kill (a slice with a second group, inside a domain the store does not have) is repaired at start: its process joins the slice', async () => {
    await daemon.stop('SIGKILL');
    // What a kill leaves after a move's new groups were made and the processes moved, before the store said so.
    const ghost = groups.dir(groups.primary, 'ghost.domain');
    mkdirSync(join(ghost, 'other.slice'), { recursive: true });
    const moved = spawn('sleep', [String(60 * SLOW)], { stdio: 'ignore' });
    writeFileSync(join(ghost, 'other.slice', 'cgroup.procs'), String(moved.pid));
    try {
      await daemon.launch();
      assert.equal(existsSync(ghost), false, 'the second group and the domain nobody asked for are removed');
      assert.ok(
        groups.procs('other.slice').includes(moved.pid!),
        'the process moved into the group the store places the slice in, not stopped',
      );
      assert.match(daemon.log, /removing second groups of the same slice or domain/);
    } finally {
      moved.kill('SIGKILL');
    }
  });

  test('at start, a user this daemon made for a slice its state no longer has is removed; users made by others stay', async () => {
    await daemon.stop('SIGKILL');
    const userExists = (name: string): boolean => spawnSync('getent', ['passwd', name]).status === 0;
    const addUser = (name: string, comment: string): void => {
      const made = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', comment, name]);
      assert.equal(made.status, 0, `useradd ${name}`);
    };
    // What a crash between a delete's store write and its userdel leaves: sliced's user of slice "gone".
    addUser('sl-gone', `sliced slice gone of sliced ${daemon.stateDir}`);
    // Look alike, but another daemon's (another state directory) and the operator's own.
    const others = ['sl-elsewhere', 'sl-operators'];
    addUser('sl-elsewhere', 'sliced slice elsewhere of sliced /var/lib/another-sliced');
    addUser('sl-operators', 'sliced slice operators');
    try {
      await daemon.launch();
      assert.equal(userExists('sl-gone'), false, 'the leaked user is removed');
      assert.match(daemon.log, /"user":"sl-gone".*removed a user made for a slice that no longer exists/);
      for (const name of others) assert.ok(userExists(name), `${name} is not this daemon's and stays`);
      assert.ok(userExists('sl-keeper'), "a slice's own user stays");
    } finally {
      for (const name of ['sl-gone', ...others]) spawnSync('userdel', [name]);
    }
  });

  test('a second daemon on the same state directory is refused', async () => {
    const second = await run(process.execPath, [SLICED, ...daemon.args, '--socket', `${daemon.dir}/second.sock`]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /is in use by process \d+/);
  });
});

describe('socket permissions and metrics', { skip: skip ?? false }, () => {
  const group = `sltest${process.pid % 100000}`;
  let daemon: TestDaemon;
  let port: number;

  before(async () => {
    spawnSync('groupadd', ['--system', group]);
    port = await freePort();
    daemon = await TestDaemon.start(['--admin-group', group, '--metrics-port', String(port)]);
  });

  after(async () => {
    await daemon.destroy();
    spawnSync('groupdel', [group]);
  });

  test('with an admin group the socket is 0660 and owned by that group', () => {
    const info = statSync(daemon.socket);
    assert.equal(info.mode & 0o777, 0o660);
    const gid = Number(spawnSync('getent', ['group', group], { encoding: 'utf8' }).stdout.split(':')[2]);
    assert.equal(info.gid, gid);
  });

  test('metrics are served on 127.0.0.1 with per-slice figures', async () => {
    assert.equal(
      (await daemon.cli(['slice', 'create', 'metered', '--cpu-reservation', '100m', '--cpu-limit', '500m', '--memory', '128M'])).code,
      0,
    );
    await sleep(1200);
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(response.status, 200);
    const text = await response.text();
    for (const name of [
      'sliced_slice_cpu_usage_millicores',
      'sliced_slice_cpu_entitlement_millicores',
      'sliced_slice_cpu_throttled_seconds_total',
      'sliced_slice_cpu_limit_millicores',
      'sliced_slice_memory_limit_bytes',
    ]) {
      assert.match(text, new RegExp(`^${name}\\{slice="metered",domain=""\\} `, 'm'), name);
    }
    assert.match(text, /^sliced_slice_cpu_limit_millicores\{slice="metered",domain=""\} 500$/m);
    const listening = spawnSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    const localAddresses = listening.map((line) => line.split(/\s+/)[3]);
    assert.deepEqual(localAddresses, [`127.0.0.1:${port}`], 'bound to loopback only');
  });
});
