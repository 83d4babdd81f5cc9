/**
 * vsys on the real kernel: a real daemon, real Unix users per slice (v4a, v4b, v4c), real
 * FIFOs and real scripts. Everything a slice does runs as the slice's user.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, run, SLICED, TestDaemon, userIds, type CliResult } from '../helpers/daemon.js';
import { parseAcl } from '../../src/vsys/acl.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import type { SliceVsysView } from '../../src/wire/vsys.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/vsys: ${skip}\n`);

const TIMEOUT_MS = 1500;
const MAX_OUTPUT = 64 * 1024;

async function waitFor<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs * SLOW;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs * SLOW} ms waiting for ${what}`);
    await sleep(20);
  }
}

const ids = (slice: string): { uid: number; gid: number } => userIds(`sl-${slice}`);

describe('vsys', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let services: string;
  let root: string;
  const fifo = (slice: string, file: string): string => join(root, slice, file);
  /** Run a shell command as the slice's user. */
  const asSlice = (slice: string, command: string, env: Record<string, string> = {}): Promise<CliResult> =>
    run('sh', ['-c', command], { ...ids(slice), env });
  /** A one-shot call the way a slice makes it: write the request, then read until EOF. */
  const call = (slice: string, service: string, request: string): Promise<CliResult> =>
    asSlice(slice, `printf %s "$REQ" > ${fifo(slice, `${service}.in`)} && timeout 10 cat ${fifo(slice, `${service}.out`)}`, {
      REQ: request,
    });
  const install = (name: string, body: string, acl: string | null, dir = services): void => {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    if (acl !== null) writeFileSync(join(dir, `${name}.acl`), acl, { mode: 0o644 });
  };
  const remove = (name: string, dir = services): void => {
    rmSync(join(dir, name), { force: true });
    rmSync(join(dir, `${name}.acl`), { force: true });
  };
  const logCount = (pattern: RegExp): number => daemon.log.split('\n').filter((l) => pattern.test(l)).length;

  before(async () => {
    daemon = await TestDaemon.start([
      '--vsys-timeout',
      String(TIMEOUT_MS),
      '--vsys-max-output',
      String(MAX_OUTPUT),
      '--vsys-max-input',
      '64K',
      '--vsys-max-calls',
      '2',
    ]);
    services = join(daemon.stateDir, 'vsys');
    root = join(daemon.runDir, 'vsys');
    for (const name of ['v4a', 'v4b', 'v4c']) assert.equal((await daemon.cli(['slice', 'create', name])).code, 0);
    install('echo', 'echo "$1 $# $(env | sort | tr "\\n" " ")"; cat; echo "echo ran for $1" >&2', 'v4a\nv4b rw\n');
    await waitFor('echo FIFOs', () => existsSync(fifo('v4b', 'echo.out')));
  });

  after(async () => {
    await daemon.destroy();
  });

  test('each slice has a 0700 vsys directory of its own user; FIFOs are 0600 and its own', () => {
    for (const slice of ['v4a', 'v4b', 'v4c']) {
      const stats = lstatSync(join(root, slice));
      assert.ok(stats.isDirectory());
      assert.equal(stats.mode & 0o7777, 0o700);
      assert.equal(stats.uid, ids(slice).uid);
    }
    const out = lstatSync(fifo('v4a', 'echo.out'));
    assert.ok(out.isFIFO());
    assert.equal(out.mode & 0o7777, 0o600);
    assert.equal(out.uid, ids('v4a').uid);
    const services = statSync(join(daemon.stateDir, 'vsys'));
    assert.equal(services.uid, 0);
    assert.equal(services.mode & 0o077, 0, 'the services directory is root-only');
  });

  test('a permitted slice calls: stdin in, stdout out, argv[1] the slice, a clean environment, stderr to the log', async () => {
    const result = await call('v4a', 'echo', 'request body');
    assert.equal(result.code, 0, result.stderr);
    const [first, ...rest] = result.stdout.split('\n');
    assert.equal(first, 'v4a 1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PWD=/ SLICE=v4a ');
    assert.equal(rest.join('\n'), 'request body');
    await waitFor('the stderr line in the log', () => /"service":"echo","slice":"v4a".*vsys: stderr: echo ran for v4a/.test(daemon.log));
    // A second call on the same FIFOs works too (each call ends with EOF on NAME.out).
    const again = await call('v4a', 'echo', 'second');
    assert.match(again.stdout, /second$/);
  });

  test("scripts run in the slice's cgroups: their CPU and memory are charged to the slice", async () => {
    install('where', 'cat /proc/self/cgroup; cat >/dev/null', 'v4a\n');
    await waitFor('where FIFOs', () => existsSync(fifo('v4a', 'where.out')));
    const result = await call('v4a', 'where', '');
    assert.equal(result.code, 0, result.stderr);
    // In the slice's group of every hierarchy the daemon uses (v1: cpu, cpuacct, memory, ...; v2: the one).
    const groups = await KernelGroups.of(daemon);
    assert.deepEqual(groups.misplaced(result.stdout, 'v4a.slice'), [], result.stdout);
    remove('where');
  });

  test("a FIFO is the slice's own from the moment it appears (never root-owned, not even briefly)", async () => {
    // The slice spins on stat(2) and keeps the first FIFO it sees (perl's `stat _` reuses that
    // very stat): one made as root and given away afterwards would be caught while still
    // root's, which a program opening it at that moment meets as EACCES.
    const path = fifo('v4a', 'fresh.in');
    const watcher = asSlice(
      'v4a',
      `timeout 10 perl -e 'my $f = shift; 1 until -p $f; my @s = stat _; printf "%d %o", $s[4], $s[2] & 07777' ${path}`,
    );
    await sleep(100);
    install('fresh', 'cat', 'v4a\n');
    const seen = await watcher;
    assert.equal(seen.code, 0, seen.stderr);
    assert.equal(seen.stdout.trim(), `${ids('v4a').uid} 600`);
    remove('fresh');
    await waitFor('fresh FIFOs gone', () => !existsSync(path), 1000);
  });

  test("a slice not in the ACL has no FIFO and cannot open another slice's", async () => {
    assert.equal(existsSync(fifo('v4c', 'echo.in')), false);
    assert.equal(existsSync(fifo('v4c', 'echo.out')), false);
    const peek = await asSlice('v4c', `ls ${join(root, 'v4a')}; echo x > ${fifo('v4a', 'echo.in')}`);
    assert.notEqual(peek.code, 0);
    assert.match(peek.stderr, /Permission denied/);
    const byCli = await daemon.cli(['vsys', 'call', 'echo', '--slice', 'v4c'], { input: 'x' });
    assert.equal(byCli.code, 4, byCli.stderr);
    assert.match(byCli.stderr, /slice v4c may not use vsys service echo: its ACL does not list the slice/);
  });

  test('ACL edits apply live, within a second, without a restart', async () => {
    const started = Date.now();
    writeFileSync(join(services, 'echo.acl'), 'v4a\nv4b rw\nv4c\n');
    await waitFor('v4c echo FIFOs', () => existsSync(fifo('v4c', 'echo.in')) && existsSync(fifo('v4c', 'echo.out')), 1000);
    const granted = Date.now() - started;
    assert.match((await call('v4c', 'echo', 'hi')).stdout, /^v4c 1 /);
    const revoked = Date.now();
    writeFileSync(join(services, 'echo.acl'), 'v4a\nv4b rw\n');
    await waitFor('v4c echo FIFOs gone', () => !existsSync(fifo('v4c', 'echo.in')) && !existsSync(fifo('v4c', 'echo.out')), 1000);
    process.stderr.write(`vsys: grant visible after ${granted} ms, revocation after ${Date.now() - revoked} ms\n`);
    // Removing the script removes the FIFOs; putting it back brings them back.
    unlinkSync(join(services, 'echo'));
    await waitFor('echo gone', () => !existsSync(fifo('v4a', 'echo.in')), 1000);
    install('echo', 'echo "$1 $# $(env | sort | tr "\\n" " ")"; cat; echo "echo ran for $1" >&2', null);
    await waitFor('echo back', () => existsSync(fifo('v4a', 'echo.in')), 1000);
  });

  test('bad ACL lines are logged with file and line and never grant', async () => {
    install('picky', 'echo picky', '# comment\nv4a r\nv4c/../v4b\nv4b rwx\n');
    await waitFor('picky for v4a', () => existsSync(fifo('v4a', 'picky.out')));
    await waitFor('the bad lines in the log', () =>
      /picky\.acl: bad lines ignored: line 3: slice name \\"v4c\/\.\.\/v4b\\" must not contain .*; line 4: mode \\"rwx\\" for slice v4b must be r, w or rw/.test(
        daemon.log,
      ),
    );
    assert.equal(existsSync(fifo('v4b', 'picky.out')), false);
    assert.equal(existsSync(fifo('v4b', 'picky.in')), false);
    remove('picky');
  });

  test('r gives only NAME.out (opening it is the call), w only NAME.in (output dropped)', async () => {
    install('modes', 'echo "modes for $1: $(cat)"', 'v4a r\nv4b w\n');
    await waitFor('mode FIFOs', () => existsSync(fifo('v4a', 'modes.out')) && existsSync(fifo('v4b', 'modes.in')));
    assert.equal(existsSync(fifo('v4a', 'modes.in')), false);
    assert.equal(existsSync(fifo('v4b', 'modes.out')), false);
    const reader = await asSlice('v4a', `timeout 5 cat ${fifo('v4a', 'modes.out')}`);
    assert.equal(reader.stdout, 'modes for v4a: \n');
    const writer = await asSlice('v4b', `echo data > ${fifo('v4b', 'modes.in')}`);
    assert.equal(writer.code, 0, writer.stderr);
    await waitFor('the w-only call in the log', () => /"service":"modes","slice":"v4b".*5 bytes in, 20 out/.test(daemon.log));
    const asAdmin = await daemon.cli(['vsys', 'call', 'modes', '--slice', 'v4a'], { input: 'x' });
    assert.equal(asAdmin.code, 4);
    assert.match(asAdmin.stderr, /only read access \(r\)/);
    remove('modes');
  });

  test('a private service appears in its slice only', async () => {
    install('mine', 'echo "private to $1"', null, join(services, 'pvt', 'v4b'));
    await waitFor('pvt FIFOs', () => existsSync(fifo('v4b', 'mine.out')));
    assert.equal(existsSync(fifo('v4a', 'mine.out')), false);
    assert.equal(existsSync(fifo('v4c', 'mine.out')), false);
    assert.equal((await call('v4b', 'mine', '')).stdout, 'private to v4b\n');
    const listed = await daemon.cliJson<SliceVsysView>(['vsys', 'list', '--slice', 'v4b']);
    assert.deepEqual(
      listed.services.map((s) => [s.service, s.private]),
      [
        ['echo', false],
        ['mine', true],
      ],
    );
    rmSync(join(services, 'pvt'), { recursive: true });
    await waitFor('pvt FIFOs gone', () => !existsSync(fifo('v4b', 'mine.out')), 1000);
  });

  test('a slice that swaps its FIFO for a symlink to /etc/shadow gets nothing, and it is logged', async (t) => {
    // On failure too: links left behind would break later tests' calls through v4b's echo.
    t.after(() => asSlice('v4b', `for f in ${fifo('v4b', 'echo.in')} ${fifo('v4b', 'echo.out')}; do [ -L $f ] && rm -f $f; done; true`));
    // Owner and mode only: other users of this machine change the contents (useradd).
    const shadow = (): string => {
      const s = statSync('/etc/shadow');
      return `${s.uid}:${s.gid}:${(s.mode & 0o7777).toString(8)}`;
    };
    const before = shadow();
    const out = fifo('v4b', 'echo.out');
    // Swapped atomically (rename over the FIFO), as an attacker would: with rm then ln, the
    // periodic check could remake the FIFO in between and ln would fail.
    const plant = (path: string): Promise<CliResult> => asSlice('v4b', `ln -s /etc/shadow ${path}.new && mv -fT ${path}.new ${path}`);
    const swap = await plant(out);
    assert.equal(swap.code, 0, swap.stderr);
    const sent = await asSlice('v4b', `echo leak > ${fifo('v4b', 'echo.in')}`);
    assert.equal(sent.code, 0);
    // Whichever looks first: the call opening NAME.out (refused there, never followed) or
    // the periodic check (which takes the FIFO out of use, so the call finds it unusable).
    await waitFor('the refusal in the log', () => /echo\.out: is a symbolic link(; refused \(never followed\)| \(owner)/.test(daemon.log));
    await waitFor('the periodic check reporting it', () =>
      /echo\.out: is a symbolic link \(owner \d+.*the slice gets nothing through it/.test(daemon.log),
    );
    await waitFor("the call's output dropped", () =>
      /"service":"echo","slice":"v4b".*bytes of output dropped: .*echo\.out/.test(daemon.log),
    );
    assert.ok(lstatSync(out).isSymbolicLink(), 'the planted link is left alone, not replaced');
    // The same on the input side: the daemon never opens or re-owns the link target.
    const input = fifo('v4b', 'echo.in');
    assert.equal((await plant(input)).code, 0);
    await waitFor('the input refusal', () => /echo\.in: is a symbolic link \(owner/.test(daemon.log));
    assert.equal(shadow(), before, '/etc/shadow is untouched');
    const view = await daemon.cliJson<SliceVsysView>(['vsys', 'list', '--slice', 'v4b']);
    assert.deepEqual(Object.keys(view.refused).sort(), ['echo.in', 'echo.out']);
    // Removing the links gives the slice working FIFOs again.
    assert.equal((await asSlice('v4b', `rm ${input} ${out}`)).code, 0);
    await waitFor(
      'FIFOs made again',
      () => existsSync(input) && lstatSync(input).isFIFO() && existsSync(out) && lstatSync(out).isFIFO(),
      5000,
    );
    assert.match((await call('v4b', 'echo', 'back')).stdout, /back$/);
  });

  test('a crashing one-shot script fails that call only; the next call works', async () => {
    install('crash', 'read x; [ "$x" = boom ] && kill -SEGV $$; echo fine', 'v4a\n');
    await waitFor('crash FIFOs', () => existsSync(fifo('v4a', 'crash.in')));
    const crashed = await call('v4a', 'crash', 'boom\n');
    assert.equal(crashed.stdout, '');
    assert.equal(crashed.code, 0, 'the reader still gets EOF');
    await waitFor('the crash in the log', () => /"service":"crash".*call killed by SIGSEGV/.test(daemon.log));
    assert.equal((await call('v4a', 'crash', 'calm\n')).stdout, 'fine\n');
    const cli = await daemon.cli(['vsys', 'call', 'crash'], { input: 'boom\n' });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /crash as v4a: call killed by SIGSEGV/);
    remove('crash');
  });

  test('a hanging script is stopped at the timeout while other slices are served', async () => {
    install('hang', 'sleep 1000.417', 'v4a\n');
    await waitFor('hang FIFOs', () => existsSync(fifo('v4a', 'hang.in')));
    const started = Date.now();
    const hanging = call('v4a', 'hang', 'x');
    await sleep(200);
    const other = await call('v4b', 'echo', 'meanwhile');
    assert.match(other.stdout, /meanwhile$/);
    assert.ok(Date.now() - started < TIMEOUT_MS, 'served while the other call hangs');
    const result = await hanging;
    const took = Date.now() - started;
    assert.equal(result.code, 0, 'the reader gets EOF once the script is stopped');
    assert.ok(took >= TIMEOUT_MS && took < TIMEOUT_MS + 3000, `stopped after the ${TIMEOUT_MS} ms timeout (took ${took} ms)`);
    await waitFor('the timeout in the log', () => /"service":"hang".*stopped after the 1500 ms timeout/.test(daemon.log));
    assert.equal(spawnSync('pgrep', ['-f', 'sleep 1000.417']).status, 1, 'no sleep left behind: the whole process group was killed');
    remove('hang');
  });

  test('a script flooding stdout is cut at the output limit; a slice that never reads stalls nobody else', async () => {
    install('flood', 'exec yes flood', 'v4a\nv4b\n');
    await waitFor('flood FIFOs', () => existsSync(fifo('v4a', 'flood.in')) && existsSync(fifo('v4b', 'flood.in')));
    const bytes = await asSlice('v4a', `: > ${fifo('v4a', 'flood.in')}; timeout 10 cat ${fifo('v4a', 'flood.out')} | wc -c`);
    assert.equal(Number(bytes.stdout.trim()), MAX_OUTPUT);
    await waitFor('the truncation in the log', () =>
      /"service":"flood","slice":"v4a".*output cut at the 65536-byte limit/.test(daemon.log),
    );
    // v4b starts a flood and never opens flood.out: its script blocks on a full pipe.
    const started = Date.now();
    assert.equal((await asSlice('v4b', `: > ${fifo('v4b', 'flood.in')}`)).code, 0);
    const other = await call('v4a', 'echo', 'not stalled');
    assert.match(other.stdout, /not stalled$/);
    assert.ok(Date.now() - started < 1000, `other calls go on (${Date.now() - started} ms)`);
    await waitFor(
      'the unread output dropped',
      () => /"service":"flood","slice":"v4b".*output bytes not read by the slice/.test(daemon.log),
      3 * TIMEOUT_MS + 2000,
    );
    remove('flood');
  });

  test('a script writing to stderr forever is rate-limited in the log and stopped', async () => {
    install('noisy', 'while :; do echo noise >&2; done', 'v4c\n');
    await waitFor('noisy FIFOs', () => existsSync(fifo('v4c', 'noisy.in')));
    const before = logCount(/stderr: noise/);
    const started = Date.now();
    const result = await call('v4c', 'noisy', '');
    assert.equal(result.code, 0);
    const seconds = (Date.now() - started) / 1000;
    await waitFor('the dropped-lines note', () => /"service":"noisy".*stderr lines dropped/.test(daemon.log));
    const logged = logCount(/stderr: noise/) - before;
    // A burst of 50 lines, then 5 per second.
    assert.ok(logged >= 50 && logged <= 50 + Math.ceil(5 * seconds) + 5, `${logged} stderr lines logged in ${seconds.toFixed(1)} s`);
    remove('noisy');
  });

  test('the per-slice concurrency cap queues calls; input beyond the limit ends the call', async () => {
    // Each script notes when it ran (the scripts run as root and may write there).
    const scratch = mkdtempSync(join(tmpdir(), 'sliced-v4-slots-'));
    const names = ['slow1', 'slow2', 'slow3', 'slow4'];
    for (const name of names)
      install(name, `a=$(date +%s%N); sleep 0.4; echo "$a $(date +%s%N)" > ${scratch}/$(basename $0); echo done`, 'v4c\n');
    await waitFor('slow FIFOs', () => names.every((name) => existsSync(fifo('v4c', `${name}.out`))));
    const results = await Promise.all(names.map((name) => call('v4c', name, '')));
    for (const result of results) assert.equal(result.stdout, 'done\n');
    const spans = names.map((name) => readFileSync(join(scratch, name), 'utf8').trim().split(' ').map(Number) as [number, number]);
    rmSync(scratch, { recursive: true });
    // The most scripts running at any moment: at each start, count the spans covering it.
    const overlap = Math.max(...spans.map(([start]) => spans.filter(([s, e]) => s <= start && start < e).length));
    assert.equal(overlap, 2, `at most --vsys-max-calls 2 at once, and the cap was reached: ${JSON.stringify(spans)}`);
    for (const name of names) remove(name);

    install('sink', 'cat > /dev/null; echo swallowed', 'v4c\n');
    await waitFor('sink FIFOs', () => existsSync(fifo('v4c', 'sink.in')));
    const big = await asSlice('v4c', `head -c 200000 /dev/zero > ${fifo('v4c', 'sink.in')}; timeout 5 cat ${fifo('v4c', 'sink.out')}`);
    assert.equal(big.stdout.includes('swallowed'), false, 'the call was stopped, not completed');
    await waitFor('the input limit in the log', () => /"service":"sink".*input over the 65536-byte limit/.test(daemon.log));
    remove('sink');
  });

  test('a stateful service keeps one instance per slice and is restarted with back-off when it dies', async () => {
    install('counter', 'n=0\nwhile read -r line; do n=$((n+1)); echo "$1 $n $line"; done', '#! stateful\nv4a\nv4b\n');
    await waitFor('counter FIFOs', () => existsSync(fifo('v4b', 'counter.in')));
    const talk = (slice: string, lines: string[]): Promise<CliResult> =>
      asSlice(
        slice,
        `exec 3<>${fifo(slice, 'counter.out')}; for l in ${lines.join(' ')}; do echo $l > ${fifo(slice, 'counter.in')}; done; for l in ${lines.join(' ')}; do read -r r <&3; echo "$r"; done`,
      );
    assert.equal((await talk('v4a', ['x', 'y'])).stdout, 'v4a 1 x\nv4a 2 y\n');
    assert.equal((await talk('v4b', ['z'])).stdout, 'v4b 1 z\n', 'each slice has its own instance');
    assert.equal((await talk('v4a', ['w'])).stdout, 'v4a 3 w\n', 'state is kept across writers');
    const instancePid = async (): Promise<number> => {
      const view = await daemon.cliJson<SliceVsysView>(['vsys', 'list', '--slice', 'v4a']);
      return view.services.find((s) => s.service === 'counter')!.pid ?? 0;
    };
    const pid = await instancePid();
    assert.ok(pid > 0);
    // The instance reads and writes the slice's FIFOs itself; requests do not pass through the daemon.
    assert.equal(readlinkSync(`/proc/${pid}/fd/0`), fifo('v4a', 'counter.in'));
    assert.equal(readlinkSync(`/proc/${pid}/fd/1`), fifo('v4a', 'counter.out'));
    assert.match(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), /^\d+:(memory)?:\S*\/v4a\.slice$/m, 'the instance is charged to its slice');
    process.kill(pid, 'SIGKILL');
    // Written while the instance is dead: no EPIPE for the writer; the input waits in the FIFO.
    assert.equal((await talk('v4a', ['during'])).stdout, 'v4a 1 during\n', 'a fresh instance after the restart, fed what waited');
    await waitFor('the restart in the log', () =>
      /"service":"counter","slice":"v4a".*instance \(pid \d+\) ended \(killed by SIGKILL\) after \d+ ms; restarting in 250 ms/.test(
        daemon.log,
      ),
    );
    await waitFor('the new instance in the log', () =>
      /"service":"counter","slice":"v4a".*instance started/.test(daemon.log.split('restarting in 250 ms')[1] ?? ''),
    );

    // The slice removes its FIFO: sliced makes it again and moves the instance to it.
    const before = await instancePid();
    assert.equal((await asSlice('v4a', `rm ${fifo('v4a', 'counter.in')}`)).code, 0);
    await waitFor(
      'the instance moved to the new FIFOs',
      () => /"service":"counter","slice":"v4a".*stopped: the slice's FIFOs were made again/.test(daemon.log),
      6000,
    );
    for (let tries = 0; [0, before].includes(await instancePid()); tries++) {
      assert.ok(tries < 100, 'a new instance within 2 s');
      await sleep(20);
    }
    assert.equal((await talk('v4a', ['new'])).stdout, 'v4a 1 new\n');
    remove('counter');
  });

  test('slicectl vsys list, log and call', async () => {
    const list = await daemon.cli(['vsys', 'list']);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^echo\s+public\s+no\s+v4a\(rw\) v4b\(rw\)$/m);
    const called = await daemon.cli(['vsys', 'call', 'echo', '--slice', 'v4b'], { input: 'via cli' });
    assert.equal(called.code, 0, called.stderr);
    assert.match(called.stdout, /^v4b 1 .*\nvia cli$/);
    const json = JSON.parse((await daemon.cli(['--json', 'vsys', 'call', 'echo', '--slice', 'v4a'], { input: 'j' })).stdout) as {
      exitCode: number;
      output: string;
    };
    assert.equal(json.exitCode, 0);
    assert.match(Buffer.from(json.output, 'base64').toString(), /\nj$/);
    const ambiguous = await daemon.cli(['vsys', 'call', 'echo'], { input: '' });
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.stderr, /give --slice \(it is offered to v4a, v4b\)/);
    const unknown = await daemon.cli(['vsys', 'call', 'nope', '--slice', 'v4a']);
    assert.equal(unknown.code, 3);
    const badName = await daemon.cli(['vsys', 'call', '../x', '--slice', 'v4a']);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /service name "\.\.\/x" must not contain "\/"/);
    const log = await daemon.cli(['vsys', 'log', 'echo', '-n', '3']);
    assert.equal(log.code, 0);
    assert.equal(log.stdout.trim().split('\n').length, 3);
    assert.match(log.stdout, /echo\/v4a: call exit status 0/);
  });

  test('the shipped examples work: echo, the stateful counter, read-file of a root-only file', async () => {
    const examples = join(ROOT, 'examples', 'vsys');
    for (const name of ['echo', 'counter', 'read-file']) {
      const acl = parseAcl(readFileSync(join(examples, `${name}.acl`), 'utf8'));
      assert.deepEqual(acl.problems, [], `${name}.acl parses cleanly`);
      assert.equal(acl.stateful, name === 'counter');
    }
    const secret = mkdtempSync(join(tmpdir(), 'sliced-v4-secret-'));
    const file = join(secret, 'key');
    writeFileSync(file, 'root only\n', { mode: 0o600 });
    const copy = (name: string, as: string, acl: string): void =>
      install(as, readFileSync(join(examples, name), 'utf8').replace(/^#!\/bin\/sh\n/, ''), acl);
    copy('echo', 'x-echo', 'v4a\n');
    copy('counter', 'x-counter', '#! stateful\nv4a\n');
    copy('read-file', 'x-read-file', 'v4a\nv4b\n');
    writeFileSync(join(services, 'x-read-file.conf'), `v4a ${file}\n`, { mode: 0o644 });
    try {
      await waitFor('example FIFOs', () => existsSync(fifo('v4a', 'x-read-file.out')) && existsSync(fifo('v4b', 'x-read-file.in')));
      assert.equal((await call('v4a', 'x-echo', 'ping')).stdout, 'ping');
      const counted = await asSlice(
        'v4a',
        `exec 3<>${fifo('v4a', 'x-counter.out')}; echo a > ${fifo('v4a', 'x-counter.in')}; echo b > ${fifo('v4a', 'x-counter.in')}; read -r x <&3; read -r y <&3; echo "$x|$y"`,
      );
      assert.equal(counted.stdout, '1 a|2 b\n');
      assert.equal((await asSlice('v4a', `cat ${file}`)).code, 1, 'the slice cannot read the file itself');
      assert.equal((await call('v4a', 'x-read-file', `${file}\n`)).stdout, 'root only\n');
      assert.equal((await call('v4b', 'x-read-file', `${file}\n`)).stdout, '', 'not allowed for v4b');
      await waitFor('the refusal on stderr in the log', () => daemon.log.includes(`read-file: ${file} is not allowed for slice v4b`));
    } finally {
      for (const name of ['x-echo', 'x-counter', 'x-read-file']) remove(name);
      rmSync(join(services, 'x-read-file.conf'), { force: true });
      rmSync(secret, { recursive: true, force: true });
    }
  });

  test("the daemon restarted mid-call comes back with every slice's FIFOs intact", async () => {
    install('slow', 'sleep 2.0417; echo late', 'v4a\nv4b\nv4c\n');
    await waitFor('slow FIFOs', () => existsSync(fifo('v4c', 'slow.in')));
    const inodes = (): Record<string, number> => {
      const found: Record<string, number> = {};
      for (const slice of ['v4a', 'v4b', 'v4c']) {
        for (const file of ['slow.in', 'slow.out', 'echo.in', 'echo.out']) {
          if (existsSync(fifo(slice, file))) found[`${slice}/${file}`] = lstatSync(fifo(slice, file)).ino;
        }
      }
      return found;
    };
    const before = inodes();
    assert.equal(Object.keys(before).length, 10);
    const interrupted = call('v4a', 'slow', 'x');
    await waitFor('the slow call running', () => spawnSync('pgrep', ['-f', 'sleep 2.0417']).status === 0);
    await daemon.restart();
    assert.deepEqual(inodes(), before, 'the same FIFOs (inodes) after the restart');
    // The stop ended the script (it would have answered "late"): the caller, blocked opening
    // slow.out for an answer that no longer comes, is released with EOF at once, never
    // waiting out its own `timeout 10` (status 124).
    const cut = await interrupted;
    assert.deepEqual({ code: cut.code, stdout: cut.stdout }, { code: 0, stdout: '' }, `the interrupted call: ${cut.stderr}`);
    assert.equal(spawnSync('pgrep', ['-f', 'sleep 2.0417']).status, 1, 'no script of the stopped daemon runs on');
    for (const slice of ['v4a', 'v4b']) assert.match((await call(slice, 'echo', `after ${slice}`)).stdout, new RegExp(`after ${slice}$`));
    remove('slow');
    for (const slice of ['v4a', 'v4b', 'v4c']) {
      await waitFor(`slow FIFOs of ${slice} removed`, () => !existsSync(fifo(slice, 'slow.in')), 1000);
    }
  });

  test('deleting a slice stops its scripts, even one that ignores SIGTERM and keeps restarting, and removes its vsys directory', async () => {
    install('stubborn', 'trap "" TERM; while read -r l; do echo "$l"; done', '#! stateful\nv4c\n');
    await waitFor('the stubborn instance', () => /"service":"stubborn","slice":"v4c".*instance started/.test(daemon.log));
    const groups = await KernelGroups.of(daemon);
    // The log line comes at spawn; the instance joins the slice's groups right after.
    const instance = await waitFor("the stateful instance in the slice's group", () => {
      const procs = groups.procs('v4c.slice');
      return procs.length > 0 ? procs : null;
    });
    const deleted = await daemon.cli(['slice', 'delete', 'v4c']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(existsSync(join(root, 'v4c')), false);
    assert.deepEqual(groups.existingDirs('v4c.slice'), [], "the slice's groups are gone from every hierarchy");
    for (const pid of instance)
      assert.equal(
        existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'),
        false,
        `the script's process ${pid} was stopped`,
      );
    remove('stubborn');
  });
});

describe('vsys services directory', { skip: skip ?? false }, () => {
  test('a services directory others can write is refused with a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-v4-open-'));
    chmodSync(dir, 0o777);
    try {
      const result = await run(process.execPath, [
        SLICED,
        '--state-dir',
        join(dir, 'state'),
        '--run-dir',
        join(dir, 'run'),
        '--cgroup-root',
        `sliced-v4open${process.pid}`,
        '--vsys-dir',
        dir,
      ]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`vsys services directory ${dir} has mode 0777; it must not be writable by group or others`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await run(process.execPath, [
        SLICED,
        '--state-dir',
        join(dir, 'state'),
        '--run-dir',
        join(dir, 'run'),
        '--cgroup-root',
        `sliced-v4open${process.pid}`,
        '--cleanup',
      ]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
