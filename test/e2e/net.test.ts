/**
 * Slice networks on the real kernel: a namespace behind the daemon's bridge with addresses
 * from its pools, processes started by exec inside it, accounting checked against iperf3 and
 * the veth's own counters, loopback kept in its own columns, host-network slices accounted
 * by cgroup, counts that survive a daemon restart and a deleted slice's counts until removed.
 * Every address is inside the test daemon's own pools; nothing leaves the machine (the
 * daemon drops whatever comes from the bridge towards another interface, and no slice here
 * has egress). At the end, nothing with the daemon's tag is left.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { iperfClient, iperfServer, leftovers, netSkipReason, readSysctl, vethCounters } from '../helpers/net.js';
import type { SliceView } from '../../src/wire/slices.js';
import { hostMaps, parseCounterName, readCounters } from '../../src/kernel/net/nft.js';
import type { AccountRow, AccountsDocument } from '../../src/wire/net.js';

const skip = kernelSkipReason() ?? netSkipReason();
if (skip) process.stderr.write(`SKIP e2e/net: ${skip}\n`);

/** Bytes of TCP/IP headers and ACKs may add a few percent to the payload, never less than it. */
const HEADER_SLACK = 0.08;

/**
 * What crossed the wire for an iperf3 run lies between the payload the receiver got and the
 * payload the sender wrote (iperf3 stops at the end of the test with data still in buffers),
 * plus headers.
 */
function assertPayload(what: string, counted: number, run: { bytes: number; sentBytes: number }): void {
  assert.ok(counted >= run.bytes, `${what}: ${counted} bytes counted, less than the ${run.bytes} bytes of payload received`);
  assert.ok(
    counted <= run.sentBytes * (1 + HEADER_SLACK) + NOISE_BYTES,
    `${what}: ${counted} bytes counted for ${run.sentBytes} bytes of payload sent`,
  );
}
/** Frames the kernel sends by itself during a test (ARP, neighbour discovery), generously. */
const NOISE_BYTES = 20_000;
const METRICS_PORT = 20_000 + (process.pid % 20_000);

/**
 * Node code that sends `count` UDP datagrams of `bytes` to itself on 127.0.0.1 and exits once
 * all came back: loopback traffic of whatever slice runs it (the host's lo for a slice
 * without a namespace).
 */
const loopbackPing = (count: number, bytes: number): string =>
  `const s = require('node:dgram').createSocket('udp4'); s.bind(0, '127.0.0.1', () => { const p = s.address().port; let n = 0; s.on('message', () => { if (++n === ${count}) s.close(); }); for (let i = 0; i < ${count}; i++) s.send(Buffer.alloc(${bytes}), p, '127.0.0.1'); });`;

describe('slice networks', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let forwardBefore: string;
  const account = (slice: string): Promise<AccountRow> => daemon.cliJson<AccountRow>(['net', 'accounts', slice]);

  before(async () => {
    forwardBefore = readSysctl('net.ipv4.ip_forward');
    daemon = await TestDaemon.start(['--metrics-port', String(METRICS_PORT)]);
    for (const args of [['n5a', '--net'], ['n5b', '--net'], ['n5h']]) {
      const result = await daemon.cli(['slice', 'create', ...args]);
      assert.equal(result.code, 0, result.stderr);
    }
  });

  after(async () => {
    const tag = daemon.net.tag;
    await daemon.destroy();
    assert.deepEqual(leftovers(tag), [], 'cleanup left kernel objects behind');
    assert.equal(readSysctl('net.ipv4.ip_forward'), forwardBefore, 'net.ipv4.ip_forward changed');
  });

  test('a slice gets a namespace, distinct addresses from the pools and its own routes; exec runs inside it', async () => {
    const a = await daemon.cliJson<SliceView>(['slice', 'show', 'n5a']);
    const b = await daemon.cliJson<SliceView>(['slice', 'show', 'n5b']);
    const h = await daemon.cliJson<SliceView>(['slice', 'show', 'n5h']);
    assert.equal(h.net, null);
    const prefix4 = daemon.net.pool4.split('.').slice(0, 3).join('.');
    for (const view of [a, b]) {
      assert.ok(view.net?.addresses?.v4.startsWith(`${prefix4}.`), `v4 ${view.net?.addresses?.v4} outside ${daemon.net.pool4}`);
      assert.ok(
        view.net?.addresses?.v6.startsWith(daemon.net.pool6.split('::')[0]!),
        `v6 ${view.net?.addresses?.v6} outside ${daemon.net.pool6}`,
      );
    }
    assert.notEqual(a.net!.addresses!.v4, b.net!.addresses!.v4);
    assert.notEqual(a.net!.addresses!.v6, b.net!.addresses!.v6);

    const inside = await daemon.cli([
      'exec',
      '--slice',
      'n5a',
      '--',
      'sh',
      '-c',
      'readlink /proc/self/ns/net; id -u; ip -o addr show dev eth0; ip route; ip -6 route',
    ]);
    assert.equal(inside.code, 0, inside.stderr);
    const [netns, uid] = inside.stdout.split('\n');
    assert.notEqual(netns, readlinkSync('/proc/self/ns/net'), 'exec ran in the host network namespace');
    assert.equal(Number(uid), a.uid);
    assert.match(inside.stdout, new RegExp(`inet ${a.net!.addresses!.v4.replaceAll('.', '\\.')}/24`));
    assert.match(inside.stdout, new RegExp(`inet6 ${a.net!.addresses!.v6}/64`));
    assert.match(inside.stdout, /^default via \S+ dev eth0/m);

    const host = await daemon.cli(['exec', '--slice', 'n5h', '--', 'readlink', '/proc/self/ns/net']);
    assert.equal(host.stdout.trim(), readlinkSync('/proc/self/ns/net'), 'a host-network slice runs in the host namespace');

    // IPv6 between two slices across the bridge, as the slices' users.
    const server = await iperfServer(daemon, 'n5b', b.net!.addresses!.v6, 5301);
    try {
      const run = await iperfClient(daemon, 'n5a', ['-6', '-c', b.net!.addresses!.v6, '-p', '5301', '-n', '2M']);
      assert.ok(run.bytes > 0, `IPv6 transfer moved ${run.bytes} bytes`);
    } finally {
      await server.stop();
    }
  });

  test('accounting matches iperf3 and the veth counters; TCP control packets count for the right slice', async () => {
    const a = await daemon.cliJson<SliceView>(['slice', 'show', 'n5a']);
    const b = await daemon.cliJson<SliceView>(['slice', 'show', 'n5b']);
    const server = await iperfServer(daemon, 'n5b', b.net!.addresses!.v4, 5302);
    // The veth is read before the accounts and after them at the end, so its window holds the
    // accounts' window: a stray frame (neighbour discovery) between two readings counts in both.
    const vethA = vethCounters(a.net!.veth!);
    const beforeA = await account('n5a');
    const beforeB = await account('n5b');
    let run;
    try {
      run = await iperfClient(daemon, 'n5a', ['-c', b.net!.addresses!.v4, '-p', '5302', '-t', '2']);
    } finally {
      await server.stop();
    }
    // The connection's last packets (FIN, ACK) settle first.
    await sleep(200);
    const afterA = await account('n5a');
    const afterB = await account('n5b');
    await sleep(50);
    const vethA2 = vethCounters(a.net!.veth!);

    const sent = afterA.sent.bytes - beforeA.sent.bytes;
    const sentPackets = afterA.sent.packets - beforeA.sent.packets;
    assertPayload('n5a sent', sent, run);
    // What n5a sent, n5b received (one bridge, no loss on veth).
    const received = afterB.received.bytes - beforeB.received.bytes;
    assert.ok(Math.abs(received - sent) <= NOISE_BYTES, `n5b received ${received}, n5a sent ${sent}`);
    // The veth counts Ethernet frames: 14 more bytes per packet than the IP bytes.
    const vethSent = vethA2.rxBytes - vethA.rxBytes;
    const expected = sent + 14 * sentPackets;
    assert.ok(Math.abs(vethSent - expected) <= NOISE_BYTES, `veth says ${vethSent} bytes, accounts + headers say ${expected}`);
    // The receiver's ACKs are n5b's traffic and n5a's received traffic.
    const acks = afterB.sent.packets - beforeB.sent.packets;
    assert.ok(acks > 0 && Math.abs(acks - (afterA.received.packets - beforeA.received.packets)) <= 20, `n5b sent ${acks} packets (ACKs)`);
    // Every frame counted on its way to n5a left the veth, or was dropped there (its peer's backlog full).
    const leftVeth = vethA2.txPackets - vethA.txPackets + (vethA2.txDropped - vethA.txDropped);
    const counted = afterA.received.packets - beforeA.received.packets;
    assert.ok(leftVeth >= counted, `the veth passed or dropped ${leftVeth} packets towards n5a; its account received ${counted}`);
  });

  test('loopback traffic appears only in the loopback columns and never in the node summary', async () => {
    const before = await account('n5a');
    const summaryBefore = (await daemon.cliJson<AccountsDocument>(['net', 'accounts'])).summary;
    const server = await iperfServer(daemon, 'n5a', '127.0.0.1', 5303);
    let run;
    try {
      run = await iperfClient(daemon, 'n5a', ['-c', '127.0.0.1', '-p', '5303', '-n', '50M']);
    } finally {
      await server.stop();
    }
    const after = await account('n5a');
    const summaryAfter = (await daemon.cliJson<AccountsDocument>(['net', 'accounts'])).summary;
    // Each column against what iperf3 itself moved (its client wrote, its server got), not
    // against the other column: inside the namespace both come from lo's one counter.
    assertPayload('n5a loopback sent', after.loopbackSent.bytes - before.loopbackSent.bytes, run);
    assertPayload('n5a loopback received', after.loopbackReceived.bytes - before.loopbackReceived.bytes, run);
    assert.ok(after.sent.bytes - before.sent.bytes < NOISE_BYTES, `loopback leaked into sent: ${after.sent.bytes - before.sent.bytes}`);
    assert.ok(summaryAfter.sent.bytes - summaryBefore.sent.bytes < NOISE_BYTES, 'loopback leaked into the node summary');
  });

  test('a host-network slice is accounted by its cgroup, loopback apart', async () => {
    const b = await daemon.cliJson<SliceView>(['slice', 'show', 'n5b']);
    const server = await iperfServer(daemon, 'n5b', b.net!.addresses!.v4, 5304);
    const before = await account('n5h');
    let run;
    try {
      run = await iperfClient(daemon, 'n5h', ['-c', b.net!.addresses!.v4, '-p', '5304', '-n', '20M']);
    } finally {
      await server.stop();
    }
    const loServer = await iperfServer(daemon, 'n5h', '127.0.0.1', 5305);
    let loRun;
    try {
      loRun = await iperfClient(daemon, 'n5h', ['-c', '127.0.0.1', '-p', '5305', '-n', '20M']);
    } finally {
      await loServer.stop();
    }
    const after = await account('n5h');
    const sent = after.sent.bytes - before.sent.bytes;
    assertPayload('n5h sent', sent, run);
    assert.ok(after.received.packets > before.received.packets, 'the ACKs n5h received were not counted');
    const lo = after.loopbackSent.bytes - before.loopbackSent.bytes;
    // Client and server are both n5h's: each loopback byte is sent and received by it.
    assertPayload('n5h loopback sent', lo, loRun);
    assertPayload('n5h loopback received', after.loopbackReceived.bytes - before.loopbackReceived.bytes, loRun);
  });

  test('metrics carry the same counts', async () => {
    const row = await account('n5a');
    const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
    const value = (direction: string): number =>
      Number(new RegExp(`^sliced_slice_net_bytes_total\\{slice="n5a",direction="${direction}"\\} (\\d+)`, 'm').exec(text)?.[1]);
    assert.ok(
      value('sent') >= row.sent.bytes && value('sent') - row.sent.bytes < NOISE_BYTES,
      `metrics sent ${value('sent')}, accounts ${row.sent.bytes}`,
    );
    assert.ok(value('loopback_sent') >= row.loopbackSent.bytes && value('loopback_sent') - row.loopbackSent.bytes < NOISE_BYTES);
  });

  test('counts survive a daemon restart: nothing lost, nothing counted twice; unowned objects go', async () => {
    const before = await daemon.cliJson<AccountsDocument>(['net', 'accounts']);
    // Objects of the daemon's tag that no slice owns are removed at start.
    await daemon.stop();
    const ghosts = [`netns sliced${daemon.net.tag}-n5ghost`, `link slv${daemon.net.tag}-zz`];
    assert.equal(spawnSync('ip', ['netns', 'add', `sliced${daemon.net.tag}-n5ghost`]).status, 0);
    assert.equal(spawnSync('ip', ['link', 'add', `slv${daemon.net.tag}-zz`, 'type', 'bridge']).status, 0);
    assert.deepEqual(
      leftovers(daemon.net.tag)
        .filter((o) => ghosts.includes(o))
        .sort(),
      [...ghosts].sort(),
    );
    await daemon.launch();
    assert.deepEqual(
      leftovers(daemon.net.tag).filter((o) => ghosts.includes(o)),
      [],
      'unowned objects survived the start',
    );
    const after = await daemon.cliJson<AccountsDocument>(['net', 'accounts']);
    for (const row of before.slices) {
      const again = after.slices.find((r) => r.slice === row.slice)!;
      for (const column of ['sent', 'received', 'loopbackSent', 'loopbackReceived'] as const) {
        assert.ok(
          again[column].bytes >= row[column].bytes,
          `${row.slice} ${column} went back: ${row[column].bytes} -> ${again[column].bytes}`,
        );
        assert.ok(
          again[column].bytes - row[column].bytes < NOISE_BYTES,
          `${row.slice} ${column} jumped: ${row[column].bytes} -> ${again[column].bytes}`,
        );
      }
    }
    // And counting goes on from there.
    const b = await daemon.cliJson<SliceView>(['slice', 'show', 'n5b']);
    const server = await iperfServer(daemon, 'n5b', b.net!.addresses!.v4, 5306);
    try {
      const run = await iperfClient(daemon, 'n5a', ['-c', b.net!.addresses!.v4, '-p', '5306', '-n', '10M']);
      const a = await account('n5a');
      const a0 = after.slices.find((r) => r.slice === 'n5a')!;
      assert.ok(a.sent.bytes - a0.sent.bytes >= run.bytes);
    } finally {
      await server.stop();
    }
  });

  test('a deleted slice keeps its counts until they are removed', async () => {
    const last = await account('n5b');
    assert.equal((await daemon.cli(['slice', 'delete', 'n5b'])).code, 0);
    const kept = await account('n5b');
    assert.equal(kept.deleted, true);
    assert.ok(kept.received.bytes >= last.received.bytes);
    const refused = await daemon.cli(['net', 'accounts', '--remove', 'n5a']);
    assert.equal(refused.code, 1, 'removing the counts of a live slice must be refused');
    assert.match(refused.stderr, /still exists/);
    assert.equal((await daemon.cli(['net', 'accounts', '--remove', 'n5b'])).code, 0);
    const gone = await daemon.cli(['net', 'accounts', 'n5b']);
    assert.equal(gone.code, 3);
    const doc = await daemon.cliJson<AccountsDocument>(['net', 'accounts']);
    assert.deepEqual(doc.slices.map((r) => r.slice).sort(), ['n5a', 'n5h']);
  });

  test('a deleted host-network slice: its counts stay, can be removed, and a new slice of the name counts afresh', async () => {
    const counters = async (slice: string): Promise<string[]> =>
      (await readCounters(`sliced${daemon.net.tag}`)).filter((c) => parseCounterName(c.name)?.slice === slice).map((c) => c.name);
    const ping = loopbackPing(20, 500);
    assert.equal((await daemon.cli(['slice', 'create', 'n5g'])).code, 0);
    const sent = await daemon.cli(['exec', '--slice', 'n5g', '--', process.execPath, '-e', ping]);
    assert.equal(sent.code, 0, sent.stderr);
    const counted = await account('n5g');
    assert.ok(counted.loopbackSent.bytes >= 20 * 500, `n5g loopback sent ${counted.loopbackSent.bytes}`);
    assert.equal((await daemon.cli(['slice', 'delete', 'n5g'])).code, 0);
    assert.equal((await account('n5g')).deleted, true);
    assert.equal((await counters('n5g')).length, 4, 'the counters of a deleted slice stay until its counts are removed');
    // The map elements that referred to them were left behind with the group; removing the
    // counts sweeps them first (nft refuses to delete a counter that is still referred to).
    const removed = await daemon.cli(['net', 'accounts', '--remove', 'n5g']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(await counters('n5g'), []);
    assert.equal((await daemon.cli(['slice', 'create', 'n5g'])).code, 0);
    assert.equal((await account('n5g')).loopbackSent.bytes, 0);
    const again = await daemon.cli(['exec', '--slice', 'n5g', '--', process.execPath, '-e', ping]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok((await account('n5g')).loopbackSent.bytes >= 20 * 500, 'the new n5g is not counted');
    assert.equal((await daemon.cli(['slice', 'delete', 'n5g'])).code, 0);
    assert.equal((await daemon.cli(['net', 'accounts', '--remove', 'n5g'])).code, 0);
  });

  test('deleting many host-network slices sweeps their map entries in bulk; live slices keep counting', async () => {
    const table = `sliced${daemon.net.tag}`;
    const entries = async (): Promise<number> => {
      let total = 0;
      for (const name of (await hostMaps(table)).filter((n) => /^tx\d+$/.test(n))) {
        const listed = JSON.parse(spawnSync('nft', ['-j', 'list', 'map', 'inet', table, name], { encoding: 'utf8' }).stdout) as {
          nftables: Array<{ map?: { elem?: unknown[] } }>;
        };
        total += listed.nftables.reduce((sum, i) => sum + (i.map?.elem?.length ?? 0), 0);
      }
      return total;
    };
    const names = Array.from({ length: 300 }, (_, i) => `n5m${i}`);
    for (const name of names) await daemon.api.post('/v1/slices', { name, user: 'nobody' });
    await daemon.cli(['exec', '--slice', 'n5h', '--', 'true']); // the counting objects are in the kernel
    const withAll = await entries(); // ~4 s: nft names each cgroupsv2 key by searching /sys/fs/cgroup
    assert.ok(withAll >= 301, `${withAll} tx entries for 300 + 1 host-network slices`);
    for (const name of names) await daemon.api.delete(`/v1/slices/${name}`);
    // 300 deletes pass the sweep threshold (256) once: what remains is n5h and the few left after it.
    const left = await entries();
    assert.ok(left <= 1 + 300 - 256, `${left} tx entries left after deleting 300 host-network slices`);
    const before = await account('n5h');
    const sent = await daemon.cli(['exec', '--slice', 'n5h', '--', process.execPath, '-e', loopbackPing(10, 300)]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.ok((await account('n5h')).loopbackSent.bytes - before.loopbackSent.bytes >= 10 * 300, 'n5h stopped counting after the sweep');
  });

  test("turning a slice's network off and on again removes and rebuilds its namespace", async () => {
    const view = await daemon.cliJson<SliceView>(['slice', 'show', 'n5a']);
    assert.equal((await daemon.cli(['slice', 'set', 'n5a', '--net', 'off'])).code, 0);
    assert.deepEqual(
      leftovers(daemon.net.tag).filter((o) => o.includes('n5a') || o.includes(view.net!.veth!)),
      [],
    );
    const hostNs = await daemon.cli(['exec', '--slice', 'n5a', '--', 'readlink', '/proc/self/ns/net']);
    assert.equal(hostNs.stdout.trim(), readlinkSync('/proc/self/ns/net'));
    assert.equal((await daemon.cli(['slice', 'set', 'n5a', '--net', 'on'])).code, 0);
    const again = await daemon.cliJson<SliceView>(['slice', 'show', 'n5a']);
    assert.ok(again.net?.addresses?.v4);
  });
});
