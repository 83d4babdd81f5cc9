/**
 * Remote values over a cluster store (LocalClusterStore over a real embedded store): a node's
 * values are put with its lease (so they vanish with it, and never reach the disk of a node
 * alone), publications of one turn go out as one transaction, and the other nodes' values are
 * read from a watched cache.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { LocalClusterStore } from '../../src/cluster/local-cluster-store.js';
import { ClusterRemoteValues } from '../../src/cluster/remote-values.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(): Promise<{ durable: EmbeddedStore; store: LocalClusterStore }> {
  const dir = mkdtempSync(join(tmpdir(), 'sliced-remote-values-test-'));
  const durable = await EmbeddedStore.open(dir);
  const store = new LocalClusterStore(durable);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => store.close());
  return { durable, store };
}

test('a node sees the others values, not its own; they go with the publisher lease', async () => {
  const { store } = await open();
  const leaseA = await store.grantLease(60_000);
  const a = new ClusterRemoteValues(store, 'a', () => leaseA.id);
  const b = new ClusterRemoteValues(store, 'b', () => null);
  cleanups.push(
    () => a.close(),
    () => b.close(),
  );
  assert.deepEqual(await b.fetch('/p/port'), []);
  await a.publish('/p/port', ['cpu0', 'cpu1'], [1, 2]);
  assert.deepEqual(await b.fetch('/p/port'), [{ node: 'a', labels: ['cpu0', 'cpu1'], data: [1, 2] }]);
  assert.deepEqual(await a.fetch('/p/port'), [], 'a node does not read its own value back');
  await b.publish('/p/port', [], [7]);
  assert.deepEqual(await b.fetch('/p/port'), [{ node: 'a', labels: ['cpu0', 'cpu1'], data: [1, 2] }], 'no lease: b publishes nothing');
  await leaseA.revoke();
  assert.deepEqual(await b.fetch('/p/port'), [], "a's values went with its lease");
});

test('publications of one turn are one transaction, and none reaches the disk', async () => {
  const { durable, store } = await open();
  const lease = await store.grantLease(60_000);
  const a = new ClusterRemoteValues(store, 'a', () => lease.id);
  cleanups.push(() => a.close());
  const before = await store.revision();
  await Promise.all([a.publish('/x', [], [1]), a.publish('/y', [], [2]), a.publish('/z', [], [3])]);
  assert.equal(await store.revision(), before + 1, 'three values, one revision');
  assert.equal((await durable.range('values/')).size, 0, 'leased values stay in memory');
  assert.equal((await store.range('values/')).size, 3);
});
