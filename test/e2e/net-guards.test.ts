/**
 * Guards of slice networking on the real kernel (issue 11, items 4, 10, 13):
 *
 * - each namespaced slice's share of the node's conntrack table is bounded, and what the
 *   bound drops is counted in the slice's account; a slice cannot escape it by sending from
 *   addresses that are not its own. The flood goes from a slice to a namespace the test
 *   makes (its own /30 veth pair, no route beyond it): nothing leaves the machine;
 * - a host-network slice's traffic to a reserved service address counts as sent and
 *   received (it crosses the bridge), not as loopback;
 * - address pools that are not private, or that overlap an address or route of the node,
 *   are refused before anything is made; a daemon's own bridge is not an overlap.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SLICED, TestDaemon, freePort, run } from '../helpers/daemon.js';
import { commandSkipReason, kernelSkipReason } from '../helpers/env.js';
import { leftovers, netSkipReason, readSysctl, startInSlice, type SliceProcess } from '../helpers/net.js';
import type { SliceView } from '../../src/wire/slices.js';
import type { AccountRow } from '../../src/wire/net.js';

const skip = kernelSkipReason() ?? netSkipReason() ?? commandSkipReason('curl', 'curl');
if (skip) process.stderr.write(`SKIP e2e/net-guards: ${skip}\n`);

function sh(args: string[]): string {
  const result = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** Run a command and ignore its failure (cleanup of what may be gone already). */
function quietly(args: string[]): void {
  spawnSync(args[0]!, args.slice(1));
}

/** Node scripts readable by the slices' users. */
class Scripts {
  readonly dir = mkdtempSync(join(tmpdir(), 'sliced-nd-'));

  constructor() {
    chmodSync(this.dir, 0o755);
    // `count` UDP datagrams to as many ports of one address: each one a new connection.
    this.write(
      'flood.mjs',
      `import dgram from 'node:dgram';
const [address, first, count] = process.argv.slice(2);
const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
let done = 0;
for (let i = 0; i < Number(count); i++) {
  socket.send('x', Number(first) + i, address, () => { if (++done === Number(count)) { process.stdout.write('sent ' + done + '\\n'); socket.close(); } });
}
`,
    );
    this.write(
      'http.mjs',
      `import http from 'node:http';
http.createServer((request, response) => response.end('y'.repeat(3000))).listen(Number(process.argv[2]), '::', () => process.stdout.write('listening\\n'));
`,
    );
  }

  private write(name: string, text: string): void {
    writeFileSync(join(this.dir, name), text, { mode: 0o644 });
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Conntrack entries whose original source is `address` (IPv4), in the host's table. */
function conntrackEntries(address: string): number {
  return readFileSync('/proc/net/nf_conntrack', 'utf8')
    .split('\n')
    .filter((line) => line.includes(` src=${address} `)).length;
}

function linkRxPackets(netns: string, link: string): number {
  const doc = JSON.parse(sh(['ip', '-n', netns, '-s', '-j', 'link', 'show', 'dev', link])) as Array<{
    stats64: { rx: { packets: number } };
  }>;
  return doc[0]!.stats64.rx.packets;
}

describe('conntrack share of a namespaced slice', { skip: skip ?? false }, () => {
  const LIMIT = 300;
  const FLOOD = 6000;
  let daemon: TestDaemon;
  let scripts: Scripts;
  let forwardBefore: string;
  let metricsPort: number;
  let sinkNs = '';
  let uplink = '';
  let sinkAddress = '';
  let slice: SliceView;
  const account = (name: string): Promise<AccountRow> => daemon.cliJson<AccountRow>(['net', 'accounts', name]);
  const flood = async (address: string, first: number, count: number): Promise<void> => {
    const result = await daemon.cli([
      'exec',
      '--slice',
      'ndct',
      '--',
      process.execPath,
      scripts.path('flood.mjs'),
      address,
      String(first),
      String(count),
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`sent ${count}`));
  };

  before(async () => {
    forwardBefore = readSysctl('net.ipv4.ip_forward');
    scripts = new Scripts();
    metricsPort = await freePort();
    daemon = await TestDaemon.start(['--net-conntrack-max', String(LIMIT), '--metrics-port', String(metricsPort)]);
    // The sink: a namespace on its own /30 outside every test daemon's pool (10.200-249.x),
    // no route beyond it.
    const sinkNet = `10.198.${process.pid % 250}`;
    sinkAddress = `${sinkNet}.2`;
    sinkNs = `ndsink-${daemon.net.tag}`;
    uplink = `ndup${daemon.net.tag}`;
    sh(['ip', 'netns', 'add', sinkNs]);
    sh(['ip', 'link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', sinkNs]);
    sh(['ip', 'addr', 'add', `${sinkNet}.1/30`, 'dev', uplink]);
    sh(['ip', 'link', 'set', uplink, 'up']);
    sh(['ip', '-n', sinkNs, 'addr', 'add', `${sinkAddress}/30`, 'dev', 'eth0']);
    sh(['ip', '-n', sinkNs, 'link', 'set', 'eth0', 'up']);
    assert.equal((await daemon.cli(['slice', 'create', 'ndct', '--net', '--net-egress', 'on'])).code, 0);
    slice = await daemon.cliJson<SliceView>(['slice', 'show', 'ndct']);
  });

  after(async () => {
    const tag = daemon?.net.tag;
    try {
      await daemon?.destroy();
    } finally {
      if (uplink) quietly(['ip', 'link', 'del', uplink]);
      if (sinkNs) quietly(['ip', 'netns', 'del', sinkNs]);
      scripts.remove();
    }
    if (tag) assert.deepEqual(leftovers(tag), []);
    assert.equal(readSysctl('net.ipv4.ip_forward'), forwardBefore, 'net.ipv4.ip_forward changed');
    assert.equal(existsSync(`/run/netns/${sinkNs}`), false);
  });

  test(`${FLOOD} new UDP flows from one slice hold at most its limit of conntrack entries; the rest are dropped and counted`, async () => {
    const source = slice.net!.addresses!.v4;
    const entriesBefore = conntrackEntries(source);
    const accountBefore = await account('ndct');
    const arrivedBefore = linkRxPackets(sinkNs, 'eth0');
    await flood(sinkAddress, 20_000, FLOOD);
    const entries = conntrackEntries(source);
    const accountAfter = await account('ndct');
    const arrived = linkRxPackets(sinkNs, 'eth0') - arrivedBefore;
    const dropped = accountAfter.conntrackDropped.packets - accountBefore.conntrackDropped.packets;
    const table = Number(readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8'));
    process.stderr.write(
      `conntrack: ${entries} entries from ${source} after ${FLOOD} new flows (limit ${LIMIT}, before ${entriesBefore}, node table ${table}); ${dropped} dropped and counted; ${arrived} packets reached the sink\n`,
    );
    assert.ok(entries <= LIMIT, `${entries} conntrack entries for a slice limited to ${LIMIT}`);
    assert.ok(entries >= LIMIT - 10, `only ${entries} entries: the flood did not reach the limit`);
    // Every datagram either made an entry (and went on to the sink) or was dropped and counted.
    assert.ok(
      Math.abs(dropped + (entries - entriesBefore) - FLOOD) <= 10,
      `${dropped} dropped + ${entries - entriesBefore} new entries for ${FLOOD} datagrams`,
    );
    assert.ok(arrived <= LIMIT + 10, `${arrived} packets reached the sink past a limit of ${LIMIT}`);
    assert.equal(
      accountAfter.conntrackDropped.bytes - accountBefore.conntrackDropped.bytes,
      dropped * 29,
      'a dropped datagram is 29 IP bytes',
    );
    // The drops show in slicectl and in the metrics.
    const text = (await daemon.cli(['net', 'accounts'])).stdout;
    assert.match(text, /CT_DROPS/);
    assert.match(text, new RegExp(`^ndct\\s.*\\s${accountAfter.conntrackDropped.packets}$`, 'm'));
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const metric = Number(/^sliced_slice_net_conntrack_dropped_packets_total\{slice="ndct"\} (\d+)/m.exec(metrics)?.[1]);
    assert.ok(metric >= accountAfter.conntrackDropped.packets, `metrics say ${metric} drops`);
    assert.equal((await daemon.api.get<{ conntrackMax: number }>('/v1/net')).conntrackMax, LIMIT);
  });

  test('the limit holds across a daemon restart: the connections counted before stay counted', async () => {
    const source = slice.net!.addresses!.v4;
    const chain = (): string => sh(['nft', '-a', 'list', 'chain', 'inet', `sliced${daemon.net.tag}`, 'ct_ndct']);
    const ruleBefore = chain();
    const before = await account('ndct');
    await daemon.restart();
    assert.equal(chain(), ruleBefore, 'the restart rewrote the conntrack rule (its count starts from zero)');
    // The first flood's entries (UDP, unanswered: 30 s) are still there and still count:
    // only the room they leave is taken, the rest is dropped.
    const held = conntrackEntries(source);
    await flood(sinkAddress, 40_000, 1000);
    const entries = conntrackEntries(source);
    assert.ok(entries <= LIMIT, `${entries} conntrack entries after a restart for a slice limited to ${LIMIT}`);
    const after = await account('ndct');
    const dropped = after.conntrackDropped.packets - before.conntrackDropped.packets;
    assert.ok(
      dropped >= 1000 - (LIMIT - held) - 10,
      `${dropped} of 1000 new flows dropped after the restart while ${held} entries were held`,
    );
  });

  test(
    'a slice cannot escape its limit (or pass for another) by sending from an address not its own',
    { skip: commandSkipReason('python3', 'python3') ?? false },
    async () => {
      // IP_FREEBIND needs no privilege: without the bridge's source check a slice could send
      // IPv6 from any address of the pool, each with a count of its own.
      const spoofed = daemon.net.pool6.replace(/::\/64$/, '::99');
      const gateway = daemon.net.pool6.replace(/::\/64$/, '::1');
      const expanded = spawnSync('python3', ['-c', `import ipaddress; print(ipaddress.ip_address('${spoofed}').exploded)`], {
        encoding: 'utf8',
      }).stdout.trim();
      const py = [
        'import socket',
        's = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)',
        's.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND',
        `s.bind(('${spoofed}', 0))`,
        `for p in range(200): s.sendto(b'x', ('${gateway}', 30000 + p))`,
        "print('sent')",
      ].join('\n');
      const result = await daemon.cli(['exec', '--slice', 'ndct', '--', 'python3', '-c', py]);
      assert.equal(result.code, 0, result.stderr);
      const entries = readFileSync('/proc/net/nf_conntrack', 'utf8')
        .split('\n')
        .filter((l) => l.includes(`src=${expanded} `)).length;
      assert.equal(entries, 0, `${entries} conntrack entries from the spoofed source ${spoofed}`);
    },
  );
});

describe('a host-network slice reaching a reserved address', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let scripts: Scripts;
  let server: SliceProcess;
  const account = (name: string): Promise<AccountRow> => daemon.cliJson<AccountRow>(['net', 'accounts', name]);

  before(async () => {
    scripts = new Scripts();
    daemon = await TestDaemon.start();
    assert.equal((await daemon.cli(['slice', 'create', 'ndsrv', '--net'])).code, 0);
    assert.equal((await daemon.cli(['slice', 'create', 'ndweb'])).code, 0);
    server = startInSlice(daemon, 'ndsrv', [process.execPath, scripts.path('http.mjs'), '80']);
    await server.waitFor(/listening/);
  });

  after(async () => {
    await server?.stop();
    const tag = daemon?.net.tag;
    try {
      await daemon?.destroy();
    } finally {
      scripts.remove();
    }
    if (tag) assert.deepEqual(leftovers(tag), []);
  });

  for (const family of [4, 6] as const) {
    test(`curl to a reserved IPv${family} address counts as sent and received, not loopback, on both sides alike`, async () => {
      const address = family === 4 ? daemon.net.pool4.replace(/\.0\/24$/, '.200') : daemon.net.pool6.replace(/::\/64$/, '::c8');
      const reserved = await daemon.cli(['net', 'reserve', 'ndsrv', address, 'tcp', '80']);
      assert.equal(reserved.code, 0, reserved.stderr);
      const web0 = await account('ndweb');
      const srv0 = await account('ndsrv');
      const url = family === 4 ? `http://${address}/` : `http://[${address}]/`;
      for (let i = 0; i < 5; i++) {
        const got = await daemon.cli([
          'exec',
          '--slice',
          'ndweb',
          '--',
          'curl',
          '-sS',
          '-g',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code} %{size_download}',
          url,
        ]);
        assert.equal(got.stdout, '200 3000', got.stderr);
      }
      const web = await account('ndweb');
      const srv = await account('ndsrv');
      const delta = (
        a: AccountRow,
        b: AccountRow,
        column: 'sent' | 'received' | 'loopbackSent' | 'loopbackReceived',
      ): { packets: number; bytes: number } => ({
        packets: a[column].packets - b[column].packets,
        bytes: a[column].bytes - b[column].bytes,
      });
      const sent = delta(web, web0, 'sent');
      const received = delta(web, web0, 'received');
      assert.deepEqual(delta(web, web0, 'loopbackSent'), { packets: 0, bytes: 0 }, 'the requests were counted as loopback');
      assert.deepEqual(delta(web, web0, 'loopbackReceived'), { packets: 0, bytes: 0 });
      assert.ok(received.bytes >= 5 * 3000, `ndweb received ${received.bytes} bytes for 5 answers of 3000 bytes`);
      assert.ok(sent.packets >= 5 * 3, `ndweb sent ${sent.packets} packets for 5 requests`);
      // The same packets cross the bridge: what ndweb sent, ndsrv received, and the other way
      // round (neighbour discovery and ARP on ndsrv's veth aside).
      const srvReceived = delta(srv, srv0, 'received');
      const srvSent = delta(srv, srv0, 'sent');
      assert.ok(
        Math.abs(srvReceived.packets - sent.packets) <= 6,
        `ndweb sent ${sent.packets} packets, ndsrv received ${srvReceived.packets}`,
      );
      assert.ok(
        Math.abs(srvSent.packets - received.packets) <= 6,
        `ndsrv sent ${srvSent.packets} packets, ndweb received ${received.packets}`,
      );
      assert.ok(Math.abs(srvSent.bytes - received.bytes) <= 600, `ndsrv sent ${srvSent.bytes} bytes, ndweb received ${received.bytes}`);
    });
  }
});

describe('address pools', { skip: skip ?? false }, () => {
  const made: string[][] = [];
  const dummy = `ndlnk${(process.pid % 46656).toString(36)}`;
  /** A /24 and a /64 no test daemon uses (they take 10.200-249.x and fd5c:<pid>:x). */
  const net4 = `10.197.${process.pid % 250}`;
  const net6 = `fd5d:${(process.pid % 65536).toString(16)}`;

  /**
   * Start sliced with these pools and expect a refusal. A start that is not refused (the
   * old code) is stopped after a while and cleaned up with its own --cleanup, so the test
   * fails instead of hanging.
   */
  async function refusedStart(pool4: string, pool6: string): Promise<{ code: number | 'started'; stderr: string; leftover: string[] }> {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-nd-'));
    const tag = `nd${(process.pid % 1296).toString(36)}`;
    const state = join(dir, 'state');
    const args = [
      SLICED,
      '--net-tag',
      tag,
      '--net-pool4',
      pool4,
      '--net-pool6',
      pool6,
      '--state-dir',
      state,
      '--run-dir',
      join(dir, 'run'),
      '--cgroup-root',
      `sliced-nd${process.pid}`,
    ];
    try {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 128)));
      const code = await Promise.race([exited, sleep(15_000).then(() => 'started' as const)]);
      if (code === 'started') {
        child.kill('SIGTERM');
        await exited;
      }
      const leftover = [...leftovers(tag), ...(existsSync(state) ? [state] : [])];
      if (code === 'started') await run(process.execPath, [...args, '--cleanup']);
      return { code, stderr, leftover };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  before(() => {
    // A veth pair, both ends on the host (this kernel has no dummy links): carrier is up.
    sh(['ip', 'link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${dummy}p`]);
    made.push(['ip', 'link', 'del', dummy]);
    sh(['ip', 'link', 'set', dummy, 'up']);
    sh(['ip', 'link', 'set', `${dummy}p`, 'up']);
  });

  after(() => {
    for (const args of made.reverse()) quietly(args);
    assert.equal(existsSync(`/sys/class/net/${dummy}`), false);
  });

  test('a pool outside the private ranges is refused, naming the value and what is allowed; nothing is made', async () => {
    const v4 = await refusedStart('8.8.8.0/24', `${net6}:1::/64`);
    assert.notEqual(v4.code, 0, 'sliced started with a public IPv4 pool');
    assert.match(
      v4.stderr,
      /netPool4 8\.8\.8\.0\/24 is not a private range; use a subnet of 10\.0\.0\.0\/8, 172\.16\.0\.0\/12 or 192\.168\.0\.0\/16/,
    );
    assert.deepEqual(v4.leftover, []);
    const v6 = await refusedStart(`${net4}.0/24`, '2001:db8:1::/64');
    assert.notEqual(v6.code, 0, 'sliced started with a global IPv6 pool');
    assert.match(v6.stderr, /netPool6 2001:db8:1::\/64 is not a private range; use a subnet of fc00::\/7/);
    assert.deepEqual(v6.leftover, []);
  });

  test('a pool that overlaps an address or a route of the node is refused, naming it', async () => {
    sh(['ip', 'addr', 'add', `${net4}.1/24`, 'dev', dummy]);
    const address = await refusedStart(`${net4}.0/24`, `${net6}:1::/64`);
    assert.notEqual(address.code, 0, 'sliced started with a pool that an interface uses');
    assert.match(
      address.stderr,
      new RegExp(
        `netPool4 ${net4.replaceAll('.', '\\.')}\\.0/24 overlaps what the node already uses: .*address ${net4.replaceAll('.', '\\.')}\\.1/24 on ${dummy}`,
      ),
    );
    assert.deepEqual(address.leftover, []);
    sh(['ip', 'addr', 'flush', 'dev', dummy]);

    // A route that covers the pool (e.g. a VPN's), and one inside it.
    sh(['ip', 'route', 'add', `${net4}.0/24`, 'dev', dummy]);
    made.push(['ip', 'route', 'del', `${net4}.0/24`, 'dev', dummy]);
    const covering = await refusedStart(`${net4}.128/25`, `${net6}:1::/64`);
    assert.notEqual(covering.code, 0);
    assert.match(
      covering.stderr,
      new RegExp(`netPool4 ${net4.replaceAll('.', '\\.')}\\.128/25 overlaps .*route ${net4.replaceAll('.', '\\.')}\\.0/24 dev ${dummy}`),
    );
    sh(['ip', '-6', 'route', 'add', `${net6}:1::8000/113`, 'dev', dummy]);
    made.push(['ip', '-6', 'route', 'del', `${net6}:1::8000/113`, 'dev', dummy]);
    const inside = await refusedStart(`10.197.${(process.pid + 1) % 250}.0/24`, `${net6}:1::/64`);
    assert.notEqual(inside.code, 0);
    assert.match(inside.stderr, new RegExp(`netPool6 ${net6}:1::/64 overlaps .*route ${net6}:1::8000/113 dev ${dummy}`));
    assert.deepEqual([...covering.leftover, ...inside.leftover], []);
  });

  test("a daemon's own bridge is not an overlap: a restart with service addresses on it starts", async () => {
    const daemon = await TestDaemon.start();
    try {
      assert.equal((await daemon.cli(['slice', 'create', 'ndpool', '--net'])).code, 0);
      const address = daemon.net.pool4.replace(/\.0\/24$/, '.201');
      assert.equal((await daemon.cli(['net', 'reserve', 'ndpool', address, 'udp', '53'])).code, 0);
      await daemon.restart();
      assert.equal((await daemon.cliJson<SliceView>(['slice', 'show', 'ndpool'])).net?.addresses?.v4 !== undefined, true);
      // ...and a second daemon with the same pool (another bridge) is refused.
      const second = await refusedStart(daemon.net.pool4, `${net6}:2::/64`);
      assert.notEqual(second.code, 0, 'a second daemon took a pool already on another bridge');
      assert.match(second.stderr, new RegExp(`netPool4 .* overlaps what the node already uses: address \\S+ on slbr${daemon.net.tag}`));
    } finally {
      const tag = daemon.net.tag;
      await daemon.destroy();
      assert.deepEqual(leftovers(tag), []);
    }
  });
});
