/**
 * packaging/sliced.service and `scripts/install --systemd-unit`: the unit's settings (why
 * each: README, "sliced under systemd"), systemd's own check of it (systemd-analyze verify),
 * and the installer writing it with ExecStart at the sliced it installs, enabling nothing,
 * refusing a unit file it did not write and removing only its own.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';
import { commandSkipReason, skipWithoutKernel } from '../helpers/env.js';

const UNIT = join(ROOT, 'packaging', 'sliced.service');
const MARKER = "# Installed by sliced's scripts/install from packaging/sliced.service.";

/** [Service] and [Unit] settings of a unit file, each key with its values in order. */
function settings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) out.set(match[1]!, [...(out.get(match[1]!) ?? []), match[2]!]);
  }
  return out;
}

/** systemd's version, e.g. 252, or null without systemd. */
function systemdVersion(): number | null {
  const result = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  const match = /^systemd (\d+)/.exec(result.stdout ?? '');
  return match ? Number(match[1]) : null;
}

/** `systemd-analyze verify` of a unit file: its complaints, minus the one expected before systemd 254. */
function verify(file: string): string[] {
  const result = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 60_000 });
  const lines = `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.trim() !== '');
  // DelegateSubgroup= arrived in systemd 254; older versions ignore it with this warning.
  return lines.filter(
    (l) => !((systemdVersion() ?? 0) < 254 && /Unknown key( name)? '?DelegateSubgroup'? in section '?\[?Service\]?'?, ignoring/.test(l)),
  );
}

describe('the systemd unit', () => {
  test('packaging/sliced.service: Delegate=yes, the supervisor subgroup, KillMode=process, Restart=on-failure, root, the installed sliced', () => {
    const unit = settings(readFileSync(UNIT, 'utf8'));
    assert.deepEqual(unit.get('ExecStart'), ['/usr/local/bin/sliced'], 'the path scripts/install links sliced to');
    assert.deepEqual(unit.get('Delegate'), ['yes']);
    assert.deepEqual(unit.get('DelegateSubgroup'), ['supervisor'], 'the leaf sliced itself uses');
    assert.deepEqual(unit.get('KillMode'), ['process'], 'stopping sliced must not kill the slices in its subgroups');
    assert.deepEqual(unit.get('Restart'), ['on-failure']);
    assert.deepEqual(unit.get('Type'), ['exec']);
    assert.ok(unit.get('After')?.[0]?.split(' ').includes('nftables.service'), 'after nftables.service, which replaces the whole ruleset');
    assert.deepEqual(unit.get('WantedBy'), ['multi-user.target']);
    for (const key of ['User', 'Group', 'DynamicUser']) assert.equal(unit.has(key), false, `no ${key}=: sliced runs as root`);
    // Commands other than ExecStart= would run in a ".control" subgroup systemd makes in the delegated group.
    for (const key of ['ExecReload', 'ExecStop', 'ExecStopPost', 'ExecStartPost']) assert.equal(unit.has(key), false, `no ${key}=`);
  });

  test('systemd-analyze verify finds nothing wrong with it', (t) => {
    const reason = commandSkipReason('systemd-analyze', 'systemd');
    if (reason !== null) {
      process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'sliced-sb2-unit-'));
    try {
      // verify also checks that ExecStart= names an executable: point it at one that exists.
      const file = join(dir, 'sliced.service');
      writeFileSync(file, readFileSync(UNIT, 'utf8').replace(/^ExecStart=.*$/m, `ExecStart=${process.execPath}`));
      assert.deepEqual(verify(file), []);
      writeFileSync(file, readFileSync(UNIT, 'utf8').replace(/^KillMode=.*$/m, 'KillMode=bogus'));
      assert.ok(
        verify(file).some((l) => /kill mode/i.test(l)),
        'the check does report a bad setting',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('scripts/install --systemd-unit writes the unit with ExecStart at the installed sliced, enables nothing, and --uninstall removes only its own', (t) => {
    if (
      skipWithoutKernel(
        t,
        process.env.SLICED_IN_V2_VM === '1'
          ? "scripts/install builds and copies the package, minutes under the VM's emulation; tested on the host"
          : null,
      )
    )
      return;
    const dir = mkdtempSync(join(tmpdir(), 'sliced-sb2-install-'));
    chmodSync(dir, 0o755);
    const prefix = join(dir, 'lib', 'sliced');
    const bin = join(dir, 'bin');
    const units = join(dir, 'units');
    const install = (...args: string[]) =>
      spawnSync(join(ROOT, 'scripts', 'install'), ['--prefix', prefix, '--bin-dir', bin, '--unit-dir', units, ...args], {
        encoding: 'utf8',
        timeout: 600_000,
      });
    try {
      const first = install('--systemd-unit');
      assert.equal(first.status, 0, first.stderr);
      const file = join(units, 'sliced.service');
      const text = readFileSync(file, 'utf8');
      assert.equal(text.split('\n')[0], MARKER);
      assert.deepEqual(settings(text).get('ExecStart'), [join(bin, 'sliced')]);
      assert.equal(
        text.slice(MARKER.length + 1),
        readFileSync(UNIT, 'utf8').replace(/^ExecStart=.*$/m, `ExecStart=${join(bin, 'sliced')}`),
        'the rest as packaged',
      );
      assert.match(first.stdout, /systemctl daemon-reload\n/);
      assert.match(first.stdout, /systemctl enable --now sliced\.service/);
      assert.deepEqual(readdirSync(units), ['sliced.service'], 'nothing enabled (no .wants link)');
      if (commandSkipReason('systemd-analyze', 'systemd') === null)
        assert.deepEqual(verify(file), [], 'systemd accepts the installed unit, its ExecStart included');

      const again = install('--systemd-unit');
      assert.equal(again.status, 0, `an upgrade rewrites its own unit: ${again.stderr}`);

      const removed = install('--uninstall', '--systemd-unit');
      assert.equal(removed.status, 0, removed.stderr);
      assert.match(removed.stdout, /systemctl daemon-reload/);
      assert.equal(existsSync(file), false);
      assert.equal(existsSync(join(bin, 'sliced')), false);

      writeFileSync(file, '[Service]\nExecStart=/bin/true\n');
      const foreign = install('--systemd-unit');
      assert.equal(foreign.status, 1);
      assert.match(foreign.stderr, /sliced\.service exists and was not installed by this script/);
      assert.equal(readFileSync(file, 'utf8'), '[Service]\nExecStart=/bin/true\n', 'left alone');
      assert.equal(install('--uninstall', '--systemd-unit').status, 0);
      assert.ok(existsSync(file), 'a unit file it did not write is not removed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
