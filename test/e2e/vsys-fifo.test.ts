/**
 * How sliced makes and adopts a slice's vsys FIFOs, tried by a tenant (issue 11, items 1
 * and 8): remaking a FIFO the slice removed must never run anything as the slice's user
 * outside the slice (a helper the tenant could stop, freezing the daemon, or take over,
 * escaping its cgroups and network namespace), and a root-owned FIFO found at one of the
 * slice's names must never be given to the slice or used.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, lstatSync, mkdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, TestDaemon, userIds, type CliResult } from '../helpers/daemon.js';
import { commandSkipReason, kernelSkipReason, SLOW } from '../helpers/env.js';
import type { SliceVsysView } from '../../src/wire/vsys.js';

const skip =
  kernelSkipReason() ??
  commandSkipReason('perl', 'perl-base') ??
  commandSkipReason('nsenter', 'util-linux') ??
  commandSkipReason('nft', 'nftables');
if (skip) process.stderr.write(`SKIP e2e/vsys-fifo: ${skip}\n`);

async function waitFor<T>(what: string, probe: () => T | null | undefined | false | Promise<T | null>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs * SLOW;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * The tenant, run in its slice as its user: for SECONDS it removes the given FIFOs whenever
 * they are back and SIGSTOPs every process it may signal (kill(-1): every process of its
 * uid but itself) again and again, so a helper is stopped the moment it runs as the slice's
 * user. It notes every process of its uid it finds among the daemon's children (each round)
 * and anywhere else (every 20 ms), with their cgroups and network namespace, and resumes
 * them all at the end.
 */
const TENANT = String.raw`
use strict; use warnings; use Time::HiRes qw(time);
my ($daemon, $seconds, @paths) = @ARGV;
sub slurp { open(my $h, '<', $_[0]) or return ''; local $/; my $s = <$h>; return $s // '' }
my $cgroup = slurp('/proc/self/cgroup');
my $net = readlink('/proc/self/ns/net') // '?';
my ($removed, %caught) = (0);
sub note {
  my ($pid, $where) = @_;
  return if $pid == $$ || $caught{$pid};
  my ($uid) = slurp("/proc/$pid/status") =~ /^Uid:\s+(\d+)/m or return;
  return unless $uid == $<;
  my $ns = readlink("/proc/$pid/ns/net") // '?';
  $caught{$pid} = sprintf '%s: pid %d (%s), %s cgroups, %s network namespace (%s)', $where, $pid, slurp("/proc/$pid/comm") =~ s/\s+$//r,
    slurp("/proc/$pid/cgroup") eq $cgroup ? "the slice's" : "NOT the slice's", $ns eq $net ? "the slice's" : "NOT the slice's", $ns;
}
my ($end, $scan) = (time + $seconds, 0);
while (time < $end) {
  for my $p (@paths) { $removed++ if -p $p && unlink $p }
  kill 'STOP', -1;
  note($_, "a child of the daemon") for map { split ' ', slurp($_) } glob "/proc/$daemon/task/*/children";
  next if time < $scan;
  note($_, "a process elsewhere") for map { m{(\d+)$} } glob '/proc/[0-9]*';
  $scan = time + 0.02;
}
kill 'CONT', -1;
print "removed $removed\n";
print "caught $_\n" for values %caught;
`;

describe('vsys FIFOs against a tenant', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let services: string;
  let root: string;
  const fifo = (slice: string, file: string): string => join(root, slice, file);
  const asSlice = (slice: string, command: string): Promise<CliResult> => run('sh', ['-c', command], userIds(`sl-${slice}`));
  const call = (slice: string, service: string, request: string): Promise<CliResult> =>
    asSlice(slice, `printf %s '${request}' > ${fifo(slice, `${service}.in`)} && timeout 10 cat ${fifo(slice, `${service}.out`)}`);
  const install = (name: string, body: string, acl: string): void => {
    mkdirSync(services, { recursive: true, mode: 0o700 });
    writeFileSync(join(services, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    writeFileSync(join(services, `${name}.acl`), acl, { mode: 0o644 });
  };
  const view = (slice: string): Promise<SliceVsysView> => daemon.cliJson<SliceVsysView>(['vsys', 'list', '--slice', slice]);
  /** A root-owned FIFO 0600 beside the slices' directories (same filesystem, so it can be linked in). */
  const rootFifo = (name: string): string => {
    const path = join(daemon.dir, name);
    rmSync(path, { force: true });
    assert.equal(spawnSync('mkfifo', ['-m', '600', path]).status, 0);
    return path;
  };
  const owner = (path: string): string => {
    const s = statSync(path);
    return `${s.uid}:${s.gid} ${(s.mode & 0o7777).toString(8)}`;
  };

  before(async () => {
    daemon = await TestDaemon.start();
    services = join(daemon.stateDir, 'vsys');
    root = join(daemon.runDir, 'vsys');
    let created = await daemon.cli(['slice', 'create', 'fav1', '--net']);
    assert.equal(created.code, 0, created.stderr);
    created = await daemon.cli(['slice', 'create', 'fav8']);
    assert.equal(created.code, 0, created.stderr);
    install('echo', 'cat', 'fav1\nfav8\n');
    await waitFor('echo FIFOs', () => existsSync(fifo('fav1', 'echo.out')) && existsSync(fifo('fav8', 'echo.out')));
  });

  after(async () => {
    await daemon.destroy();
  });

  test('a tenant removing its FIFOs finds no process of its uid to stop, and the API keeps answering', async () => {
    const seconds = 7; // at least three periodic checks (every 2 s), each remaking the FIFOs
    const tenant = daemon.cli([
      'exec',
      '--slice',
      'fav1',
      '--',
      'perl',
      '-e',
      TENANT,
      String(daemon.pid),
      String(seconds),
      fifo('fav1', 'echo.in'),
      fifo('fav1', 'echo.out'),
    ]);
    let done = false;
    void tenant.finally(() => (done = true));
    const latencies: number[] = [];
    while (!done) {
      const started = performance.now();
      await daemon.api.get('/v1/node');
      latencies.push(performance.now() - started);
      await sleep(20);
    }
    const result = await tenant;
    assert.equal(result.code, 0, result.stderr);
    const sorted = [...latencies].sort((a, b) => a - b);
    const max = sorted.at(-1)!;
    const median = sorted[Math.floor(sorted.length / 2)]!;
    process.stderr.write(
      `vsys-fifo: API while the tenant removed FIFOs and stopped what it could for ${seconds} s: ${latencies.length} requests, median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms; tenant: ${result.stdout.trim().replace(/\n/g, '; ')}\n`,
    );
    assert.deepEqual(
      result.stdout.match(/^caught .*/gm) ?? [],
      [],
      "no process of the slice's uid but the tenant itself, among the daemon's children or anywhere",
    );
    assert.ok(max < 1000, `the API answered every request within 1 s (slowest ${max.toFixed(0)} ms)`);
    const removed = Number(/^removed (\d+)$/m.exec(result.stdout)?.[1]);
    assert.ok(removed >= 3, `the FIFOs were made again after the tenant removed them (removed ${removed} times)`);
    await waitFor('echo FIFOs made again', () => existsSync(fifo('fav1', 'echo.in')) && existsSync(fifo('fav1', 'echo.out')), 5000);
    assert.equal((await call('fav1', 'echo', 'after')).stdout, 'after');
  });

  test('a root-owned FIFO at the name of a newly granted service is refused, never given to the slice', async (t) => {
    const planted = rootFifo('fav8-root-fifo');
    const path = fifo('fav8', 'fresh.in');
    t.after(() => rmSync(path, { force: true }));
    t.after(() => rmSync(planted, { force: true }));
    // A tenant can put this link there itself where fs.protected_hardlinks=0; root stands in for it.
    linkSync(planted, path);
    const before = owner(planted);
    install('fresh', 'cat', 'fav8\n');
    await waitFor('fresh.out made', () => existsSync(fifo('fav8', 'fresh.out')));
    const refused = await waitFor('fresh.in refused', async () => (await view('fav8')).refused['fresh.in'] ?? null, 5000).catch(
      (err: Error) => err.message,
    );
    assert.equal(owner(planted), before, 'the root-owned FIFO keeps its owner and mode');
    assert.equal(lstatSync(path).ino, lstatSync(planted).ino, 'and is left in place, never replaced');
    assert.match(refused, /fresh\.in: .*FIFO.*(owner 0|uid 0).*refused/);
    // The slice removes it: it gets a FIFO sliced made, its own.
    assert.equal((await asSlice('fav8', `rm -f ${path}`)).code, 0);
    await waitFor(
      'fresh.in made again',
      () => existsSync(path) && lstatSync(path).isFIFO() && lstatSync(path).uid === userIds('sl-fav8').uid,
      5000,
    );
    assert.equal((await call('fav8', 'fresh', 'hello')).stdout, 'hello');
  });

  test('a root-owned FIFO put in place of one while the daemon is down is refused at the restart', async (t) => {
    const planted = rootFifo('fav8-root-fifo2');
    const path = fifo('fav8', 'echo.in');
    t.after(() => rmSync(planted, { force: true }));
    await daemon.stop();
    unlinkSync(path);
    linkSync(planted, path);
    const before = owner(planted);
    await daemon.launch();
    const refused = await waitFor('echo.in refused', async () => (await view('fav8')).refused['echo.in'] ?? null, 5000).catch(
      (err: Error) => err.message,
    );
    assert.equal(owner(planted), before, 'the root-owned FIFO keeps its owner and mode');
    assert.match(refused, /echo\.in: .*FIFO.*(owner 0|uid 0).*refused/);
    // echo.out was ours and is adopted as it was.
    assert.equal((await asSlice('fav8', `rm -f ${path}`)).code, 0);
    await waitFor('echo.in made again', () => existsSync(path) && lstatSync(path).uid === userIds('sl-fav8').uid, 5000);
    assert.equal((await call('fav8', 'echo', 'again')).stdout, 'again');
  });
  test("a deleted slice's vsys directory a kill left behind is removed at the next start; anything else in the root stays", async (t) => {
    await daemon.stop('SIGKILL');
    // What a kill between a slice's deletion and the removal of its directory leaves: a
    // directory of the slice's user holding its FIFOs. Beside it, things that are not ours.
    const nobody = userIds('nobody');
    const left = join(root, 'gone8');
    mkdirSync(left, { mode: 0o700 });
    assert.equal(spawnSync('mkfifo', ['-m', '0600', join(left, 'echo.in'), join(left, 'echo.out')]).status, 0);
    spawnSync('chown', ['-R', `${nobody.uid}:${nobody.gid}`, left]);
    const rootOwned = join(root, 'notours8');
    const withFile = join(root, 'notours9');
    mkdirSync(rootOwned);
    mkdirSync(withFile);
    writeFileSync(join(withFile, 'data'), 'x');
    spawnSync('chown', ['-R', `${nobody.uid}:${nobody.gid}`, withFile]);
    t.after(() => {
      for (const dir of [left, rootOwned, withFile]) rmSync(dir, { recursive: true, force: true });
    });
    await daemon.launch();
    await waitFor('the left directory removed', () => !existsSync(left), 5000);
    assert.ok(existsSync(rootOwned), "a root-owned directory is not a slice's");
    assert.ok(existsSync(join(withFile, 'data')), "a directory holding more than FIFOs is not a slice's");
  });
  test("FIFOs of a former user of the slice's name (the slice deleted and made again meanwhile) are replaced at the start; a revoked service's go", async () => {
    await daemon.stop('SIGKILL');
    const nobody = userIds('nobody');
    for (const file of ['echo.in', 'echo.out']) spawnSync('chown', [`${nobody.uid}:${nobody.gid}`, fifo('fav8', file)]);
    const revoked = fifo('fav8', 'revoked.in');
    assert.equal(spawnSync('mkfifo', ['-m', '0600', revoked]).status, 0);
    spawnSync('chown', [`${nobody.uid}:${nobody.gid}`, revoked]);
    await daemon.launch();
    const own = userIds('sl-fav8').uid;
    await waitFor(
      'fresh FIFOs of the slice',
      () => ['echo.in', 'echo.out'].every((f) => existsSync(fifo('fav8', f)) && lstatSync(fifo('fav8', f)).uid === own),
      5000,
    );
    assert.equal(existsSync(revoked), false, "a former user's FIFO of a service the slice does not have is removed");
    assert.equal((await call('fav8', 'echo', 'fresh')).stdout, 'fresh');
  });
});
