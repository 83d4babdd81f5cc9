/**
 * The cluster seams of the store (revisions, compare-and-put, watch, leases) on a single node:
 * LocalClusterStore over a real embedded store in a temporary directory. The contract shared
 * with etcd (test/helpers/cluster-store-contract.ts) first, then what only the local store
 * promises.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { LocalClusterStore, type LocalClusterStoreOptions } from '../../src/cluster/local-cluster-store.js';
import type { ClusterStore } from '../../src/cluster/store.js';
import { isSlicedError, type SlicedError } from '../../src/core/errors.js';
import { clusterStoreContract } from '../helpers/cluster-store-contract.js';

/** The directory of each store the contract opened. */
const dirs = new Map<ClusterStore, string>();

clusterStoreContract('LocalClusterStore', {
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-cluster-store-test-'));
    const store = new LocalClusterStore(await EmbeddedStore.open(dir));
    dirs.set(store, dir);
    return store;
  },
  async reopen(store) {
    const dir = dirs.get(store)!;
    await store.close();
    dirs.delete(store);
    const again = new LocalClusterStore(await EmbeddedStore.open(dir));
    dirs.set(again, dir);
    return again;
  },
  async cleanup() {
    for (const dir of new Set(dirs.values())) rmSync(dir, { recursive: true, force: true });
    dirs.clear();
  },
});

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

  test('a watch from history no longer kept is refused with the range that is', async () => {
    const store = await openStore({ historyLimit: 2 });
    for (let i = 0; i < 4; i++) await store.txn([{ type: 'put', key: `k/${i}`, value: String(i) }]);
    const err = await new Promise<SlicedError>((resolve) => {
      store.watch('k/', 1, () => undefined, resolve);
    });
    assert.ok(isSlicedError(err) && err.code === 'EINVAL' && /revisions 3 to 5 are/.test(err.message), String(err));
    const seen: number[] = [];
    store
      .watch(
        'k/',
        3,
        (e) => seen.push(e.revision),
        () => undefined,
      )
      .close();
    assert.deepEqual(seen, [4, 5], 'history is delivered at once, before watch() returns');
    assert.throws(
      () =>
        store.watch(
          'k/',
          -1,
          () => undefined,
          () => undefined,
        ),
      /a whole number >= 0/,
    );
  });

  test('leased keys never reach the disk, and a key taken over by a lease is deleted there', async () => {
    const store = await openStore();
    await store.txn([{ type: 'put', key: 'members/old', value: 'on disk' }]);
    const lease = await store.grantLease(60_000);
    await store.txnIf(
      [],
      [
        { type: 'put', key: 'members/a', value: 'alive', lease: lease.id },
        { type: 'put', key: 'members/old', value: 'taken over', lease: lease.id },
      ],
    );
    await closeStore(store);
    const disk = await EmbeddedStore.open(dir);
    try {
      assert.deepEqual(await disk.range('members/'), new Map());
    } finally {
      await disk.close();
    }
  });
});
