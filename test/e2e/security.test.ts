/**
 * Security review (issue 16, part 7): what a slice's own user tries against the node, one test
 * per attempt, each failing if the attempt succeeds. Attempts covered elsewhere, named here so
 * the list is whole:
 *   - changing its own allocation through the API or its cgroup files, reading other slices'
 *     views: test/e2e/processes.test.ts ("a slice user cannot change allocations ...");
 *   - another slice's vsys FIFOs, and a FIFO swapped for a symlink to /etc/shadow:
 *     test/e2e/vsys.test.ts; root-owned FIFOs planted in its directory: test/e2e/vsys-fifo.test.ts;
 *   - etcd and the agents' channel from a namespaced and a host-network slice:
 *     test/e2e/cluster.test.ts ("slices cannot reach etcd or the agents' channel");
 *   - real-time policies on delete, and attaching a real-time process: test/e2e/processes.test.ts;
 *   - the config tree's FUSE mount (reading others' parts, writing): test/e2e/framework.test.ts
 *     ("slice users see only their own slice on the mount").
 * Here: the admin socket, another slice's socket, writes on its own socket, other slices'
 * processes (/proc files, signals, ptrace), escaping its groups through cgroup.procs in every
 * hierarchy, other slices' vsys directories, hard links and renames in its own vsys directory,
 * the metrics port (every slice's figures) from a host-network slice.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLICECTL, TestDaemon, freePort, userIds } from '../helpers/daemon.js';
import { commandSkipReason, kernelSkipReason, skipWith } from '../helpers/env.js';
import { readMounts } from '../../src/kernel/procfs.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { rawCall } from '../helpers/raw-api.js';
import { installService } from '../helpers/vsys-services.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP security review: ${skip}\n`);

/** A shell command run as a slice's user; its exit status and output. */
function asUser(ids: { uid: number; gid: number }, script: string): { status: number | null; out: string } {
  const r = spawnSync('/bin/sh', ['-c', script], { uid: ids.uid, gid: ids.gid, encoding: 'utf8', cwd: '/', timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('security review: what a slice user tries', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let groups: KernelGroups;
  let mallory: { uid: number; gid: number };
  let victim: ChildProcess;
  let services: string;
  let metricsPort: number;

  before(async () => {
    metricsPort = await freePort();
    daemon = await TestDaemon.start(['--log-level', 'warn', '--user-prefix', 'sl-q-', '--metrics-port', String(metricsPort)]);
    for (const name of ['mallory', 'alice']) assert.equal((await daemon.cli(['slice', 'create', name])).code, 0);
    groups = await KernelGroups.of(daemon);
    mallory = userIds('sl-q-mallory');
    // A process of alice's with a secret in its environment.
    const alice = userIds('sl-q-alice');
    victim = spawn('/bin/sleep', ['600'], { uid: alice.uid, gid: alice.gid, env: { SECRET: 'alice-secret' }, stdio: 'ignore' });
    assert.equal((await daemon.cli(['attach', 'alice', String(victim.pid)])).code, 0);
    services = join(daemon.stateDir, 'vsys');
  });

  after(async () => {
    victim?.kill('SIGKILL');
    await daemon?.destroy();
  });

  test("the metrics port, with every slice's figures, resets a connection from the slice; root reads it", async (t) => {
    const reason =
      commandSkipReason('nft', 'nftables') ??
      (readMounts().some((m) => m.fsType === 'cgroup2')
        ? null
        : 'no cgroup2 hierarchy is mounted: nft cannot match host-network slices by their cgroup');
    if (reason) return skipWith(t, reason);
    const asRoot = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(asRoot.status, 200);
    assert.match(await asRoot.text(), /slice="mallory"/);
    // bash's /dev/tcp from a process of the slice (in its groups, as its user): refused at once, not timed out.
    const tried = await daemon.cli([
      'exec',
      '--slice',
      'mallory',
      '--',
      'timeout',
      '5',
      'bash',
      '-c',
      `exec 3<>/dev/tcp/127.0.0.1/${metricsPort} && echo connected`,
    ]);
    assert.notEqual(tried.code, 0, `the slice reached the metrics port: ${tried.stdout}`);
    assert.match(tried.stderr, /Connection refused/, tried.stderr);
  });

  test('the admin socket refuses a slice user at connect', () => {
    const r = asUser(
      mallory,
      `${process.execPath} -e "require('net').connect('${daemon.socket}').on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(3)})"`,
    );
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /EACCES/);
  });

  test("another slice's socket refuses it at connect", () => {
    const socket = join(daemon.runDir, 'slices', 'alice.sock');
    assert.ok(existsSync(socket), socket);
    const r = asUser(
      mallory,
      `${process.execPath} -e "require('net').connect('${socket}').on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(3)})"`,
    );
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /EACCES/);
  });

  test('its own socket answers reads only: every write is refused and changes nothing', async () => {
    const socket = join(daemon.runDir, 'slices', 'mallory.sock');
    const before = JSON.stringify(
      (await daemon.api.get<{ slices: unknown[] }>('/v1/status')).slices.map((s) => ({ ...(s as object), live: null })),
    );
    for (const [method, path, body] of [
      ['PATCH', '/v1/slices/mallory', { cpu: { shares: 10000 } }],
      ['POST', '/v1/slices', { name: 'mallory2' }],
      ['DELETE', '/v1/slices/alice', undefined],
      ['POST', '/v1/tree/mkdir', { path: '/schedulers/evil' }],
      ['POST', '/v1/slices/mallory/attach', { pid: 1 }],
    ] as const) {
      const outcome = await rawCall(socket, { method, path, body });
      assert.ok(
        outcome.kind === 'answer' && outcome.status >= 400 && outcome.status < 500,
        `${method} ${path}: ${JSON.stringify(outcome)}`,
      );
    }
    const after = JSON.stringify(
      (await daemon.api.get<{ slices: unknown[] }>('/v1/status')).slices.map((s) => ({ ...(s as object), live: null })),
    );
    assert.equal(after, before);
  });

  test("another slice's processes: no environment, no fds, no memory, no signals, no ptrace", () => {
    const pid = victim.pid!;
    for (const file of ['environ', 'mem', 'maps', 'fd/0', 'stack']) {
      const r = asUser(mallory, `cat /proc/${pid}/${file} > /dev/null`);
      assert.notEqual(r.status, 0, `mallory read /proc/${pid}/${file}: ${r.out}`);
    }
    const signal = asUser(mallory, `kill -STOP ${pid}`);
    assert.notEqual(signal.status, 0, `mallory signalled alice's process: ${signal.out}`);
    assert.doesNotMatch(readFileSync(`/proc/${pid}/status`, 'utf8'), /^State:\s+T/m);
    // Opening /proc/<pid>/mem for writing takes the same ptrace access check as PTRACE_ATTACH.
    const ptrace = asUser(mallory, `${process.execPath} -e "require('fs').openSync('/proc/${pid}/mem','r+')"`);
    assert.notEqual(ptrace.status, 0, ptrace.out);
  });

  test('it cannot leave its groups: cgroup.procs of the root, of sliced and of another slice refuse it, in every hierarchy', () => {
    const shell = spawn('/bin/sleep', ['600'], { uid: mallory.uid, gid: mallory.gid, stdio: 'ignore' });
    try {
      assert.equal(spawnSync(process.execPath, [SLICECTL, '--socket', daemon.socket, 'attach', 'mallory', String(shell.pid)]).status, 0);
      const targets = [...groups.dirs(''), ...groups.dirs('alice.slice'), ...Object.values(groups.roots).map((r) => join(r, '..'))];
      for (const dir of new Set(targets)) {
        const file = join(dir, 'cgroup.procs');
        if (!existsSync(file)) continue;
        const r = asUser(mallory, `echo ${shell.pid} > ${file}`);
        assert.notEqual(r.status, 0, `mallory moved its process into ${dir}`);
      }
      assert.deepEqual(groups.missingFrom('mallory.slice', shell.pid!), [], 'the process is still in every group of its slice');
    } finally {
      shell.kill('SIGKILL');
    }
  });

  test("other slices' vsys directories are closed to it; hard links and renames in its own give it nothing", async (t) => {
    const root = join(daemon.runDir, 'vsys');
    const r = asUser(mallory, `ls ${join(root, 'alice')}`);
    assert.notEqual(r.status, 0, `mallory listed alice's vsys directory: ${r.out}`);
    // A hard link to a root-owned file: the kernel's protected_hardlinks refuses it.
    const protectedLinks = readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim();
    if (protectedLinks !== '1') skipWith(t, `fs.protected_hardlinks is ${protectedLinks}; the hard-link attempt needs it at 1`);
    else {
      const link = asUser(mallory, `ln /etc/shadow ${join(root, 'mallory', 'stolen')}`);
      assert.notEqual(link.status, 0, `mallory hard-linked /etc/shadow into its vsys directory: ${link.out}`);
    }
    // Renaming a FIFO away and putting a regular file in its place: the daemon never writes output there.
    installService(services, 'echo', '#!/bin/sh\necho from-root\n', ['mallory']);
    const out = join(root, 'mallory', 'echo.out');
    for (let i = 0; i < 100 && !existsSync(out); i++) await sleep(50);
    assert.ok(lstatSync(out).isFIFO(), 'the service FIFO appeared');
    const swap = asUser(
      mallory,
      `cd ${join(root, 'mallory')} && mv echo.out old.out && : > echo.out && echo call > echo.in; sleep 1; cat echo.out`,
    );
    assert.doesNotMatch(swap.out, /from-root/, `the daemon wrote a call's output into a regular file the slice put there: ${swap.out}`);
    assert.equal(lstatSync(out).uid, mallory.uid, 'what is at the FIFO name belongs to the slice, never a file root wrote');
  });
});
