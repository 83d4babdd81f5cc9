/**
 * The state directory on a filesystem a slice can fill (as when it shares one with /tmp): a
 * small tmpfs the test mounts (sliced-dk-disk-*, unmounted and removed also on failure)
 * holds a world-writable sticky tmp/ and the daemon's state directory. A slice fills it; a
 * change is refused naming ENOSPC; status and metrics show the space and the failure; attach
 * and exec still work; once the slice removes its file the daemon stores and accepts changes
 * again by itself, without a restart;
 * after a crash every acknowledged change is there and the log holds only whole records.
 * The daemon's log file is on the same filesystem and must not take the daemon down.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLICED, TestDaemon, freePort, run } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import type { SliceView, StateView } from '../../src/wire/slices.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/state-disk: ${skip}\n`);

const SIZE = 8 * 1024 * 1024;
const SLICES = ['dka', 'dkb', 'dkc', 'dkfill'];

interface Status {
  node: { state: StateView };
}

describe('a full filesystem under the state directory', { skip: skip ?? false }, () => {
  test('a slice fills it: changes are refused naming ENOSPC, then accepted again by themselves once there is space; a crash loses nothing acknowledged', async (t) => {
    const base = mkdtempSync(join(tmpdir(), 'sliced-dk-disk-'));
    chmodSync(base, 0o755);
    const mnt = join(base, 'fs');
    mkdirSync(mnt);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE},mode=0755`, 'sliced-dk-disk', mnt], { encoding: 'utf8' });
    assert.equal(mounted.status, 0, `mount tmpfs: ${mounted.stderr}`);
    let daemon: TestDaemon | null = null;
    let destroyFailure: unknown = null;
    let unmounted: ReturnType<typeof spawnSync> | null = null;
    try {
      const shared = join(mnt, 'tmp');
      mkdirSync(shared);
      chmodSync(shared, 0o1777); // like /tmp
      const state = join(mnt, 'state');
      const port = await freePort();
      // The log file too, as `sliced --demo` puts it in the state directory.
      const logFile = join(mnt, 'sliced.log');
      daemon = await TestDaemon.start(['--state-dir', state, '--metrics-port', String(port), '--log-file', logFile]);
      const d = daemon;
      const ok = async (args: string[]): Promise<void> => {
        const r = await d.cli(args);
        assert.equal(r.code, 0, `slicectl ${args.join(' ')}: ${r.stderr}`);
      };
      const status = async (): Promise<StateView> => (await d.cliJson<Status>(['status', '--once'])).node.state;
      const metric = async (name: string): Promise<number> => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
        assert.ok(line, `${name} in the metrics`);
        return Number(line[1]);
      };

      await ok(['slice', 'create', 'dkfill']);
      await ok(['slice', 'create', 'dka']);
      let view = await status();
      assert.equal(view.dir, state);
      assert.equal(view.totalBytes, SIZE);
      assert.ok(view.freeBytes! > SIZE / 2, `free ${view.freeBytes}`);
      assert.equal(view.writable, true);
      assert.equal(await metric('sliced_state_filesystem_size_bytes'), SIZE);
      assert.equal(await metric('sliced_state_store_writable'), 1);

      // The slice's user fills the shared filesystem, as any tenant can fill /tmp.
      const fill = await d.cli(['exec', '--slice', 'dkfill', '--', 'dd', 'if=/dev/zero', `of=${join(shared, 'fill')}`, 'bs=64k']);
      assert.notEqual(fill.code, 0);
      assert.match(fill.stderr, /No space left on device/);
      view = await status();
      assert.ok(view.freeBytes! < 64 * 1024, `free after the fill: ${view.freeBytes}`);

      // The log's last page may still take a few records; the first that does not fit is refused.
      let acknowledged = 100;
      let refusal = '';
      for (let shares = 101; shares < 200 && !refusal; shares++) {
        const r = await d.cli(['slice', 'set', 'dka', '--cpu-shares', String(shares)]);
        if (r.code === 0) acknowledged = shares;
        else refusal = r.stderr;
      }
      t.diagnostic(`refused after ${acknowledged - 100} more changes: ${refusal.trim()}`);
      assert.match(refusal, /state store .* cannot write its log: no space left on its filesystem \(ENOSPC; /);
      assert.match(refusal, /sliced stores it by itself once it can write again/);
      const create = await d.cli(['slice', 'create', 'dkb']);
      assert.equal(create.code, 1);
      assert.match(
        create.stderr,
        /changes are refused while the desired state cannot be stored: .*ENOSPC.*accepts changes again by itself/,
      );
      assert.equal(spawnSync('id', ['sl-dkb']).status, 1, 'the refused slice has no user');
      view = await status();
      assert.equal(view.writable, false);
      assert.match(view.error!, /ENOSPC/);
      assert.equal(await metric('sliced_state_store_writable'), 0);
      assert.ok((await metric('sliced_state_filesystem_free_bytes')) < 64 * 1024);
      const text = await d.cli(['status', '--once']);
      assert.match(text.stdout, new RegExp(`^state: ${state}, \\S+ of 8M free; NOT WRITABLE since .*ENOSPC`, 'm'));

      // Space comes back; no change and no restart: the daemon stores the state by itself.
      t.diagnostic(`status: ${text.stdout.split('\n')[1]}`);

      // What stores nothing goes on: a process is attached, and the tenant's own command frees the space.
      const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        const attached = await d.cli(['attach', 'dka', String(sleeper.pid)]);
        assert.equal(attached.code, 0, `attach while the store fails: ${attached.stderr}`);
        const groups = await KernelGroups.of(d);
        assert.deepEqual(
          groups.missingFrom('dka.slice', sleeper.pid!),
          [],
          "the attached process is in the slice's group of every hierarchy",
        );
        assert.deepEqual(groups.misplaced(readFileSync(`/proc/${sleeper.pid}/cgroup`, 'utf8'), 'dka.slice'), []);
      } finally {
        sleeper.kill('SIGKILL');
      }
      await ok(['exec', '--slice', 'dkfill', '--', 'rm', join(shared, 'fill')]);
      const freed = Date.now();
      const deadline = freed + 15_000;
      while (!(await status()).writable && Date.now() < deadline) await sleep(100);
      assert.equal((await status()).writable, true, 'the store writes again without a restart');
      t.diagnostic(`writable again ${Date.now() - freed} ms after the space was freed`);
      assert.equal(await metric('sliced_state_store_writable'), 1);
      assert.match(d.log, /sliced: cannot write the log file .*sliced\.log: ENOSPC/, 'stderr says once that log lines wait');
      await ok(['slice', 'create', 'dkc']); // a log line after the space came back flushes the ones that waited
      assert.match(
        readFileSync(logFile, 'utf8'),
        /"msg":"state store write failed; changes are refused until it can write again[^\n]*\n(.*\n)*.*"msg":"state store writes again/,
      );
      await ok(['slice', 'set', 'dka', '--cpu-shares', '777']);
      acknowledged = 777;

      // The log holds whole, checksummed records only.
      const log = readFileSync(join(state, 'wal.log'), 'utf8');
      assert.ok(log.endsWith('\n'), 'the log ends with a whole record');
      for (const line of log.split('\n').slice(0, -1))
        assert.equal(line.slice(0, 8), crc32(line.slice(9)).toString(16).padStart(8, '0'), `record ${line.slice(0, 60)}`);

      await d.restart('SIGKILL');
      const slices = await d.cliJson<SliceView[]>(['slice', 'list']);
      assert.deepEqual(
        slices.map((s) => s.name),
        ['dka', 'dkc', 'dkfill'],
      );
      assert.equal(slices.find((s) => s.name === 'dka')!.cpu.shares, acknowledged);
      assert.equal((await status()).writable, true);
      await ok(['slice', 'delete', 'dka']);
      await ok(['slice', 'delete', 'dkc']);
      await ok(['slice', 'delete', 'dkfill']);
    } finally {
      try {
        await daemon?.destroy();
      } catch (err) {
        // A state log the daemon cannot read (as the code before this fix left it) must not
        // leave groups, network objects or users behind: clean up without it.
        process.stderr.write(`state-disk: ${(err as Error).message}; cleaning up without the state\n`);
        const empty = join(base, 'empty-state');
        await run(process.execPath, [SLICED, ...daemon!.args, '--state-dir', empty, '--cleanup']);
        for (const slice of SLICES) spawnSync('userdel', [`sl-${slice}`]);
        destroyFailure = err;
      }
      unmounted = spawnSync('umount', [mnt], { encoding: 'utf8' });
      rmSync(base, { recursive: true, force: true });
    }
    // Reached only when the test itself passed: its clean-up must have worked too.
    if (destroyFailure) throw destroyFailure;
    assert.equal(unmounted?.status, 0, `umount ${mnt}: ${unmounted?.stderr}`);
  });
});
