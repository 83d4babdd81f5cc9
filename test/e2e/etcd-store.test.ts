/**
 * EtcdStore against a real 3-member etcd (test/helpers/etcd.ts): the ClusterStore contract
 * the local store keeps too, then what only a distributed store faces: a member dying under
 * writes and under a watch, compaction by another client, and no etcd at all.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { EtcdStore } from '../../src/cluster/etcd-store.js';
import type { ClusterStore, StoreEvent } from '../../src/cluster/store.js';
import { isSlicedError, type SlicedError } from '../../src/core/errors.js';
import { clusterStoreContract, until } from '../helpers/cluster-store-contract.js';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd.js';
import { skipWith, SLOW } from '../helpers/env.js';

let cluster: EtcdCluster | undefined;
const prefixes = new Map<ClusterStore, string>();

before(async () => {
  if (etcdSkipReason() !== null) return;
  cluster = await EtcdCluster.start(3);
  process.stderr.write(
    `etcd: 3 members in network namespaces healthy ${cluster.startMs} ms after spawning (${cluster.endpoints.join(',')})\n`,
  );
});

after(async () => {
  await cluster?.destroy();
});

function skipReason(): string | null {
  return etcdSkipReason() ?? (cluster ? null : 'the etcd cluster did not start');
}

async function openStore(prefix = `/sliced-test/${randomUUID()}/`): Promise<EtcdStore> {
  const store = await EtcdStore.open({ endpoints: cluster!.endpoints, prefix });
  prefixes.set(store, prefix);
  return store;
}

clusterStoreContract('EtcdStore', {
  skipReason,
  open: async () => openStore(),
  async reopen(store) {
    await store.close();
    return openStore(prefixes.get(store));
  },
});

/** A test that skips with the reason printed when etcd cannot run here. */
function etcdTest(title: string, body: (t: TestContext) => Promise<void>): void {
  test(title, async (t) => {
    const reason = skipReason();
    if (reason !== null) return skipWith(t, reason);
    await body(t);
  });
}

/** Create `key` once: a retried call that finds its own earlier attempt applied counts as done. */
async function createWithRetry(store: ClusterStore, key: string, value: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { succeeded } = await store.txnIf([{ key, modRevision: 0 }], [{ type: 'put', key, value }]);
      if (succeeded || (await store.get(key)) === value) return;
      assert.fail(`${key} exists with another value`);
    } catch (err) {
      if (!isSlicedError(err) || attempt >= 20) throw err;
    }
  }
}

describe('EtcdStore on a 3-member etcd', () => {
  etcdTest('writes go on while any one member is dead; a call never waits past its deadline', async () => {
    const store = await openStore();
    try {
      let slowest = 0;
      for (let dead = 0; dead < 3; dead++) {
        await cluster!.kill(dead);
        for (let i = 0; i < 10; i++) {
          const started = Date.now();
          const res = await store.txnIf([{ key: `w/${dead}/${i}`, modRevision: 0 }], [{ type: 'put', key: `w/${dead}/${i}`, value: 'x' }]);
          slowest = Math.max(slowest, Date.now() - started);
          assert.equal(res.succeeded, true);
        }
        const restartMs = await cluster!.restart(dead);
        process.stderr.write(`etcd: member m${dead} restarted on its data in ${restartMs} ms\n`);
      }
      assert.equal((await store.range('w/')).size, 30);
      process.stderr.write(`etcd: slowest write with one member dead: ${slowest} ms\n`);
      assert.ok(slowest < 10_000 * SLOW, `slowest write ${slowest} ms`);
    } finally {
      await store.close();
    }
  });

  etcdTest('a watch resumes across member restarts without losing or repeating an event', async () => {
    const writer = await openStore();
    const watcher = await openStore(prefixes.get(writer));
    try {
      const seen: StoreEvent[] = [];
      const errors: SlicedError[] = [];
      const watch = watcher.watch(
        'e/',
        await writer.revision(),
        (e) => seen.push(e),
        (e) => errors.push(e),
      );
      const written: string[] = [];
      let stop = false;
      const writing = (async () => {
        for (let i = 0; !stop; i++) {
          const key = `e/${String(i).padStart(5, '0')}`;
          await createWithRetry(writer, key, String(i));
          written.push(key);
        }
      })();
      // Every member in turn: whichever one the watch's stream is on goes down once.
      for (let i = 0; i < 3; i++) {
        await until(() => written.length >= 20 * (i + 1), `${20 * (i + 1)} writes`, 20_000);
        await cluster!.kill(i);
        await until(() => written.length >= 20 * (i + 1) + 10, 'writes with a member dead', 20_000);
        await cluster!.restart(i);
      }
      stop = true;
      await writing;
      await until(() => seen.length >= written.length, `the watch saw all ${written.length} writes`, 20_000);
      watch.close();
      assert.deepEqual(errors, []);
      assert.deepEqual(
        seen.map((e) => e.key),
        written,
        'every write seen once, in order',
      );
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.revision > seen[i - 1]!.revision, 'revisions increase');
    } finally {
      await writer.close();
      await watcher.close();
    }
  });

  etcdTest('a watch from a revision another client compacted is reported as history not kept', async () => {
    const store = await openStore();
    const other = await openStore(prefixes.get(store));
    try {
      const start = await store.revision();
      for (let i = 0; i < 3; i++) await store.txn([{ type: 'put', key: `c/${i}`, value: String(i) }]);
      const compactedTo = await store.revision();
      await other.compact(compactedTo);
      const err = await new Promise<SlicedError>((resolve, reject) => {
        store.watch('c/', start, () => reject(new Error('an event from compacted history')), resolve);
      });
      assert.ok(isSlicedError(err) && err.code === 'EINVAL', String(err));
      assert.match(err.message, /history is not kept/);
      assert.match(err.message, new RegExp(`compacted up to revision ${compactedTo}`));
      // Range again and watch from its revision, as the message says.
      const { revision, entries } = await store.rangeVersioned('c/');
      assert.equal(entries.size, 3);
      const seen: string[] = [];
      const watch = store.watch(
        'c/',
        revision,
        (e) => seen.push(e.key),
        () => undefined,
      );
      await store.txn([{ type: 'put', key: 'c/3', value: '3' }]);
      await until(() => seen.length === 1, 'the new watch saw the write');
      watch.close();
      assert.deepEqual(seen, ['c/3']);
    } finally {
      await store.close();
      await other.close();
    }
  });

  etcdTest(
    'with every member frozen, calls fail with EIO naming the endpoints within their deadlines; thawed, the store goes on',
    async () => {
      const store = await openStore();
      const size = cluster!.endpoints.length;
      try {
        await store.txn([{ type: 'put', key: 'f/before', value: '1' }]);
        // Frozen, not dead: connections stay open and nothing answers, so only deadlines end calls.
        for (let i = 0; i < size; i++) cluster!.pause(i);
        const started = Date.now();
        await assert.rejects(
          store.txnIf([], [{ type: 'put', key: 'f/during', value: '1' }]),
          (err: unknown) => isSlicedError(err) && err.code === 'EIO' && err.message.includes(cluster!.endpoints.join(',')),
        );
        const elapsed = Date.now() - started;
        process.stderr.write(`etcd: a write with every member frozen failed after ${elapsed} ms\n`);
        // One attempt per member plus one, each ended by its 2 s deadline.
        assert.ok(elapsed < (size + 1) * 2000 + 1500 * SLOW, `failed after ${elapsed} ms`);
      } finally {
        for (let i = 0; i < size; i++) cluster!.resume(i);
      }
      try {
        const thawed = Date.now();
        for (;;) {
          try {
            await store.txn([{ type: 'put', key: 'f/after', value: '1' }]);
            break;
          } catch (err) {
            if (Date.now() - thawed > 20_000 * SLOW) throw err;
          }
        }
        process.stderr.write(`etcd: the first write after thawing succeeded after ${Date.now() - thawed} ms\n`);
        const keys = [...(await store.range('f/')).keys()].sort();
        // The write that failed may or may not have been applied (a frozen member may apply it on
        // waking); the caller was told it failed, and nothing acknowledged is lost.
        assert.deepEqual(
          keys.filter((k) => k !== 'f/during'),
          ['f/after', 'f/before'],
        );
      } finally {
        await store.close();
      }
    },
  );
});
