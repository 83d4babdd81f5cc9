/**
 * Slices across nodes, the pure part (src/core/slivers.ts) and the catalogue's commit
 * (src/cluster/slice-catalog.ts) over one node's store behind the cluster interface: placement
 * resolution, planning on several nodes (all or nothing, refusals naming the node), the nodes
 * a change concerns, and the local form of a node's state; concurrent commits racing for one
 * node's capacity admit exactly what fits. The same race against a real etcd with three
 * agents is in test/e2e/cluster-slices.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import fc from 'fast-check';
import { capacityFromRecord, capacityRecord, type NodeCapacity } from '../../src/core/admission.js';
import * as changes from '../../src/core/changes.js';
import { emptyState, type DesiredState } from '../../src/core/model.js';
import { parseCidr } from '../../src/core/net.js';
import { isSlicedError, type SlicedError } from '../../src/core/errors.js';
import type { NodeView } from '../../src/core/membership.js';
import {
  allocationSummary,
  localState,
  parsePlacement,
  planOnNodes,
  resolvePlacement,
  sameObjects,
  type NodePlanInput,
} from '../../src/core/slivers.js';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import { LocalClusterStore } from '../../src/cluster/local-cluster-store.js';
import { SliceCatalog, allocationKey } from '../../src/cluster/slice-catalog.js';
import { refusalOf } from '../helpers/refusal.js';

const node = (cpu: number): NodeCapacity => ({ cpuMillicores: cpu, systemReserveMillicores: 100, memoryBytes: 2 ** 33 });

function member(name: string, extra: Partial<NodeView> = {}): NodeView {
  return { name, labels: {}, cordoned: false, status: 'up', live: null, ...extra };
}

const refusal = (call: () => unknown): SlicedError => refusalOf(call);

describe('placement', () => {
  test('parsePlacement takes nodes, a selector or all, and refuses anything else saying what is allowed', () => {
    assert.equal(parsePlacement(undefined), null);
    assert.deepEqual(parsePlacement({ nodes: ['b', 'a', 'b'] }), { nodes: ['b', 'a'] });
    assert.deepEqual(parsePlacement({ selector: { rack: 'r1' } }), { selector: { rack: 'r1' } });
    assert.deepEqual(parsePlacement({ all: true }), { all: true });
    for (const bad of [
      'a',
      [],
      {},
      { nodes: [] },
      { nodes: ['../x'] },
      { selector: { 'bad key': 'v' } },
      { all: false },
      { nodes: ['a'], all: true },
    ]) {
      const { code, message } = refusal(() => parsePlacement(bad));
      assert.equal(code, 'EINVAL', JSON.stringify(bad));
      assert.ok(message.length > 10, message);
    }
  });

  test('resolvePlacement: named nodes must be members, up and not cordoned; a selector and all take the usable ones', () => {
    const members = [
      member('a', { labels: { rack: 'r1' } }),
      member('b', { labels: { rack: 'r1' }, cordoned: true }),
      member('c', { status: 'down' }),
      member('d'),
    ];
    assert.deepEqual(resolvePlacement(null, members, 'd'), ['d']);
    assert.deepEqual(resolvePlacement({ nodes: ['d', 'a'] }, members, 'a'), ['a', 'd']);
    assert.deepEqual(resolvePlacement({ all: true }, members, 'a'), ['a', 'd']);
    assert.deepEqual(resolvePlacement({ selector: { rack: 'r1' } }, members, 'a'), ['a']);
    assert.match(
      refusal(() => resolvePlacement({ nodes: ['x'] }, members, 'a')).message,
      /node x is not a member of the cluster \(members: a, b, c, d\)/,
    );
    assert.match(refusal(() => resolvePlacement({ nodes: ['b'] }, members, 'a')).message, /cordoned/);
    assert.match(refusal(() => resolvePlacement({ nodes: ['c'] }, members, 'a')).message, /down/);
    assert.equal(refusal(() => resolvePlacement({ selector: { rack: 'r9' } }, members, 'a')).code, 'ENOENT');
  });
});

describe('planOnNodes', () => {
  const inputs = (): Map<string, NodePlanInput> => {
    let small = emptyState();
    small = changes.createSlice(small, { name: 'big', user: 'u', userCreated: false, cpu: { reservation: 800 } }, node(1000));
    return new Map([
      ['a', { state: emptyState(), capacity: node(4000) }],
      ['b', { state: small, capacity: node(1000) }],
    ]);
  };
  const create = { kind: 'slice.create', input: { name: 'web', user: 'sl-web', userCreated: true, cpu: { reservation: 200 } } } as const;

  test('every node admits the change, or it is refused with each refusing node named', () => {
    const ok = planOnNodes(inputs(), ['a'], create);
    assert.deepEqual([...ok.next.keys()], ['a']);
    assert.equal(ok.result.cpu.reservation, 200);
    const { code, message } = refusal(() => planOnNodes(inputs(), ['a', 'b'], create));
    assert.equal(code, 'ENOSPC');
    assert.match(message, /^refused on 1 of 2 nodes: node b: .*1000m/);
  });

  test('the allocation summary counts node-level reservations', () => {
    const b = inputs().get('b')!.state;
    assert.deepEqual(allocationSummary(b), { slices: 1, domains: 0, cpuReservedMillicores: 800 });
  });
});

describe("a node's local state", () => {
  test('users sliced makes are named by the node; what did not change stays the same object', () => {
    let target = emptyState();
    target = changes.createSlice(target, { name: 'web', user: 'sl-web', userCreated: true }, node(2000));
    target = changes.createSlice(target, { name: 'db', user: 'nobody', userCreated: false }, node(2000));
    const local = localState(emptyState(), target, (s) => `sl-x-${s}`);
    assert.equal(local.slices.get('web')!.user, 'sl-x-web');
    assert.equal(local.slices.get('db')!.user, 'nobody');
    const parsed: DesiredState = JSON.parse(JSON.stringify({ slices: [...target.slices] }), (k, v: unknown) =>
      k === 'slices' ? new Map(v as Array<[string, unknown]>) : v,
    ) as DesiredState;
    const again = localState(local, { ...emptyState(), slices: parsed.slices }, (s) => `sl-x-${s}`);
    assert.ok(sameObjects(local, again), 'an equal state read again is the same objects: nothing to do');
  });

  test('capacity records survive JSON and are checked when read', () => {
    const pool = { v4: parseCidr('10.213.0.0/24', 4, 'p4'), v6: parseCidr('fd5c:ed00::/64', 6, 'p6') };
    const full: NodeCapacity = { ...node(2000), net: { pool, capacity: 1e9 }, pids: { space: 4096, sliceDefault: 600, setting: '15%' } };
    const back = capacityFromRecord(JSON.parse(JSON.stringify(capacityRecord(full))), 'record');
    assert.deepEqual(back, full);
    assert.equal(refusal(() => capacityFromRecord({ cpuMillicores: 'x' }, 'state/a/alloc')).code, 'EINVAL');
  });
});

test('the catalogue admits exactly what fits when many changes race for one node (property: any capacity, any number of racers)', async () => {
  const log = pino({ level: 'silent' });
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 40 }), async (fits, racers) => {
      const dir = mkdtempSync(join(tmpdir(), 'sliced-slivers-'));
      const embedded = await EmbeddedStore.open(dir);
      try {
        const store = new LocalClusterStore(embedded);
        const nodes = [member('n1'), member('n2')];
        const catalogs = nodes.map((m) => new SliceCatalog(store, m.name, () => nodes, log));
        await catalogs[0]!.registerCapacity({ cpuMillicores: fits * 100 + 100, systemReserveMillicores: 100, memoryBytes: 2 ** 33 });
        const outcomes = await Promise.all(
          Array.from({ length: racers }, (_, i) =>
            catalogs[i % 2]!.commit(
              { kind: 'slice.create', input: { name: `s${i}`, user: 'nobody', userCreated: false, cpu: { reservation: 100 } } },
              { nodes: ['n1'] },
            ).then(
              () => 'ok',
              (err: Error) => (isSlicedError(err) ? err.code : err.message),
            ),
          ),
        );
        assert.equal(outcomes.filter((o) => o === 'ok').length, Math.min(fits, racers));
        assert.ok(
          outcomes.every((o) => o === 'ok' || o === 'ENOSPC'),
          outcomes.join(','),
        );
        const record = JSON.parse((await store.get(allocationKey('n1')))!) as {
          summary: { slices: number; cpuReservedMillicores: number };
        };
        assert.equal(record.summary.slices, Math.min(fits, racers));
        assert.ok(record.summary.cpuReservedMillicores <= fits * 100);
      } finally {
        await embedded.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 25, seed: 14 },
  );
});
