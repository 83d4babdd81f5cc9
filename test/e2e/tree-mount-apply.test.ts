/**
 * Issue 11, items 7 and 9, through a real daemon.
 *
 * 7: one write to the FUSE mount at a huge offset killed the daemon, and the restart then
 *    failed on the dead mount (ENOTCONN). The daemon must survive with the old value, and a
 *    daemon SIGKILLed with the mount active must start again on the same --mount.
 * 9: dump and apply must round-trip after process-set members' processes end; a dry run
 *    reports what apply would refuse; undo never fails on members that vanished; a plan
 *    that removes /schedulers/cpu (the daemon's own control loop) warns and needs --force.
 *
 * Slices here are named fu* (tests run in parallel with other suites on one machine).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { TestDaemon, type CliResult } from '../helpers/daemon.js';
import { fuseSkipReason, kernelSkipReason, slicedMounted, SLOW } from '../helpers/env.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/tree-mount-apply: ${skip}\n`);

async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs * SLOW;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const fuseSkip = skip ?? fuseSkipReason();
if (fuseSkip && !skip) process.stderr.write(`SKIP e2e/tree-mount-apply FUSE: ${fuseSkip}\n`);

describe('the FUSE mount survives hostile writes and a crashed daemon', { skip: fuseSkip ?? false }, () => {
  let daemon: TestDaemon;
  let dir: string;
  let mnt: string;
  const PERIOD = () => join(mnt, 'probes', 'slice_usage', 'probe_period');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sliced-fu-mnt-'));
    chmodSync(dir, 0o755);
    mnt = join(dir, 'tree');
    mkdirSync(mnt);
    daemon = await TestDaemon.start(['--mount', mnt]);
    await waitFor('the mount', () => existsSync(join(mnt, 'probes')));
  });

  after(async () => {
    try {
      await daemon?.destroy(); // sliced --cleanup removes a mount left behind
    } finally {
      // Last resort, for a daemon that died mid-test: only our own mount at exactly that path.
      if (mnt && slicedMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { timeout: 5000 });
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(slicedMounted(mnt), false, `${mnt} is still mounted`);
  });

  const dd = (args: string[]) => spawnSync('dd', args, { input: '5', encoding: 'utf8', timeout: 30_000 });

  test('dd at offset 600000000 into an attribute is refused (EFBIG); the daemon lives on and the value is unchanged', async () => {
    const before = readFileSync(PERIOD(), 'utf8');
    assert.match(before, /^\d+\n$/);
    // The command verbatim (dd first truncates to the offset, then writes there)...
    const verbatim = dd([`of=${PERIOD()}`, 'bs=1', 'count=1', 'seek=600000000']);
    assert.notEqual(verbatim.status, 0, verbatim.stderr);
    assert.match(verbatim.stderr, /File too large/);
    // ...and without the truncate, so the write itself reaches the daemon at that offset.
    const write = dd([`of=${PERIOD()}`, 'bs=1', 'count=1', 'seek=600000000', 'conv=notrunc']);
    assert.notEqual(write.status, 0, write.stderr);
    assert.match(write.stderr, /File too large/);
    // A write just past the limit (one page) is refused the same way; one inside it is validated as usual.
    const page = dd([`of=${PERIOD()}`, 'bs=1', 'count=1', 'seek=4096', 'conv=notrunc']);
    assert.match(page.stderr, /File too large/);
    const hole = dd([`of=${PERIOD()}`, 'bs=1', 'count=1', 'seek=4000', 'conv=notrunc']);
    assert.match(hole.stderr, /Invalid argument/);
    // A read far past the end returns nothing rather than failing.
    const read = spawnSync('dd', [`if=${PERIOD()}`, 'bs=1', 'count=1', 'skip=600000000'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(read.status, 0, read.stderr);
    assert.equal(read.stdout, '');

    assert.ok(
      daemon.pid !== undefined && spawnSync('kill', ['-0', String(daemon.pid)]).status === 0,
      `the daemon died:\n${daemon.log.slice(-2000)}`,
    );
    assert.equal((await daemon.api.get<{ value: string }>('/v1/tree/cat?path=/probes/slice_usage/probe_period')).value, before);
    assert.equal(readFileSync(PERIOD(), 'utf8'), before, 'the attribute keeps its old value');
    // An ordinary write still works afterwards.
    writeFileSync(PERIOD(), '700\n');
    assert.equal(readFileSync(PERIOD(), 'utf8'), '700\n');
    writeFileSync(PERIOD(), before);
    // The daemon says why (the log reaches us through a pipe, so give it a moment).
    await waitFor('the refusal in the log', () => /write refused: an attribute holds at most 4096 bytes/.test(daemon.log));
  });

  test('a daemon SIGKILLed with the mount active starts again on the same --mount, and the mount works', async () => {
    const value = readFileSync(PERIOD(), 'utf8');
    await daemon.stop('SIGKILL');
    assert.ok(slicedMounted(mnt), 'the dead mount is left behind by the kill');
    assert.throws(() => statSync(mnt), /ENOTCONN/, 'the mount point is dead until unmounted');
    daemon.log = '';
    await daemon.launch();
    await waitFor('the mount', () => existsSync(join(mnt, 'probes')));
    assert.match(daemon.log, /removed a stale sliced mount left by an earlier daemon/);
    assert.equal(readFileSync(PERIOD(), 'utf8'), value);
    assert.deepEqual(readdirSync(mnt).sort(), ['domains', 'nodes', 'probes', 'schedulers', 'slices']);
    writeFileSync(PERIOD(), '900\n');
    assert.equal((await daemon.api.get<{ value: string }>('/v1/tree/cat?path=/probes/slice_usage/probe_period')).value, '900\n');
  });
});

describe('dump and apply round-trip when process-set members end', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let dir: string;
  const children: ChildProcess[] = [];
  const ctl = (args: string[], input?: string): Promise<CliResult> => daemon.cli(args, input === undefined ? {} : { input });
  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await ctl(args, input);
    assert.equal(r.code, 0, `slicectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  /** A process in a session of its own (its pid is the session id). */
  const sessionLeader = (): ChildProcess => {
    const child = spawn('sleep', ['300'], { stdio: 'ignore', detached: true });
    children.push(child);
    return child;
  };
  const end = async (child: ChildProcess): Promise<void> => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    await waitFor(`process ${child.pid} to be gone`, () => !existsSync(`/proc/${child.pid}`));
  };
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sliced-fu-doc-'));
    daemon = await TestDaemon.start();
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    try {
      await daemon?.destroy();
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the dump names only members that exist, and applying it succeeds', async () => {
    const session = sessionLeader();
    const single = sessionLeader();
    await ok(['slice', 'create', 'fuweb']);
    await ok([
      'mkdir',
      '/schedulers/fuS',
      `/schedulers/fuS/process_set/process_sessions/${session.pid}`,
      `/schedulers/fuS/process_set/single_processes/${single.pid}`,
      '/schedulers/fuS/process_set/slices/fuweb',
    ]);
    const alive = parseYaml(await ok(['dump'])) as any;
    assert.deepEqual(alive.schedulers.fuS.process_set, {
      single_processes: [single.pid],
      process_sessions: [session.pid],
      slices: ['fuweb'],
    });
    await end(session);
    await end(single);
    await ok(['slice', 'delete', 'fuweb']);

    const dump = await ok(['dump']);
    const doc = parseYaml(dump) as any;
    assert.deepEqual(doc.schedulers.fuS, {}, `members that ended are not in the dump:\n${dump}`);
    const path = file('ended.yaml', dump);
    const dry = await ctl(['apply', '--dry-run', path]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.doesNotMatch(dry.stderr, /error/);
    const applied = await ctl(['apply', path]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, new RegExp(`rmdir /schedulers/fuS/process_set/process_sessions/${session.pid}`));
    assert.match(await ok(['apply', path]), /already matches/);
    assert.equal(await ok(['dump']), dump);
    await ok(['rmdir', '/schedulers/fuS']);
  });

  test("a dry run reports what apply would refuse, naming the step, with apply's exit status; apply then changes nothing", async () => {
    const gone = sessionLeader();
    await end(gone);
    const before = await ok(['dump']);
    const doc = parseYaml(before) as any;
    doc.schedulers.fuT = { process_set: { process_sessions: [gone.pid] } };
    doc.probes.slice_usage.probe_period = 'banana';
    const path = file('bad.yaml', stringifyYaml(doc));
    const dry = await ctl(['apply', '--dry-run', path]);
    assert.equal(dry.code, 3, `ESRCH comes first, as apply reports it: ${dry.stdout}${dry.stderr}`);
    assert.match(dry.stdout, new RegExp(`would run:[^]*mkdir /schedulers/fuT/process_set/process_sessions/${gone.pid}`));
    assert.match(
      dry.stderr,
      new RegExp(
        `error: step \\d+ of \\d+ \\(mkdir /schedulers/fuT/process_set/process_sessions/${gone.pid}\\) would fail: session ${gone.pid} has no processes`,
      ),
    );
    assert.match(
      dry.stderr,
      /error: step \d+ of \d+ \(write \/probes\/slice_usage\/probe_period = banana\) would fail: probe_period "banana" is not allowed/,
    );
    const applied = await ctl(['apply', path]);
    assert.equal(applied.code, 3, applied.stderr);
    assert.match(
      applied.stderr,
      new RegExp(
        `step \\d+ of \\d+ \\(mkdir /schedulers/fuT/process_set/process_sessions/${gone.pid}\\) failed: session ${gone.pid} has no processes.*; nothing was changed`,
      ),
    );
    assert.doesNotMatch(applied.stderr, /undoing/);
    assert.equal(await ok(['dump']), before, 'nothing changed');
  });

  test('a failed apply undoes the removal of a member whose process ended, without an undo failure', async () => {
    const single = sessionLeader();
    await ok(['mkdir', '/schedulers/fuU', `/schedulers/fuU/process_set/single_processes/${single.pid}`]);
    await end(single);
    const tree = async (): Promise<string> => (await ok(['tree', '/schedulers'])).trim();
    const before = await tree();
    const doc = parseYaml(await ok(['dump'])) as any;
    delete doc.schedulers.fuU.process_set; // the member, which the plan removes first
    // A rule between two attributes (low <= high) that only the filter sees when applied.
    doc.schedulers.fuV = { echo_policy: { node_load: { hysteresis: { high: 10, low: 50 } } } };
    const path = file('undo.yaml', stringifyYaml(doc));
    const applied = await ctl(['apply', path]);
    assert.equal(applied.code, 1, applied.stderr);
    assert.match(applied.stderr, /hysteresis\/low = 50\) failed: .*low 50 must not be above high 10; nothing was changed/);
    assert.doesNotMatch(applied.stderr, /undoing the earlier steps also failed/);
    assert.equal(await tree(), before, 'the tree is exactly as before, the ended member included');
    assert.match(before, new RegExp(`${single.pid}`));
    await ok(['rmdir', `/schedulers/fuU/process_set/single_processes/${single.pid}`, '/schedulers/fuU']);
  });

  test('a plan that removes /schedulers/cpu warns in the dry run and needs --force', async () => {
    const original = await ok(['dump']);
    const doc = parseYaml(original) as any;
    delete doc.schedulers.cpu;
    const path = file('no-cpu.yaml', stringifyYaml(doc));
    const dry = await ctl(['apply', '--dry-run', path]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /warning: the plan removes \/schedulers\/cpu, the daemon's own CPU control loop/);
    assert.match(dry.stdout, /rmdir \/schedulers\/cpu\n/);
    const refused = await ctl(['apply', path]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /removes \/schedulers\/cpu.*nothing was changed \(confirm with slicectl apply --force/);
    assert.equal(await ok(['dump']), original);
    const forced = await ctl(['apply', '--force', path]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning: the plan removes \/schedulers\/cpu/);
    assert.equal((await ctl(['ls', '/schedulers/cpu'])).code, 3, 'gone');
    // Putting it back needs no confirmation, and the loop runs again.
    const back = await ctl(['apply', file('original.yaml', original)]);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stderr, '');
    assert.equal(await ok(['dump']), original);
    await waitFor(
      'the control loop to run',
      async () => JSON.parse(await ok(['cat', '/schedulers/cpu/entitlement/status'])).activations > 0,
    );
  });
});
