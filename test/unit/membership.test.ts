/**
 * Cluster membership: the pure rules (names, labels, records, status) and the Membership
 * over a single node's cluster store (LocalClusterStore over a real embedded store): leases
 * that end make a node down, an agent registers again by itself, operators' labels and
 * cordons are compare-and-put, a live node cannot be removed, a name held by another agent is
 * refused. The same Membership runs against a real etcd in test/e2e/cluster.test.ts.
 */
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { LocalClusterStore } from '../../src/cluster/local-cluster-store.js';
import { Membership, type AgentRecord } from '../../src/cluster/membership.js';
import type { ClusterStore } from '../../src/cluster/store.js';
import { SlicedError } from '../../src/core/errors.js';
import {
  applyLabelChanges,
  checkNodeName,
  nodeView,
  parseLabelArgs,
  parseNodeLive,
  parseNodeSpec,
  MAX_LABELS,
} from '../../src/core/membership.js';
import { until } from '../helpers/cluster-store-contract.js';

const code = (c: string) => (err: unknown) => err instanceof SlicedError && err.code === c;

describe('membership rules', () => {
  test('node names are path segments and store keys; anything else is refused with what is allowed', () => {
    for (const good of ['a', 'node-1', 'n1.example', 'A_b']) assert.equal(checkNodeName(good), good);
    for (const bad of ['', '-a', '.', '..', 'a/b', 'a..b', 'x'.repeat(65), 'é']) {
      assert.throws(() => checkNodeName(bad), /1-64 letters, digits/, bad);
    }
  });

  test('labels: KEY=VALUE sets, KEY- removes, as kubectl takes them; bad keys, values and repeats are refused', () => {
    assert.deepEqual(parseLabelArgs(['rack=r1', 'example.com/zone=z-2', 'gpu-', 'empty=']), {
      set: { rack: 'r1', 'example.com/zone': 'z-2', empty: '' },
      remove: ['gpu'],
    });
    assert.throws(() => parseLabelArgs(['rack']), /KEY=VALUE to set a label or KEY- to remove it/);
    assert.throws(() => parseLabelArgs(['rack=1', 'rack-']), /given more than once/);
    assert.throws(() => parseLabelArgs(['-x=1']), /label key "-x"/);
    assert.throws(() => parseLabelArgs(['x=a b']), /value "a b"/);
    assert.deepEqual(applyLabelChanges({ a: '1', b: '2' }, { set: { c: '3', a: '9' }, remove: ['b'] }), { a: '9', c: '3' });
    const many = Object.fromEntries(Array.from({ length: MAX_LABELS }, (_, i) => [`k${i}`, 'v']));
    assert.throws(() => applyLabelChanges(many, { set: { one: 'more' }, remove: [] }), /at most 64 labels/);
  });

  test('a node is up while its live record exists, down otherwise; malformed records are refused naming the key', () => {
    const live = {
      capacity: { cpuMillicores: 1900, cpus: 2, memoryBytes: 1 << 30 },
      addresses: ['10.0.0.1'],
      version: '0.1.0',
      since: 5,
      peer: null,
    };
    assert.equal(nodeView('a', undefined, live).status, 'up');
    assert.deepEqual(nodeView('a', { labels: { r: '1' }, cordoned: true }, undefined), {
      name: 'a',
      labels: { r: '1' },
      cordoned: true,
      status: 'down',
      live: null,
    });
    assert.deepEqual(parseNodeLive('k', JSON.stringify({ ...live, extra: 1 })), live);
    assert.throws(() => parseNodeLive('nodes/a/live', '{"capacity":{}}'), /nodes\/a\/live: not a node's live record/);
    assert.throws(() => parseNodeSpec('nodes/a/spec', 'nope'), /nodes\/a\/spec: not JSON/);
    assert.throws(() => parseNodeSpec('nodes/a/spec', '{"labels":{"a b":"1"},"cordoned":false}'), /label key "a b"/);
  });
});

describe('Membership over a single node store', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function openStore(): Promise<LocalClusterStore> {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-membership-test-'));
    const store = new LocalClusterStore(await EmbeddedStore.open(dir));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => store.close());
    return store;
  }

  function record(instance: string): () => AgentRecord {
    return () => ({
      capacity: { cpuMillicores: 1900, cpus: 2, memoryBytes: 4 << 30 },
      addresses: ['127.0.0.1'],
      version: '0.1.0',
      since: Date.now(),
      peer: null,
      instance,
    });
  }

  /** The store as seen by an agent whose writes (renewals, leases, transactions) fail while `cut.on`. */
  function renewalsLostWhen(store: ClusterStore, cut: { on: boolean }): ClusterStore {
    return {
      revision: () => store.revision(),
      get: (key) => store.get(key),
      range: (prefix) => store.range(prefix),
      rangeVersioned: (prefix) => store.rangeVersioned(prefix),
      txn: (ops) => store.txn(ops),
      txnIf: (compares, ops) => (cut.on ? Promise.reject(new SlicedError('EIO', 'cut off')) : store.txnIf(compares, ops)),
      watch: (prefix, after, onEvent, onError) => store.watch(prefix, after, onEvent, onError),
      compact: (revision) => store.compact(revision),
      close: () => store.close(),
      grantLease: async (ttlMs) => {
        if (cut.on) throw new SlicedError('EIO', 'cut off');
        const lease = await store.grantLease(ttlMs);
        return {
          id: lease.id,
          ttlMs: lease.ttlMs,
          get expiresAt() {
            return lease.expiresAt;
          },
          revoke: () => lease.revoke(),
          keepAlive: () => (cut.on ? undefined : lease.keepAlive()),
        };
      },
    };
  }

  async function member(
    store: ClusterStore,
    name: string,
    options: { ttlMs?: number; instance?: string; labels?: Record<string, string> } = {},
  ) {
    const m = await Membership.join(store, {
      name,
      ttlMs: options.ttlMs ?? 600,
      record: record(options.instance ?? name),
      labels: options.labels,
    });
    cleanups.push(() => m.close());
    return m;
  }

  test('members see each other up with their records and labels; a closed member is down at once, its spec kept', async () => {
    const store = await openStore();
    const a = await member(store, 'a', { labels: { rack: 'r1' } });
    const b = await member(store, 'b');
    await until(() => a.list().length === 2, 'a sees b');
    assert.deepEqual(
      a.list().map((n) => [n.name, n.status, n.labels]),
      [
        ['a', 'up', { rack: 'r1' }],
        ['b', 'up', {}],
      ],
    );
    assert.equal(b.get('a').live?.capacity.cpuMillicores, 1900);
    assert.equal('instance' in (b.get('a').live ?? {}), false, 'the agent identity is not shown');
    await b.close();
    assert.equal(a.get('b').status, 'down');
    assert.throws(() => a.get('nope'), /node nope is not a member/);
  });

  test('a lease that ends shows the node down; the agent notices and registers again by itself', async () => {
    const store = await openStore();
    const a = await member(store, 'a', { ttlMs: 400 });
    // b is cut off from the store's writes (renewals, registering), as a partitioned agent is; it still hears events.
    const cutOff = { on: false };
    await member(renewalsLostWhen(store, cutOff), 'b', { ttlMs: 400 });
    await until(() => a.list().length === 2, 'a sees b');
    cutOff.on = true;
    const lostAt = Date.now();
    await until(() => a.get('b').status === 'down', 'b down', 3000);
    const downAfter = Date.now() - lostAt;
    assert.ok(downAfter <= 400 + 300, `down ${downAfter} ms after renewals stopped (ttl 400 ms, renewed every 133 ms)`);
    cutOff.on = false;
    await until(() => a.get('b').status === 'up', 'b up again by itself', 3000);
  });

  test('labels and cordons persist across absences; remove refuses a live node and forgets a down one', async () => {
    const store = await openStore();
    const a = await member(store, 'a');
    const b = await member(store, 'b');
    await until(() => a.list().length === 2, 'a sees b');
    assert.deepEqual((await a.label('b', parseLabelArgs(['zone=z1', 'gpu=yes']))).labels, { zone: 'z1', gpu: 'yes' });
    assert.equal((await a.setCordoned('b', true)).cordoned, true);
    await until(() => b.get('b').cordoned && b.get('b').labels.zone === 'z1', 'b sees its own spec');
    await assert.rejects(a.remove('b'), (err: unknown) => code('EBUSY')(err) && /node b is up/.test((err as Error).message));
    await b.close();
    const back = await member(store, 'b', { labels: { ignored: 'x' } });
    assert.deepEqual(back.get('b').labels, { zone: 'z1', gpu: 'yes' }, 'a rejoining node keeps the labels operators gave it');
    await back.close();
    await a.remove('b');
    assert.deepEqual(
      a.list().map((n) => n.name),
      ['a'],
    );
    await assert.rejects(a.label('b', parseLabelArgs(['x=1'])), code('ENOENT'));
  });

  test('a name held by another live agent is refused; the same agent restarting takes its name back', async () => {
    const store = await openStore();
    await member(store, 'a', { instance: 'host1:/var/lib/sliced' });
    await assert.rejects(
      Membership.join(store, { name: 'a', ttlMs: 600, record: record('host2:/var/lib/sliced') }),
      (err: unknown) => code('EEXIST')(err) && /node name a is held by another live agent/.test((err as Error).message),
    );
    // A restart within the old lease (SIGKILL, then start again) is the same installation.
    const again = await member(store, 'a', { instance: 'host1:/var/lib/sliced' });
    assert.equal(again.get('a').status, 'up');
  });

  test('concurrent label changes from two members both land (compare-and-put, tried again on conflict)', async () => {
    const store = await openStore();
    const a = await member(store, 'a');
    const b = await member(store, 'b');
    await until(() => a.list().length === 2 && b.list().length === 2, 'both see both');
    await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => a.label('a', parseLabelArgs([`from-a-${i}=1`]))),
      ...Array.from({ length: 5 }, (_, i) => b.label('a', parseLabelArgs([`from-b-${i}=1`]))),
    ]);
    await until(() => Object.keys(b.get('a').labels).length === 10, 'all ten labels');
  });
});
