import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import type { NodeCapacity } from '../../src/core/admission.js';
import * as changes from '../../src/core/changes.js';
import { emptyState } from '../../src/core/model.js';
import { StateRepository } from '../../src/cluster/state-repository.js';

const node: NodeCapacity = { cpuMillicores: 2000, systemReserveMillicores: 100, memoryBytes: 2 ** 33 };
const dir = mkdtempSync(join(tmpdir(), 'a13-repo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('StateRepository: the stored desired state', () => {
  test('writes differences, loads them back, and rewrites only what the store lacks', async () => {
    const store = await EmbeddedStore.open(join(dir, 'one'));
    try {
      const repo = new StateRepository(store);
      let s = changes.createDomain(emptyState(), { name: 'd' }, node);
      s = changes.createSlice(s, { name: 'web', user: 'sl-web', userCreated: true, domain: 'd' }, node);
      await repo.write(emptyState(), s);
      assert.deepEqual([...(await store.range('/')).keys()].sort(), ['/domains/d', '/slices/web']);
      assert.deepEqual(await repo.load(), s);
      const next = changes.deleteSlice(s, 'web');
      await repo.write(s, next);
      assert.deepEqual(await repo.load(), next);
      assert.equal(await repo.rewrite(next), 0, 'nothing is missing');
      assert.equal(await repo.rewrite(s), 1, 'the slice is put back');
      assert.deepEqual(await repo.load(), s);
    } finally {
      await store.close();
    }
  });

  test('a scope keeps one state apart from another in the same store (a cluster keys each node)', async () => {
    const store = await EmbeddedStore.open(join(dir, 'two'));
    try {
      const own = new StateRepository(store);
      const n1 = new StateRepository(store, '/nodes/n1');
      const a = changes.createSlice(emptyState(), { name: 'a', user: 'sl-a', userCreated: true }, node);
      const b = changes.createSlice(emptyState(), { name: 'b', user: 'sl-b', userCreated: true }, node);
      await own.write(emptyState(), a);
      await n1.write(emptyState(), b);
      assert.deepEqual([...(await store.range('/')).keys()].sort(), ['/nodes/n1/slices/b', '/slices/a']);
      assert.deepEqual(await own.load(), a);
      assert.deepEqual(await n1.load(), b);
      assert.equal(await n1.rewrite(emptyState()), 1, "only n1's slice is deleted");
      assert.deepEqual(await own.load(), a);
      assert.equal((await n1.load()).slices.size, 0);
    } finally {
      await store.close();
    }
  });
});
