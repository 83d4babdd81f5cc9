import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  addressAt,
  allocateIndex,
  canonicalAddress,
  checkPoolsFree,
  checkPrivatePool,
  checkReservationAddress,
  checkMinRates,
  checkRates,
  formatAddress,
  formatRate,
  gateway,
  indexOf,
  netNames,
  parseAddress,
  parseCidr,
  parsePort,
  parseRate,
  poolCapacity,
  sliceAddresses,
  vethName,
  type HostNetwork,
  type NetPool,
} from '../../src/core/net.js';
import { addLines, deleteLines, levelLines, parseCounterName, type TableConfig } from '../../src/kernel/net/nft.js';
import { createSlice, deleteSlice, releasePort, reservePort, takenIndexes, updateSlice } from '../../src/core/changes.js';
import { emptyState, parseInput, sliceUpdateSchema, type DesiredState } from '../../src/core/model.js';
import type { NodeCapacity } from '../../src/core/admission.js';
import { SlicedError, isSlicedError } from '../../src/core/errors.js';
import { refusalOf } from '../helpers/refusal.js';

const pool: NetPool = { v4: parseCidr('10.213.0.0/24', 4, 'pool4'), v6: parseCidr('fd5c:ed00::/64', 6, 'pool6') };
const node: NodeCapacity = { cpuMillicores: 2000, systemReserveMillicores: 100, memoryBytes: 2 ** 33, net: { pool, capacity: 100e6 } };

const refusal = (call: () => unknown): SlicedError => refusalOf(call);

/** A slice with its own network, or with 'host' one on the host's network. */
function slice(state: DesiredState, name: string, net: object | 'host' = {}): DesiredState {
  return createSlice(state, { name, user: `sl-${name}`, userCreated: true, ...(net === 'host' ? {} : { net: net as never }) }, node);
}

describe('addresses', () => {
  test('parses and prints IPv4 and IPv6 canonically', () => {
    assert.equal(canonicalAddress('10.0.0.5').text, '10.0.0.5');
    assert.equal(canonicalAddress('FD5C:ED00:0:0:0:0:0:1').text, 'fd5c:ed00::1');
    assert.equal(canonicalAddress('fd5c::0:0:1').text, 'fd5c::1');
    assert.equal(canonicalAddress('::').text, '::');
    assert.equal(canonicalAddress('1:0:0:2:0:0:0:3').text, '1:0:0:2::3');
  });

  test('refuses what is not an address, naming the value', () => {
    for (const bad of ['300.1.2.3', '1.2.3', '01.2.3.4', 'example.org', '1::2::3', '1:2:3:4:5:6:7:8:9', '', 'fd5c::g']) {
      assert.equal(parseAddress(bad), null, bad);
      assert.match(refusal(() => canonicalAddress(bad)).message, new RegExp(`address ${JSON.stringify(JSON.stringify(bad)).slice(1, -1)}`));
    }
  });

  test('print and parse are inverse for any address (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (value) => {
        const text = formatAddress(6, value);
        assert.equal(parseAddress(text)?.value, value);
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }), (value) => {
        assert.equal(parseAddress(formatAddress(4, value))?.value, value);
      }),
    );
  });

  test('pools: prefix limits, host bits and capacity', () => {
    assert.match(refusal(() => parseCidr('10.0.0.0/8', 4, 'netPool4')).message, /prefix length \/8; allowed is \/17 to \/29/);
    assert.match(refusal(() => parseCidr('10.0.0.1/24', 4, 'netPool4')).message, /host bits set/);
    assert.match(refusal(() => parseCidr('fd00::/64', 4, 'netPool4')).message, /must be an IPv4 subnet/);
    assert.equal(poolCapacity(pool), 253); // 256 minus subnet, gateway, broadcast
    assert.equal(gateway(pool.v4), '10.213.0.1');
    assert.deepEqual(sliceAddresses(pool, 0), { v4: '10.213.0.2', v6: 'fd5c:ed00::2' });
    assert.equal(indexOf(pool, 4, parseAddress('10.213.0.1')!.value), null);
    assert.equal(indexOf(pool, 4, parseAddress('10.213.0.255')!.value), null);
    assert.equal(indexOf(pool, 4, parseAddress('10.213.0.254')!.value), 252);
  });

  test('allocation never hands out an index twice and reports a full pool (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 252 }), { maxLength: 253 }), (taken) => {
        const set = new Set(taken);
        if (set.size === 253) {
          assert.equal(refusal(() => allocateIndex(pool, set)).code, 'ENOSPC');
          return;
        }
        const index = allocateIndex(pool, set);
        assert.ok(!set.has(index) && index >= 0 && index < 253);
        assert.equal(
          index,
          [...Array(253).keys()].find((i) => !set.has(i)),
        );
      }),
    );
  });

  test('kernel names fit IFNAMSIZ for every index of the largest pool', () => {
    const names = netNames('abcde');
    assert.ok(vethName(names, 32767).length <= 15);
    assert.ok(names.bridge.length <= 15 && names.ifb.length <= 15);
  });
});

describe('rates and ports', () => {
  test('rates are bits per second with decimal prefixes', () => {
    assert.deepEqual(parseRate('50mbit'), { ok: true, value: 50_000_000 });
    assert.deepEqual(parseRate('1.5Gbit'), { ok: true, value: 1_500_000_000 });
    assert.deepEqual(parseRate('500k'), { ok: true, value: 500_000 });
    assert.deepEqual(parseRate(2000), { ok: true, value: 2000 });
    for (const bad of ['50mbps', 'fast', '-1mbit', '0', 12]) assert.equal(parseRate(bad).ok, false, String(bad));
    assert.equal(formatRate(50_000_000), '50mbit');
    assert.equal(formatRate(1_500_000), '1.5mbit');
    assert.equal(formatRate(1_234_567), '1234.567kbit');
    assert.equal(formatRate(999), '999bit');
  });

  test('min ≤ max ≤ capacity, and guarantees together fit the capacity', () => {
    assert.match(
      refusal(() => checkRates('a', { minRate: 20e6, maxRate: 10e6 }, 100e6)).message,
      /net\.maxRate 10mbit is below net\.minRate 20mbit/,
    );
    assert.match(
      refusal(() => checkRates('a', { minRate: null, maxRate: 200e6 }, 100e6)).message,
      /above the node's network capacity 100mbit/,
    );
    const net = (minRate: number) => ({ index: 0, egress: false, minRate, maxRate: null, tun: false });
    const err = refusal(() =>
      checkMinRates(
        [
          { name: 'a', net: net(60e6) },
          { name: 'b', net: net(50e6) },
        ],
        100e6,
      ),
    );
    assert.equal(err.code, 'ENOSPC');
    assert.match(err.message, /110mbit \(slice a 60mbit, slice b 50mbit\)/);
  });

  test('ports are 1..65535', () => {
    assert.equal(parsePort('53'), 53);
    for (const bad of [0, 70000, '0', '70000', 1.5, 'x', -1])
      assert.match(refusal(() => parsePort(bad)).message, /must be a whole number from 1 to 65535/);
  });
});

describe('slice networks in the desired state', () => {
  test('slices get distinct indexes; deleted ones are reused; net off frees the index', () => {
    let state = slice(slice(slice(emptyState(), 'a'), 'b'), 'h', 'host');
    assert.equal(state.slices.get('a')!.net!.index, 0);
    assert.equal(state.slices.get('b')!.net!.index, 1);
    assert.equal(state.slices.get('h')!.net, null);
    state = deleteSlice(state, 'a');
    state = slice(state, 'c');
    assert.equal(state.slices.get('c')!.net!.index, 0);
    state = updateSlice(state, 'b', { net: null }, node);
    assert.equal(state.slices.get('b')!.net, null);
    state = updateSlice(state, 'h', { net: parseInput(sliceUpdateSchema, { net: { maxRate: '50mbit' } }, 'slice').net }, node);
    assert.equal(state.slices.get('h')!.net!.index, 1);
    assert.equal(state.slices.get('h')!.net!.maxRate, 50e6);
  });

  test('no two slices or reservations ever share an address (property)', () => {
    type Op = { kind: 'create' | 'delete' | 'reserve' | 'release'; n: number };
    const op = fc.record({
      kind: fc.constantFrom('create', 'delete', 'reserve', 'release'),
      n: fc.integer({ min: 0, max: 20 }),
    }) as fc.Arbitrary<Op>;
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        let state = emptyState();
        for (const o of ops) {
          try {
            if (o.kind === 'create') state = slice(state, `s${o.n}`);
            if (o.kind === 'delete') state = deleteSlice(state, `s${o.n}`);
            if (o.kind === 'reserve')
              state = reservePort(state, { slice: `s${o.n % 5}`, address: addressAt(pool.v4, o.n), protocol: 'udp', port: 53 }, node);
            if (o.kind === 'release') state = releasePort(state, { address: addressAt(pool.v4, o.n), protocol: 'udp', port: 53 }).next;
          } catch (err) {
            assert.ok(isSlicedError(err), String(err));
          }
          const owners = [...state.slices.values()].flatMap((s) => (s.net ? [s.net.index] : []));
          const reserved = [...state.reservations.values()].map((r) => indexOf(pool, 4, parseAddress(r.address)!.value)!);
          assert.equal(new Set([...owners, ...reserved]).size, owners.length + new Set(reserved).size, 'an address is used twice');
          assert.equal(takenIndexes(state, node.net!).size, owners.length + new Set(reserved).size);
          for (const r of state.reservations.values())
            assert.ok(state.slices.get(r.slice)?.net, 'a reservation outlived its slice or its network');
        }
      }),
    );
  });

  test('reservations: conflicts name the holder, bad input changes nothing, deletion takes them along', () => {
    let state = slice(slice(slice(emptyState(), 'a'), 'b'), 'h', 'host');
    state = reservePort(state, { slice: 'a', address: '10.213.0.200', protocol: 'udp', port: 53 }, node);
    state = reservePort(state, { slice: 'b', address: '10.213.0.201', protocol: 'UDP', port: '53' }, node);
    state = reservePort(state, { slice: 'b', address: 'fd5c:ed00:0::c8', protocol: 'tcp', port: 80 }, node);
    assert.deepEqual([...state.reservations.keys()].sort(), ['tcp/fd5c:ed00::c8/80', 'udp/10.213.0.200/53', 'udp/10.213.0.201/53']);
    const frozen = state;
    const conflict = refusal(() => reservePort(frozen, { slice: 'b', address: '10.213.0.200', protocol: 'udp', port: 53 }, node));
    assert.equal(conflict.code, 'EEXIST');
    assert.match(conflict.message, /udp 10\.213\.0\.200:53 is already reserved by slice a/);
    assert.equal(
      refusal(() => reservePort(frozen, { slice: 'nope', address: '10.213.0.210', protocol: 'udp', port: 53 }, node)).code,
      'ENOENT',
    );
    assert.match(
      refusal(() => reservePort(frozen, { slice: 'h', address: '10.213.0.210', protocol: 'udp', port: 53 }, node)).message,
      /has no network of its own/,
    );
    assert.match(
      refusal(() => reservePort(frozen, { slice: 'a', address: '10.1.0.1', protocol: 'udp', port: 53 }, node)).message,
      /outside the pool 10\.213\.0\.0\/24/,
    );
    assert.match(
      refusal(() => reservePort(frozen, { slice: 'a', address: '10.213.0.3', protocol: 'udp', port: 53 }, node)).message,
      /slice b's own address/,
    );
    assert.match(
      refusal(() => updateSlice(frozen, 'a', { net: null }, node)).message,
      /holds port reservations \(udp 10\.213\.0\.200:53\)/,
    );
    // The reserved address is never given to a new slice.
    let next = state;
    for (let i = 0; i < 10; i++) next = slice(next, `x${i}`);
    assert.ok([...next.slices.values()].every((s) => !s.net || s.net.index !== 198));
    const after = deleteSlice(state, 'b');
    assert.deepEqual([...after.reservations.keys()], ['udp/10.213.0.200/53']);
    assert.equal(releasePort(after, { address: '10.213.0.200', protocol: 'udp', port: 53 }).next.reservations.size, 0);
    assert.equal(refusal(() => releasePort(after, { address: '10.213.0.201', protocol: 'udp', port: 53 })).code, 'ENOENT');
  });

  test('a node without networking refuses slice networks with a clear sentence', () => {
    const bare: NodeCapacity = { cpuMillicores: 2000, systemReserveMillicores: 100, memoryBytes: 2 ** 33 };
    const err = refusal(() => createSlice(emptyState(), { name: 'a', user: 'sl-a', userCreated: true, net: {} }, bare));
    assert.match(err.message, /slice networking is not configured/);
  });

  test('net input: errors name the field and the value', () => {
    assert.match(
      refusal(() => parseInput(sliceUpdateSchema, { net: { maxRate: '50mbps' } }, 'slice')).message,
      /slice: net\.maxRate "50mbps" must be a rate in bits per second/,
    );
    assert.match(refusal(() => parseInput(sliceUpdateSchema, { net: { speed: 1 } }, 'slice')).message, /unknown field "speed" in net/);
    assert.deepEqual(parseInput(sliceUpdateSchema, { net: true }, 'slice').net, {});
    assert.equal(parseInput(sliceUpdateSchema, { net: false }, 'slice').net, null);
  });
});

describe('address pools must be private and free', () => {
  const v4 = (text: string) => parseCidr(text, 4, 'netPool4');
  const v6 = (text: string) => parseCidr(text, 6, 'netPool6');

  test('private ranges: RFC 1918 for IPv4, fc00::/7 for IPv6; anything else is refused naming the value and what is allowed', () => {
    for (const ok of ['10.213.0.0/17', '10.249.7.0/24', '172.16.0.0/24', '172.31.255.0/24', '192.168.5.0/24'])
      checkPrivatePool(v4(ok), 'netPool4');
    for (const ok of ['fd5c:ed00::/64', 'fd5c:1a2b:3::/64', 'fc00::/64']) checkPrivatePool(v6(ok), 'netPool6');
    for (const bad of ['8.8.8.0/24', '172.32.0.0/24', '172.15.255.0/24', '100.64.0.0/24', '192.0.2.0/24', '11.0.0.0/17']) {
      const err = refusal(() => checkPrivatePool(v4(bad), 'config: netPool4'));
      assert.equal(err.code, 'EINVAL');
      assert.match(
        err.message,
        new RegExp(
          `^config: netPool4 ${bad.replaceAll('.', '\\.')} is not a private range; use a subnet of 10\\.0\\.0\\.0/8, 172\\.16\\.0\\.0/12 or 192\\.168\\.0\\.0/16`,
        ),
      );
    }
    for (const bad of ['2001:db8::/64', 'fe80::/64', 'fe00::/64']) {
      assert.match(
        refusal(() => checkPrivatePool(v6(bad), 'config: netPool6')).message,
        /is not a private range; use a subnet of fc00::\/7/,
      );
    }
  });

  test('a pool that shares an address with an interface or a route is refused, naming it; default routes and the own bridge are not overlaps', () => {
    const pool: NetPool = { v4: v4('10.213.0.0/17'), v6: v6('fd5c:ed00::/64') };
    const host = (cidr: string, dev: string | null = 'eth1', description = `thing ${cidr}`): HostNetwork => ({ cidr, dev, description });
    const free = [
      host('default', 'eth0'),
      host('192.0.2.0/24', 'eth0'),
      host('10.213.128.0/17'), // just beside
      host('10.212.0.0/16'),
      host('10.213.0.1/17', 'slbr0'), // the daemon's own bridge (a restart)
      host('10.213.0.200', 'slbr0'),
      host('fd5c:ed00:0:1::/64'),
      host('ff00::/8', 'eth0'),
      host('fe80::/64', 'eth0'),
      host('::/0', 'eth0'),
    ];
    checkPoolsFree(pool, free, 'slbr0');
    const cases: Array<[HostNetwork, RegExp]> = [
      [
        host('10.213.5.1/24', 'eth1', 'address 10.213.5.1/24 on eth1'),
        /^config: netPool4 10\.213\.0\.0\/17 overlaps what the node already uses: address 10\.213\.5\.1\/24 on eth1\. Choose a private subnet/,
      ],
      [host('10.0.0.0/8', 'tun0', 'route 10.0.0.0/8 dev tun0'), /netPool4 10\.213\.0\.0\/17 overlaps .*route 10\.0\.0\.0\/8 dev tun0/],
      [host('10.213.127.9', null, 'route blackhole 10.213.127.9'), /route blackhole 10\.213\.127\.9/],
      [host('10.213.0.1/17', 'slbr1', 'address 10.213.0.1/17 on slbr1'), /on slbr1/], // another daemon's bridge
      [
        host('fd5c:ed00::8000/113', 'wg0', 'route fd5c:ed00::8000/113 dev wg0'),
        /netPool6 fd5c:ed00::\/64 overlaps .*route fd5c:ed00::8000\/113 dev wg0/,
      ],
      [host('fd00::/8', 'wg0', 'route fd00::/8 dev wg0'), /netPool6 .*route fd00::\/8/],
    ];
    for (const [entry, message] of cases) {
      const err = refusal(() => checkPoolsFree(pool, [...free, entry], 'slbr0'));
      assert.equal(err.code, 'EINVAL');
      assert.match(err.message, message);
    }
    const many = Array.from({ length: 8 }, (_, i) => host(`10.213.${i}.0/24`, 'eth1', `route 10.213.${i}.0/24`));
    assert.match(refusal(() => checkPoolsFree(pool, many, 'slbr0')).message, /route 10\.213\.4\.0\/24; and 3 more\./);
  });

  test("reserving the pool's own addresses says which one it is", () => {
    const taken = new Map<number, string>();
    const gatewayError = refusal(() => checkReservationAddress(pool, '10.213.0.1', taken));
    assert.equal(
      gatewayError.message,
      "address 10.213.0.1 is the gateway (the bridge's own address) of the pool 10.213.0.0/24; reserve a free address of the pool (10.213.0.2 to 10.213.0.254)",
    );
    assert.match(
      refusal(() => checkReservationAddress(pool, 'fd5c:ed00::1', taken)).message,
      /^address fd5c:ed00::1 is the gateway \(the bridge's own address\) of the pool fd5c:ed00::\/64/,
    );
    assert.match(
      refusal(() => checkReservationAddress(pool, '10.213.0.0', taken)).message,
      /^address 10\.213\.0\.0 is the subnet address of the pool/,
    );
    assert.match(
      refusal(() => checkReservationAddress(pool, '10.213.0.255', taken)).message,
      /^address 10\.213\.0\.255 is the broadcast address of the pool/,
    );
    assert.match(
      refusal(() => checkReservationAddress(pool, '10.213.1.1', taken)).message,
      /^address 10\.213\.1\.1 is outside the pool 10\.213\.0\.0\/24/,
    );
  });
});

describe('nftables lines for the guards', () => {
  const table: TableConfig = { table: 'sliced0', bridge: 'slbr0', vethPrefix: 'slv0-', pool4: '10.213.0.0/24', pool6: 'fd5c:ed00::/64' };
  const ns = { slice: 'web', veth: 'slv0-0', v4: '10.213.0.2', v6: 'fd5c:ed00::2', conntrackMax: 300 };
  const rules = { namespaced: [ns], host: [], forwards: [], egress4: [] };

  test('host-network output to lo that NAT sends elsewhere counts as sent, not loopback', () => {
    const lines = levelLines(table, [2]);
    assert.ok(
      lines.includes('add rule inet sliced0 count_out oifname "lo" fib daddr type local counter name socket cgroupv2 level 2 map @lotx2'),
    );
    assert.ok(
      lines.includes('add rule inet sliced0 count_out oifname "lo" fib daddr type != local counter name socket cgroupv2 level 2 map @tx2'),
    );
  });

  test('a namespaced slice gets its source addresses and a conntrack chain; deleting removes both; a kept chain is not rewritten', () => {
    const add = addLines(table, rules);
    assert.ok(add.includes('add element bridge sliced0 src4 { "slv0-0" . 10.213.0.2 }'));
    assert.ok(add.includes('add element bridge sliced0 src6 { "slv0-0" . fd5c:ed00::2 }'));
    assert.ok(add.includes('add rule inet sliced0 ct_web ct count over 300 counter name "ctdrop_web" drop'));
    assert.ok(add.includes('add element inet sliced0 ctslice6 { fd5c:ed00::2 : jump ct_web }'));
    const kept = addLines(table, rules, new Set(['web']));
    assert.ok(!kept.some((l) => l.includes('flush chain') || l.includes('ct count')), 'a kept chain was rewritten');
    assert.ok(kept.includes('add element inet sliced0 ctslice4 { 10.213.0.2 : jump ct_web }'));
    const unlimited = addLines(table, { ...rules, namespaced: [{ ...ns, conntrackMax: null }] });
    assert.ok(!unlimited.some((l) => l.includes('ct_web')));
    const del = deleteLines(table, rules);
    assert.ok(del.indexOf('delete element inet sliced0 ctslice4 { 10.213.0.2 }') < del.indexOf('delete chain inet sliced0 ct_web'));
    assert.deepEqual(parseCounterName('ctdrop_web.v2'), { column: 'ctdrop', slice: 'web.v2' });
  });
});
