/**
 * The contract every ClusterStore keeps (src/cluster/store.ts), as tests any implementation
 * registers with a harness that opens its stores: LocalClusterStore in the unit tests, etcd in
 * test/e2e/etcd-store.test.ts. Revisions are compared relative to the store's own (etcd's
 * count is cluster-wide); what only one implementation promises (the local store's revisions
 * counting from 1 at opening, leased keys never on disk) stays in that implementation's tests.
 */
import { afterEach, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterStore, StoreEvent } from '../../src/cluster/store.js';
import { isSlicedError, type SlicedError } from '../../src/core/errors.js';
import { skipWith, SLOW } from './env.js';

export interface ClusterStoreHarness {
  /** Why the stores cannot be opened here, or null. */
  skipReason?(): string | null;
  /** A new, empty store (a directory or key prefix of its own). */
  open(): Promise<ClusterStore>;
  /** Close `store` and open the same data again, as a restarted node would. */
  reopen(store: ClusterStore): Promise<ClusterStore>;
  /** After each test, once the test's stores are closed. */
  cleanup?(): Promise<void>;
}

/** Registers the contract's tests in a describe block named `name`. */
export function clusterStoreContract(name: string, harness: ClusterStoreHarness): void {
  let open: ClusterStore[] = [];

  async function openStore(): Promise<ClusterStore> {
    const store = await harness.open();
    open.push(store);
    return store;
  }

  async function reopenStore(store: ClusterStore): Promise<ClusterStore> {
    open = open.filter((s) => s !== store);
    const again = await harness.reopen(store);
    open.push(again);
    return again;
  }

  /** Registers a contract test that skips, with the reason printed, where the harness cannot run. */
  function contractTest(title: string, body: (t: TestContext) => Promise<void>): void {
    test(title, async (t) => {
      const reason = harness.skipReason?.() ?? null;
      if (reason !== null) return skipWith(t, reason);
      await body(t);
    });
  }

  describe(`${name}: the ClusterStore contract`, () => {
    afterEach(async () => {
      for (const store of open.splice(0)) await store.close();
      await harness.cleanup?.();
    });

    contractTest('each write gets the next revision; a range gives each key the revision of its last write', async () => {
      const store = await openStore();
      const r0 = await store.revision();
      assert.deepEqual(await store.txnIf([], [{ type: 'put', key: 'a/1', value: 'x' }]), { succeeded: true, revision: r0 + 1 });
      await store.txn([{ type: 'put', key: 'a/2', value: 'y' }]);
      assert.deepEqual(await store.rangeVersioned('a/'), {
        revision: r0 + 2,
        entries: new Map([
          ['a/1', { value: 'x', modRevision: r0 + 1 }],
          ['a/2', { value: 'y', modRevision: r0 + 2 }],
        ]),
      });
      await store.txn([
        { type: 'put', key: 'a/1', value: 'z' },
        { type: 'delete', key: 'a/2' },
      ]);
      assert.equal(await store.revision(), r0 + 3, 'one transaction, one revision');
      assert.deepEqual(await store.rangeVersioned('a/'), {
        revision: r0 + 3,
        entries: new Map([['a/1', { value: 'z', modRevision: r0 + 3 }]]),
      });
      assert.equal(await store.get('a/2'), undefined);
      assert.deepEqual(await store.range('a/'), new Map([['a/1', 'z']]));
    });

    contractTest('what was written is there after reopening', async () => {
      const store = await openStore();
      await store.txn([
        { type: 'put', key: 'slices/web', value: '{"cpu":1}' },
        { type: 'put', key: 'slices/db', value: '{"cpu":2}' },
      ]);
      await store.txn([{ type: 'delete', key: 'slices/db' }]);
      const again = await reopenStore(store);
      assert.deepEqual(await again.range('slices/'), new Map([['slices/web', '{"cpu":1}']]));
      assert.equal(await again.get('slices/web'), '{"cpu":1}');
    });

    contractTest('compare-and-put: applies only when every compare holds; 0 means absent; one of two creators wins', async () => {
      const store = await openStore();
      const created = await store.txnIf([{ key: 'lock', modRevision: 0 }], [{ type: 'put', key: 'lock', value: 'node-a' }]);
      assert.equal(created.succeeded, true);
      assert.equal((await store.rangeVersioned('lock')).entries.get('lock')?.modRevision, created.revision);
      const again = await store.txnIf([{ key: 'lock', modRevision: 0 }], [{ type: 'put', key: 'lock', value: 'node-b' }]);
      assert.deepEqual(
        again,
        { succeeded: false, revision: created.revision },
        'the key exists: a create-if-absent fails and writes nothing',
      );
      const stale = await store.txnIf(
        [{ key: 'lock', modRevision: created.revision - 1 }],
        [
          { type: 'put', key: 'lock', value: 'node-b' },
          { type: 'put', key: 'other', value: 'x' },
        ],
      );
      assert.deepEqual(stale, { succeeded: false, revision: created.revision });
      assert.equal(await store.get('lock'), 'node-a');
      assert.equal(await store.get('other'), undefined, 'a failed compare writes nothing');
      const swapped = await store.txnIf(
        [
          { key: 'lock', modRevision: created.revision },
          { key: 'other', modRevision: 0 },
        ],
        [{ type: 'put', key: 'lock', value: 'node-c' }],
      );
      assert.deepEqual(swapped, { succeeded: true, revision: created.revision + 1 }, 'every compare holds');
      assert.equal(await store.get('lock'), 'node-c');

      const racers = await Promise.all(
        ['c', 'd'].map((node) => store.txnIf([{ key: 'leader', modRevision: 0 }], [{ type: 'put', key: 'leader', value: node }])),
      );
      assert.deepEqual(racers.map((r) => r.succeeded).sort(), [false, true], 'exactly one creator wins');
      assert.equal(await store.get('leader'), racers[0]!.succeeded ? 'c' : 'd');
    });

    contractTest('watch: what changed after the revision first, then each new change, under the prefix only', async () => {
      const store = await openStore();
      await store.txn([{ type: 'put', key: 'n/a', value: '1' }]);
      const { revision } = await store.rangeVersioned('n/');
      await store.txn([{ type: 'put', key: 'n/b', value: '2' }]);
      await store.txn([{ type: 'put', key: 'other/x', value: '3' }]);
      const seen: StoreEvent[] = [];
      const errors: SlicedError[] = [];
      const watch = store.watch(
        'n/',
        revision,
        (e) => seen.push(e),
        (err) => errors.push(err),
      );
      await store.txn([{ type: 'delete', key: 'n/a' }]);
      await until(() => seen.length >= 2, 'the watch delivered 2 events');
      watch.close();
      await store.txn([{ type: 'put', key: 'n/c', value: '4' }]);
      await sleep(100 * SLOW);
      assert.deepEqual(seen, [
        { type: 'put', key: 'n/b', value: '2', revision: revision + 1 },
        { type: 'delete', key: 'n/a', value: null, revision: revision + 3 },
      ]);
      assert.deepEqual(errors, []);
    });

    contractTest('a watch from history no longer kept is reported as such; one from the compacted revision on is served', async () => {
      const store = await openStore();
      const revisions: number[] = [];
      for (let i = 0; i < 4; i++) revisions.push((await store.txnIf([], [{ type: 'put', key: `k/${i}`, value: String(i) }])).revision);
      await store.compact(revisions[2]!);
      const err = await new Promise<SlicedError>((resolve, reject) => {
        store.watch('k/', revisions[0]!, () => reject(new Error('an event from history that is no longer kept')), resolve);
      });
      assert.ok(isSlicedError(err) && /history is not kept/.test(err.message), `reported: ${String(err)}`);
      const seen: number[] = [];
      const errors: SlicedError[] = [];
      const watch = store.watch(
        'k/',
        revisions[1]!,
        (e) => seen.push(e.revision),
        (e) => errors.push(e),
      );
      await until(() => seen.length >= 2, 'the watch delivered the 2 kept events');
      watch.close();
      assert.deepEqual(seen, [revisions[2], revisions[3]]);
      assert.deepEqual(errors, []);
    });

    contractTest('a leased key vanishes when its lease expires, stays while kept alive, and is gone after reopening', async () => {
      const store = await openStore();
      await store.txn([{ type: 'put', key: 'members/old', value: 'before' }]);
      // A time to live far above the keep-alive interval: a loaded machine delays timers.
      const lease = await store.grantLease(1000);
      assert.ok(lease.ttlMs >= 1000, `the time to live granted (${lease.ttlMs} ms) is at least the one asked for`);
      await store.txnIf(
        [],
        [
          { type: 'put', key: 'members/a', value: 'alive', lease: lease.id },
          { type: 'put', key: 'members/old', value: 'taken over', lease: lease.id },
        ],
      );
      const deletes: string[] = [];
      store.watch(
        'members/',
        await store.revision(),
        (e) => e.type === 'delete' && deletes.push(e.key),
        () => undefined,
      );
      for (let kept = 0; kept < lease.ttlMs * 1.2; kept += 200) {
        await sleep(200);
        lease.keepAlive();
      }
      assert.equal(await store.get('members/a'), 'alive', 'kept alive past its time to live');
      // What fencing relies on: the earliest end moves with the renewals, within one time to live from now.
      await sleep(100);
      const earliestEnd = lease.expiresAt;
      assert.ok(earliestEnd > Date.now() && earliestEnd <= Date.now() + lease.ttlMs, `expiresAt ${earliestEnd - Date.now()} ms from now`);
      for (let waited = 0; deletes.length < 2 && waited < lease.ttlMs + 5000 * SLOW; waited += 100) await sleep(100);
      assert.deepEqual(deletes.sort(), ['members/a', 'members/old'], 'the lease expired: its keys were deleted');
      assert.deepEqual(await store.range('members/'), new Map());
      assert.throws(() => lease.keepAlive(), /has ended/);
      await assert.rejects(
        store.txnIf([], [{ type: 'put', key: 'members/b', value: 'x', lease: lease.id }]),
        (err: unknown) => isSlicedError(err) && err.code === 'ENOENT',
      );

      const second = await store.grantLease(60_000);
      await store.txnIf([], [{ type: 'put', key: 'members/c', value: 'alive', lease: second.id }]);
      const reopened = await reopenStore(store);
      assert.deepEqual(await reopened.range('members/'), new Map(), 'a lease does not outlive the store that holds it');
    });

    contractTest('revoking a lease deletes its keys at once, in one revision', async () => {
      const store = await openStore();
      const lease = await store.grantLease(60_000);
      const { revision } = await store.txnIf(
        [],
        [
          { type: 'put', key: 'x', value: '1', lease: lease.id },
          { type: 'put', key: 'y', value: '2', lease: lease.id },
        ],
      );
      await lease.revoke();
      assert.equal(lease.expiresAt, 0, 'a revoked lease has ended');
      assert.equal(await store.get('x'), undefined);
      assert.equal(await store.get('y'), undefined);
      assert.equal(await store.revision(), revision + 1);
      assert.throws(() => lease.keepAlive(), /has ended/);
    });

    contractTest('a closed store refuses writes', async () => {
      const store = await openStore();
      open = open.filter((s) => s !== store);
      await store.close();
      await assert.rejects(
        store.txnIf([], [{ type: 'put', key: 'x', value: '1' }]),
        (err: unknown) => isSlicedError(err) && err.code === 'EIO',
      );
    });
  });
}

/** Wait until `done()` holds, up to a few seconds (scaled by SLOW). */
export async function until(done: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  for (let waited = 0; !done(); waited += 20) {
    if (waited > timeoutMs * SLOW) assert.fail(`timed out after ${timeoutMs * SLOW} ms waiting until ${what}`);
    await sleep(20);
  }
}
