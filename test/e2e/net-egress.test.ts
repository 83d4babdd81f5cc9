/**
 * Egress NAT and tun devices on the real kernel. The "outside world" is a namespace the test
 * makes, reachable from the host over its own veth pair (a /30 of the test daemon's range),
 * so nothing leaves the machine: a slice with egress reaches it, masqueraded behind the
 * host's address; a slice without egress does not (the daemon's forward filter drops it).
 * net.ipv4.ip_forward is on only while a slice has egress and restored afterwards.
 * A slice with --net-tun on gets tun0 in its namespace, which its own user can attach to.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestDaemon, type CliResult } from '../helpers/daemon.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { Scripts, leftovers, netSkipReason, readSysctl } from '../helpers/net.js';

const skip = kernelSkipReason() ?? netSkipReason();
if (skip) process.stderr.write(`SKIP e2e/net-egress: ${skip}\n`);

function sh(args: string[]): void {
  const result = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${args.join(' ')}: ${result.stderr}`);
}

describe('egress and tun', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let scripts: Scripts;
  let forwardBefore: string;
  let outsideNs: string;
  let uplink: string;
  let hostSide: string;
  let outsideAddress: string;
  let server: ChildProcess | null = null;
  let serverLog = '';

  before(async () => {
    forwardBefore = readSysctl('net.ipv4.ip_forward');
    scripts = new Scripts();
    daemon = await TestDaemon.start();
    // A private /30 for the "outside", clear of every test daemon's pool (10.200-249.x).
    const outsideNet = `10.199.${process.pid % 250}`;
    hostSide = `${outsideNet}.1`;
    outsideAddress = `${outsideNet}.2`;
    outsideNs = `n5out-${daemon.net.tag}`;
    uplink = `n5up${daemon.net.tag}`;
    sh(['ip', 'netns', 'add', outsideNs]);
    sh(['ip', 'link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs]);
    sh(['ip', 'addr', 'add', `${hostSide}/30`, 'dev', uplink]);
    sh(['ip', 'link', 'set', uplink, 'up']);
    sh(['ip', '-n', outsideNs, 'addr', 'add', `${outsideAddress}/30`, 'dev', 'eth0']);
    sh(['ip', '-n', outsideNs, 'link', 'set', 'eth0', 'up']);
    // The outside namespace has no route beyond its /30: answers can only go to the host.
    server = spawn(
      'nsenter',
      [`--net=/run/netns/${outsideNs}`, process.execPath, scripts.path('udp-server.mjs'), '4', outsideAddress, '5353', 'outside'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    server.stdout!.on('data', (d: Buffer) => (serverLog += d.toString()));
    const deadline = Date.now() + 5000 * SLOW;
    while (!serverLog.includes('listening') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const args of [
      ['n5e', '--net', '--net-egress', 'on'],
      ['n5f', '--net'],
      ['n5t', '--net', '--net-tun', 'on'],
    ]) {
      const result = await daemon.cli(['slice', 'create', ...args]);
      assert.equal(result.code, 0, result.stderr);
    }
  });

  after(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    spawnSync('ip', ['link', 'del', uplink]);
    spawnSync('ip', ['netns', 'del', outsideNs]);
    const tag = daemon.net.tag;
    await daemon.destroy();
    scripts.remove();
    assert.deepEqual(leftovers(tag), []);
    assert.equal(readSysctl('net.ipv4.ip_forward'), forwardBefore, 'net.ipv4.ip_forward was not restored');
  });

  test('a slice with egress reaches the outside, masqueraded; one without egress does not', async () => {
    assert.equal(readSysctl('net.ipv4.ip_forward'), '1', 'egress needs forwarding while a slice has it');
    const ask = ['udp-ask.mjs', '4', outsideAddress, '5353'];
    const withEgress = await daemon.cli([
      'exec',
      '--slice',
      'n5e',
      '--',
      process.execPath,
      scripts.path(ask[0]!),
      ...ask.slice(1),
      'from-n5e',
    ]);
    assert.equal(withEgress.stdout.trim(), 'answer outside:from-n5e', withEgress.stderr);
    assert.match(serverLog, new RegExp(`got from-n5e from ${hostSide.replaceAll('.', '\\.')}`), 'not masqueraded behind the host');
    const without = await daemon.cli([
      'exec',
      '--slice',
      'n5f',
      '--',
      process.execPath,
      scripts.path(ask[0]!),
      ...ask.slice(1),
      'from-n5f',
    ]);
    assert.equal(without.stdout.trim(), 'timeout');
    assert.doesNotMatch(serverLog, /from-n5f/);
  });

  test('turning egress off takes it away at once and restores net.ipv4.ip_forward', async () => {
    assert.equal((await daemon.cli(['slice', 'set', 'n5e', '--net-egress', 'off'])).code, 0);
    const result = await daemon.cli([
      'exec',
      '--slice',
      'n5e',
      '--',
      process.execPath,
      scripts.path('udp-ask.mjs'),
      '4',
      outsideAddress,
      '5353',
      'after-off',
    ]);
    assert.equal(result.stdout.trim(), 'timeout');
    assert.equal(readSysctl('net.ipv4.ip_forward'), forwardBefore);
  });

  test("tun0 exists in the slice's namespace, owned by its user, who can attach to it", async () => {
    const uid = (await daemon.cliJson<{ uid: number }>(['slice', 'show', 'n5t'])).uid;
    const details = await daemon.cli(['exec', '--slice', 'n5t', '--', 'ip', '-d', 'link', 'show', 'tun0']);
    assert.equal(details.code, 0, details.stderr);
    assert.match(details.stdout, new RegExp(`tun type tun .*user (${uid}|sl-n5t)`));
    // Debian makes /dev/net/tun 0666; some machines keep it root-only, and sliced does not
    // change host devices. There the test opens its own node of the same device (10:200,
    // mode 0666, removed afterwards): the kernel's owner check on tun0 is what is tested.
    let tunPath = '/dev/net/tun';
    let privateDir: string | null = null;
    if ((statSync(tunPath).mode & 0o006) !== 0o006) {
      privateDir = mkdtempSync(join(tmpdir(), 'sliced-tun-'));
      chmodSync(privateDir, 0o755);
      tunPath = join(privateDir, 'tun');
      const made = spawnSync('mknod', ['-m', '666', tunPath, 'c', '10', '200'], { encoding: 'utf8' });
      assert.equal(made.status, 0, `mknod of a private tun node failed: ${made.stderr}`);
    }
    try {
      // TUNSETIFF on tun0 (IFF_TUN | IFF_NO_PI); perl is in every Debian base system.
      const attach = `open(my $fh, "+<", "${tunPath}") or die "open: $!"; my $ifr = pack("Z16 s x22", "tun0", 0x1001); ioctl($fh, 0x400454ca, $ifr) or die "ioctl: $!"; print "attached $<\\n";`;
      const result = await daemon.cli(['exec', '--slice', 'n5t', '--', 'perl', '-e', attach]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), `attached ${uid}`);
      // Another slice's user gets no tun device: it has none, and making one needs CAP_NET_ADMIN.
      // The kernel's answer, not any failure (a missing perl or device node would fail too):
      // TUNSETIFF on a name with no device of its own asks to create one, which needs CAP_NET_ADMIN.
      const foreign = await daemon.cli(['exec', '--slice', 'n5f', '--', 'perl', '-e', attach]);
      assert.equal(foreign.code, 1, `a slice attached to a tun0 that is not its own: ${foreign.stdout}`);
      assert.match(foreign.stderr, /^ioctl: Operation not permitted at -e line 1\.$/m, 'the kernel refused TUNSETIFF (EPERM)');
    } finally {
      if (privateDir) rmSync(privateDir, { recursive: true, force: true });
    }
    const noTun = (result: CliResult, what: string): void => {
      assert.equal(result.code, 1, `${what}: ${result.stdout}`);
      assert.match(result.stderr, /Device "tun0" does not exist/, what);
    };
    noTun(await daemon.cli(['exec', '--slice', 'n5f', '--', 'ip', 'link', 'show', 'tun0']), 'a slice without --net-tun has no tun0');
    assert.equal((await daemon.cli(['slice', 'set', 'n5t', '--net-tun', 'off'])).code, 0);
    noTun(await daemon.cli(['exec', '--slice', 'n5t', '--', 'ip', 'link', 'show', 'tun0']), 'tun0 is gone after --net-tun off');
  });
});
