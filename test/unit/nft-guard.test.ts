/** The cluster guard's nft script: which slices it matches, and the endpoints it rejects (the e2e test runs it in the kernel). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guardLines } from '../../src/kernel/net/nft-guard.js';

test('the guard rejects TCP to each endpoint from the bridge (input, forward) and from the slices root group (output)', () => {
  const lines = guardLines('sliced0guard', { bridge: 'slbr0', sliceRoot: { path: 'unified/sliced', level: 1 } }, [
    { family: 4, address: '10.0.0.1', port: 2379 },
    { family: 4, address: '10.0.0.1', port: 2379 },
    { family: 6, address: 'fd00::1', port: 2379 },
  ]);
  assert.ok(lines.includes('add rule inet sliced0guard input iifname "slbr0" ip daddr . tcp dport @dest4 counter reject with tcp reset'));
  assert.ok(
    lines.includes('add rule inet sliced0guard forward iifname "slbr0" ip6 daddr . tcp dport @dest6 counter reject with tcp reset'),
  );
  assert.ok(
    lines.includes(
      'add rule inet sliced0guard output socket cgroupv2 level 1 "unified/sliced" ip daddr . tcp dport @dest4 counter reject with tcp reset',
    ),
  );
  assert.ok(lines.includes('add element inet sliced0guard dest4 { 10.0.0.1 . 2379 }'), 'a duplicate endpoint is one element');
  assert.ok(lines.includes('add element inet sliced0guard dest6 { fd00::1 . 2379 }'));
  // Chains and sets are flushed, so a changed configuration replaces the old one.
  for (const what of ['set inet sliced0guard dest4', 'chain inet sliced0guard input', 'chain inet sliced0guard output'])
    assert.ok(lines.includes(`flush ${what}`), what);
});

test('without slice networks or a cgroup2 hierarchy only the remaining matches are made', () => {
  const lines = guardLines('sliced0guard', { bridge: null, sliceRoot: null }, [{ family: 4, address: '127.0.0.1', port: 2379 }]);
  assert.equal(
    lines.filter((l) => l.includes(' rule ')).length,
    0,
    'no rule: there is no way to tell slices apart (then host-network slices are not accounted either)',
  );
  const onlyRoot = guardLines('t', { bridge: null, sliceRoot: { path: 'sliced', level: 1 } }, []);
  assert.deepEqual(
    onlyRoot.filter((l) => l.includes(' rule ')).map((l) => l.split(' ')[4]),
    ['output', 'output', 'output'],
  );
});

test("the agents' channel port is rejected on any address, from the bridge and from the slices' root group", () => {
  const lines = guardLines('g', { bridge: 'slbr0', sliceRoot: { path: 'sliced', level: 1 } }, [], [7946, 7946]);
  assert.ok(lines.includes('add rule inet g input iifname "slbr0" tcp dport @ports counter reject with tcp reset'));
  assert.ok(lines.includes('add rule inet g forward iifname "slbr0" tcp dport @ports counter reject with tcp reset'));
  assert.ok(lines.includes('add rule inet g output socket cgroupv2 level 1 "sliced" tcp dport @ports counter reject with tcp reset'));
  assert.ok(lines.includes('add element inet g ports { 7946 }'), 'a duplicate port is one element');
  assert.ok(lines.includes('flush set inet g ports'));
});
