/**
 * Port reservations on the real kernel: two slices serve UDP port 53 on different reserved
 * addresses and each receives only its own traffic (from another slice through the bridge,
 * and from the host); conflicts name the holder; bad input is refused with a clear message
 * and changes nothing; a slice's own user cannot reserve; release frees the port at once;
 * reservations survive a restart and go with their slice. Addresses are service addresses
 * of the test daemon's own pool.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { TestDaemon, run } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { Scripts, leftovers, netSkipReason, readSysctl, startInSlice, type SliceProcess } from '../helpers/net.js';
import type { SliceView } from '../../src/wire/slices.js';
import type { Reservation } from '../../src/core/net.js';

const skip = kernelSkipReason() ?? netSkipReason();
if (skip) process.stderr.write(`SKIP e2e/net-ports: ${skip}\n`);

describe('port reservations', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let scripts: Scripts;
  let forwardBefore: string;
  const servers: SliceProcess[] = [];
  /** Service address number `n` of the test daemon's /24 pool. */
  const service = (n: number): string => daemon.net.pool4.replace(/\.0\/24$/, `.${n}`);
  const service6 = (n: number): string => daemon.net.pool6.replace(/::\/64$/, `::${n.toString(16)}`);
  const nftState = (): string => spawnSync('nft', ['list', 'map', 'inet', `sliced${daemon.net.tag}`, 'fwd4'], { encoding: 'utf8' }).stdout;

  async function serve(slice: string, name: string, family: 4 | 6 = 4): Promise<SliceProcess> {
    const server = startInSlice(daemon, slice, [
      process.execPath,
      scripts.path('udp-server.mjs'),
      String(family),
      family === 4 ? '0.0.0.0' : '::',
      '53',
      name,
    ]);
    servers.push(server);
    await server.waitFor(/listening/);
    return server;
  }

  /** Ask from a slice (through the bridge) or, with slice null, from the host itself. */
  async function ask(from: string | null, address: string, message: string, family: 4 | 6 = 4): Promise<string> {
    const command = [process.execPath, scripts.path('udp-ask.mjs'), String(family), address, '53', message];
    const result = from === null ? await run(command[0]!, command.slice(1)) : await daemon.cli(['exec', '--slice', from, '--', ...command]);
    return result.stdout.trim();
  }

  before(async () => {
    forwardBefore = readSysctl('net.ipv4.ip_forward');
    scripts = new Scripts();
    daemon = await TestDaemon.start();
    for (const name of ['n5p1', 'n5p2', 'n5pc']) assert.equal((await daemon.cli(['slice', 'create', name, '--net'])).code, 0);
  });

  after(async () => {
    for (const server of servers) await server.stop();
    const tag = daemon.net.tag;
    await daemon.destroy();
    scripts.remove();
    assert.deepEqual(leftovers(tag), []);
    assert.equal(readSysctl('net.ipv4.ip_forward'), forwardBefore);
  });

  test('two slices serve port 53 on different addresses; each receives only its own traffic', async () => {
    assert.equal((await daemon.cli(['net', 'reserve', 'n5p1', service(200), 'udp', '53'])).code, 0);
    assert.equal((await daemon.cli(['net', 'reserve', 'n5p2', service(201), 'udp', '53'])).code, 0);
    const one = await serve('n5p1', 'one');
    const two = await serve('n5p2', 'two');
    assert.equal(await ask('n5pc', service(200), 'slice-to-200'), 'answer one:slice-to-200');
    assert.equal(await ask('n5pc', service(201), 'slice-to-201'), 'answer two:slice-to-201');
    assert.equal(await ask(null, service(200), 'host-to-200'), 'answer one:host-to-200');
    assert.equal(await ask(null, service(201), 'host-to-201'), 'answer two:host-to-201');
    assert.match(one.output(), /got slice-to-200/);
    assert.match(one.output(), /got host-to-200/);
    assert.doesNotMatch(one.output(), /to-201/);
    assert.match(two.output(), /got slice-to-201/);
    assert.doesNotMatch(two.output(), /to-200/);
    // Each slice's own loopback port 53 is its own too: the namespaces do not share it.
    assert.equal(await ask('n5p1', '127.0.0.1', 'own-loopback'), 'answer one:own-loopback');
    assert.doesNotMatch(two.output(), /own-loopback/);
  });

  test('IPv6 service addresses work the same way', async () => {
    const server = await serve('n5p2', 'two6', 6);
    assert.equal((await daemon.cli(['net', 'reserve', 'n5p2', service6(202), 'udp', '53'])).code, 0);
    assert.equal(await ask('n5pc', service6(202), 'v6-hello', 6), 'answer two6:v6-hello');
    assert.match(server.output(), /got v6-hello/);
  });

  test('a second reservation of the same address, protocol and port is refused naming the holder', async () => {
    const result = await daemon.cli(['net', 'reserve', 'n5p2', service(200), 'udp', '53']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`udp ${service(200).replaceAll('.', '\\.')}:53 is already reserved by slice n5p1`));
    // Same address, other protocol or port: a different reservation.
    assert.equal((await daemon.cli(['net', 'reserve', 'n5p2', service(200), 'tcp', '53'])).code, 0);
    assert.equal((await daemon.cli(['net', 'release', service(200), 'tcp', '53'])).code, 0);
  });

  test('bad input gives a clear error and changes nothing', async () => {
    const listBefore = await daemon.cliJson<Reservation[]>(['net', 'list']);
    const mapBefore = nftState();
    const cases: Array<{ args: string[]; code: number; message: RegExp }> = [
      { args: ['n5p1', '300.1.2.3', 'udp', '53'], code: 1, message: /address "300\.1\.2\.3" is not an IPv4 address/ },
      { args: ['n5p1', 'example.org', 'udp', '53'], code: 1, message: /is not an IPv4 address/ },
      { args: ['n5p1', service(210), 'udp', '0'], code: 1, message: /port "0" must be a whole number from 1 to 65535/ },
      { args: ['n5p1', service(210), 'udp', '70000'], code: 1, message: /port "70000" must be a whole number from 1 to 65535/ },
      { args: ['n5p1', service(210), 'icmp', '53'], code: 1, message: /protocol "icmp" must be one of tcp, udp/ },
      { args: ['n5nosuch', service(210), 'udp', '53'], code: 3, message: /slice "n5nosuch" does not exist/ },
      { args: ['n5p1', '10.99.0.1', 'udp', '53'], code: 1, message: /address 10\.99\.0\.1 is outside the pool/ },
      {
        args: ['n5p1', service(1), 'udp', '53'],
        code: 1,
        message: /address \S+ is the gateway \(the bridge's own address\) of the pool .*reserve a free address/,
      },
      { args: ['n5p1', service(255), 'udp', '53'], code: 1, message: /address \S+ is the broadcast address of the pool/ },
      { args: ['n5p1', service(200), 'udp', '53'], code: 1, message: /already reserved by slice n5p1/ },
    ];
    const own = await daemon.cliJson<SliceView>(['slice', 'show', 'n5p2']);
    cases.push({ args: ['n5p1', own.net!.addresses!.v4, 'udp', '53'], code: 1, message: /is slice n5p2's own address/ });
    for (const c of cases) {
      const result = await daemon.cli(['net', 'reserve', ...c.args]);
      assert.equal(result.code, c.code, `${c.args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, c.message, c.args.join(' '));
    }
    assert.deepEqual(await daemon.cliJson<Reservation[]>(['net', 'list']), listBefore);
    assert.equal(nftState(), mapBefore);
    const release = await daemon.cli(['net', 'release', service(210), 'udp', '53']);
    assert.equal(release.code, 3);
    assert.match(release.stderr, /is not reserved/);
  });

  test("a slice's own user cannot create or change reservations", async () => {
    const view = await daemon.cliJson<SliceView>(['slice', 'show', 'n5p1']);
    for (const args of [
      ['net', 'reserve', 'n5p1', service(220), 'udp', '53'],
      ['net', 'release', service(200), 'udp', '53'],
    ]) {
      const result = await daemon.cli(args, { uid: view.uid!, gid: view.uid! });
      assert.equal(result.code, 4, `${args.join(' ')} as ${view.user}: ${result.stderr}`);
    }
    assert.equal((await daemon.cliJson<Reservation[]>(['net', 'list'])).filter((r) => r.address === service(200)).length, 1);
  });

  test('release frees the port at once; reservations survive a restart and go with their slice', async () => {
    assert.equal((await daemon.cli(['net', 'release', service(201), 'udp', '53'])).code, 0);
    assert.equal(await ask('n5pc', service(201), 'after-release'), 'timeout');
    assert.equal((await daemon.cli(['net', 'reserve', 'n5p1', service(201), 'udp', '53'])).code, 0);
    assert.equal(await ask('n5pc', service(201), 'moved'), 'answer one:moved');

    await daemon.restart();
    const list = await daemon.cliJson<Reservation[]>(['net', 'list']);
    assert.deepEqual(
      list
        .filter((r) => r.slice === 'n5p1')
        .map((r) => r.address)
        .sort(),
      [service(200), service(201)],
    );
    assert.equal(await ask('n5pc', service(200), 'after-restart'), 'answer one:after-restart');

    assert.equal((await daemon.cli(['slice', 'delete', 'n5p1'])).code, 0);
    const left = await daemon.cliJson<Reservation[]>(['net', 'list']);
    assert.deepEqual(
      left.filter((r) => r.slice === 'n5p1'),
      [],
    );
    assert.doesNotMatch(nftState(), new RegExp(service(200).replaceAll('.', '\\.')));
  });
});
