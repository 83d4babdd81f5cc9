/**
 * The config tree shared by a cluster (TreeSync inside TreeService), on a cluster store that
 * all "nodes" here share (LocalClusterStore over a real embedded store; test/e2e/cluster.test.ts
 * runs the same on etcd with real daemons): a change made on one node reaches the others; a
 * commit that loses against another node's is undone and tried again on the newer tree, so
 * the loser of two equal mkdirs is told the name exists and no tree diverges; process-set
 * members stay in the node's own store; a lost history is recovered by reading the keys again.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { LocalClusterStore } from '../../src/cluster/local-cluster-store.js';
import type { ClusterStore } from '../../src/cluster/store.js';
import { treeToYaml } from '../../src/framework/document.js';
import { ADMIN, TreeService } from '../../src/framework/service.js';
import { difference } from '../../src/framework/tree-sync.js';
import { assertSound, makeTree, silentLog } from './framework-fixtures.js';
import { until } from '../helpers/cluster-store-contract.js';

const DEFAULT_DOC = 'probes:\n  cpu:\n    probe_period: 700\n';
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function openDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sliced-tree-sync-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function clusterStore(): Promise<LocalClusterStore> {
  const store = new LocalClusterStore(await EmbeddedStore.open(await openDir()));
  cleanups.push(() => store.close());
  return store;
}

async function node(shared: ClusterStore, name: string) {
  const local = await EmbeddedStore.open(await openDir());
  cleanups.push(() => local.close());
  const { tree, registry } = makeTree();
  const service = new TreeService(tree, registry, { local, cluster: { store: shared, nodeName: name, takeClusterTree: false } }, silentLog);
  await service.restore(() => DEFAULT_DOC);
  cleanups.push(() => {
    service.close();
    tree.destroyAll();
  });
  return { service, tree, local };
}

test('the first node sets the cluster tree up; the others take it; changes reach every node', async () => {
  const shared = await clusterStore();
  const a = await node(shared, 'a');
  const b = await node(shared, 'b');
  assert.equal(b.tree.read('/probes/cpu/probe_period'), '700\n', "b took the cluster's tree");
  await a.service.mkdir(ADMIN, '/schedulers/s');
  await b.service.write(ADMIN, '/probes/cpu/probe_period', '300');
  await until(() => b.tree.exists('/schedulers/s') && a.tree.read('/probes/cpu/probe_period') === '300\n', 'both changes on both nodes');
  assert.equal(treeToYaml(a.tree), treeToYaml(b.tree));
  assertSound(a.tree, 'a');
  assertSound(b.tree, 'b');
});

/** The shared store as a node sees it whose first commit touching `key` lets `first()` commit before it. */
function racing(shared: ClusterStore, key: string, first: () => Promise<void>): { store: ClusterStore; raced: () => boolean } {
  let raced = false;
  const store: ClusterStore = {
    revision: () => shared.revision(),
    get: (k) => shared.get(k),
    range: (p) => shared.range(p),
    rangeVersioned: (p) => shared.rangeVersioned(p),
    txn: (ops) => shared.txn(ops),
    watch: (...args) => shared.watch(...args),
    compact: (r) => shared.compact(r),
    grantLease: (ttl) => shared.grantLease(ttl),
    close: () => shared.close(),
    txnIf: async (compares, ops) => {
      if (!raced && ops.some((op) => op.key === key)) {
        raced = true;
        await first();
      }
      return shared.txnIf(compares, ops);
    },
  };
  return { store, raced: () => raced };
}

test('a commit that loses is undone and made again on the newer tree', async () => {
  const shared = await clusterStore();
  const a = await node(shared, 'a');
  const race = racing(shared, 'tree/d/schedulers/mine', () => a.service.mkdir(ADMIN, '/schedulers/theirs'));
  const b = await node(race.store, 'b');
  await b.service.mkdir(ADMIN, '/schedulers/mine');
  assert.ok(race.raced(), 'the race happened: b committed after a');
  await until(() => a.tree.exists('/schedulers/mine'), "a has b's directory");
  assert.ok(b.tree.exists('/schedulers/theirs'), "b has a's directory");
  assert.equal(treeToYaml(a.tree), treeToYaml(b.tree));
  assertSound(b.tree, 'b after the undo');
});

test('the loser of two equal mkdirs is told the name exists; no tree diverges', async () => {
  const shared = await clusterStore();
  const a = await node(shared, 'a');
  const race = racing(shared, 'tree/d/schedulers/race', () => a.service.mkdir(ADMIN, '/schedulers/race'));
  const b = await node(race.store, 'b');
  await assert.rejects(b.service.mkdir(ADMIN, '/schedulers/race'), /already exists/);
  assert.ok(race.raced(), 'the race happened');
  assert.equal(treeToYaml(a.tree), treeToYaml(b.tree));
});

test("process-set members are the node's own: kept in its store, not shared", async () => {
  const shared = await clusterStore();
  const a = await node(shared, 'a');
  const b = await node(shared, 'b');
  await a.service.mkdir(ADMIN, '/schedulers/s');
  await a.service.mkdir(ADMIN, `/schedulers/s/process_set/single_processes/${process.pid}`);
  await until(() => b.tree.exists('/schedulers/s'), 'b has the scheduler');
  assert.equal(b.tree.exists(`/schedulers/s/process_set/single_processes/${process.pid}`), false);
  assert.ok((await a.local.range('tree/d/schedulers/s/process_set/')).size === 1, "the member is in a's own store");
  assert.equal((await shared.range('tree/d/schedulers/s/process_set/')).size, 0, 'and not in the shared one');
});

test('after a lost history the difference of the keys is applied: removals deepest first, then additions in order', () => {
  const before = new Map([
    ['tree/d/schedulers/s', '{"seq":1}'],
    ['tree/d/schedulers/s/p', '{"seq":2}'],
    ['tree/l/schedulers/s/p/port/l', '{"target":"/probes/cpu/node_load","seq":3}'],
  ]);
  const after = new Map([
    ['tree/d/schedulers/t', '{"seq":5}'],
    ['tree/a/probes/cpu/probe_period', '{"value":"200","seq":6}'],
  ]);
  assert.deepEqual(
    difference(before, after, 9).map((e) => `${e.type} ${e.key}`),
    [
      'delete tree/l/schedulers/s/p/port/l',
      'delete tree/d/schedulers/s/p',
      'delete tree/d/schedulers/s',
      'put tree/d/schedulers/t',
      'put tree/a/probes/cpu/probe_period',
    ],
  );
});
