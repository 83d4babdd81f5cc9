/**
 * The cluster seams of the store (revisions, compare-and-put, watch, leases) on a single node:
 * LocalClusterStore over a real embedded store in a temporary directory.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { LocalClusterStore, type LocalClusterStoreOptions } from '../../src/cluster/local-cluster-store.js';
import type { StoreEvent } from '../../src/cluster/store.js';
import { isSlicedError } from '../../src/core/errors.js';

let dir = '';
let open: LocalClusterStore[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sliced-cluster-store-test-'));
});

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function openStore(options?: LocalClusterStoreOptions): Promise<LocalClusterStore> {
  const store = new LocalClusterStore(await EmbeddedStore.open(dir), options);
  open.push(store);
  return store;
}

async function closeStore(store: LocalClusterStore): Promise<void> {
  open = open.filter((s) => s !== store);
  await store.close();
}

describe('LocalClusterStore', () => {
  test('revisions count from the opening: keys found then are at 1, each write adds one', async () => {
    const first = await openStore();
    await first.txn([{ type: 'put', key: 'a/1', value: 'x' }]);
    await closeStore(first);

    const store = await openStore();
    assert.equal(await store.revision(), 1);
    assert.deepEqual(await store.rangeVersioned('a/'), { revision: 1, entries: new Map([['a/1', { value: 'x', modRevision: 1 }]]) });
    await store.txn([{ type: 'put', key: 'a/2', value: 'y' }]);
    await store.txn([
      { type: 'put', key: 'a/1', value: 'z' },
      { type: 'delete', key: 'a/2' },
    ]);
    assert.deepEqual(await store.rangeVersioned('a/'), { revision: 3, entries: new Map([['a/1', { value: 'z', modRevision: 3 }]]) });
  });

  test('compare-and-put: applies only when every compare holds; 0 means absent; one of two creators wins', async () => {
    const store = await openStore();
    const created = await store.txnIf([{ key: 'lock', modRevision: 0 }], [{ type: 'put', key: 'lock', value: 'node-a' }]);
    assert.deepEqual(created, { succeeded: true, revision: 2 });
    const stale = await store.txnIf(
      [{ key: 'lock', modRevision: 1 }],
      [
        { type: 'put', key: 'lock', value: 'node-b' },
        { type: 'put', key: 'other', value: 'x' },
      ],
    );
    assert.deepEqual(stale, { succeeded: false, revision: 2 });
    assert.equal(await store.get('lock'), 'node-a');
    assert.equal(await store.get('other'), undefined, 'a failed compare writes nothing');
    const racers = await Promise.all(
      ['c', 'd'].map((node) => store.txnIf([{ key: 'leader', modRevision: 0 }], [{ type: 'put', key: 'leader', value: node }])),
    );
    assert.deepEqual(
      racers.map((r) => r.succeeded),
      [true, false],
    );
    assert.equal(await store.get('leader'), 'c');
  });

  test('watch: what changed after the revision first, then each new change, under the prefix only', async () => {
    const store = await openStore();
    await store.txn([{ type: 'put', key: 'n/a', value: '1' }]);
    const { revision } = await store.rangeVersioned('n/');
    await store.txn([{ type: 'put', key: 'n/b', value: '2' }]);
    await store.txn([{ type: 'put', key: 'other/x', value: '3' }]);
    const seen: StoreEvent[] = [];
    const watch = store.watch('n/', revision, (e) => seen.push(e));
    await store.txn([{ type: 'delete', key: 'n/a' }]);
    watch.close();
    await store.txn([{ type: 'put', key: 'n/c', value: '4' }]);
    assert.deepEqual(seen, [
      { type: 'put', key: 'n/b', value: '2', revision: 3 },
      { type: 'delete', key: 'n/a', value: null, revision: 5 },
    ]);
  });

  test('a watch from history no longer kept is refused with the range that is', async () => {
    const store = await openStore({ historyLimit: 2 });
    for (let i = 0; i < 4; i++) await store.txn([{ type: 'put', key: `k/${i}`, value: String(i) }]);
    assert.throws(
      () => store.watch('k/', 1, () => undefined),
      (err: unknown) => isSlicedError(err) && err.code === 'EINVAL' && /revisions 3 to 5 are/.test(err.message),
    );
    const seen: number[] = [];
    store.watch('k/', 3, (e) => seen.push(e.revision)).close();
    assert.deepEqual(seen, [4, 5]);
  });

  test('a leased key vanishes when its lease expires, stays while kept alive, and never reaches the disk', async () => {
    const store = await openStore();
    await store.txn([{ type: 'put', key: 'members/old', value: 'on disk' }]);
    // A time to live far above the keep-alive interval: a loaded machine delays timers.
    const lease = await store.grantLease(1000);
    await store.txnIf(
      [],
      [
        { type: 'put', key: 'members/a', value: 'alive', lease: lease.id },
        { type: 'put', key: 'members/old', value: 'taken over', lease: lease.id },
      ],
    );
    const deletes: string[] = [];
    store.watch('members/', await store.revision(), (e) => e.type === 'delete' && deletes.push(e.key));
    for (let i = 0; i < 6; i++) {
      await sleep(200);
      lease.keepAlive();
    }
    assert.equal(await store.get('members/a'), 'alive', 'kept alive past its time to live');
    for (let waited = 0; deletes.length < 2 && waited < 5000; waited += 100) await sleep(100);
    assert.deepEqual(deletes.sort(), ['members/a', 'members/old'], 'the lease expired: its keys were deleted');
    assert.deepEqual(await store.range('members/'), new Map());
    assert.throws(() => lease.keepAlive(), /has ended/);
    await assert.rejects(
      store.txnIf([], [{ type: 'put', key: 'members/b', value: 'x', lease: lease.id }]),
      (err: unknown) => isSlicedError(err) && err.code === 'ENOENT',
    );

    const second = await store.grantLease(60_000);
    await store.txnIf([], [{ type: 'put', key: 'members/c', value: 'alive', lease: second.id }]);
    await closeStore(store);
    const reopened = await openStore();
    assert.deepEqual(await reopened.range('members/'), new Map(), 'a lease does not outlive its process: nothing leased was on disk');
  });

  test('revoking a lease deletes its keys at once', async () => {
    const store = await openStore();
    const lease = await store.grantLease(60_000);
    await store.txnIf([], [{ type: 'put', key: 'x', value: '1', lease: lease.id }]);
    await lease.revoke();
    assert.equal(await store.get('x'), undefined);
    assert.equal((await store.rangeVersioned('x')).revision, 3);
  });
});
