/**
 * Slices across nodes, with three real agents on a real 3-member etcd: a slice created on one
 * node with --all-nodes, --nodes or --node-selector is realised (cgroup, user) by each agent
 * it is placed on and by no other, changed and deleted from any node, and shown with each
 * node's sliver; domains are on every node and admit their members per node. Admission is
 * atomic: hundreds of creates from three nodes at once, racing for one node's last capacity,
 * admit exactly as many as fit and refuse the rest with the numbers.
 * A node that ran alone brings its slices in when it joins, or is refused naming the conflict;
 * removing a node that is down forgets its slivers.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ClusterHarness, until } from '../helpers/cluster.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { TestDaemon } from '../helpers/daemon.js';
import { SLOW } from '../helpers/env.js';
import { CliError } from '../../src/cli/client.js';
import { EtcdStore } from '../../src/cluster/etcd-store.js';
import { allocationKey, stateScope, type AllocationRecord } from '../../src/cluster/slice-catalog.js';
import { parseState } from '../../src/cluster/state-repository.js';
import type { PlacementView, RemoteSliceView, SliceView } from '../../src/wire/slices.js';
import { allocationSummary } from '../../src/core/slivers.js';

const harness = new ClusterHarness();
const nameOf = (n: string): string => harness.nameOf(n);
/** Agents on one machine share its users: each names the users it makes with its own prefix. */
const agent = (name: string, extra: string[] = []): Promise<TestDaemon> =>
  harness.startAgent(name, ['--user-prefix', `sl-${name}-`, ...extra]);
const slice = (base: string): string => `${base}${harness.run.slice(0, 4)}`;

type Shown = SliceView | RemoteSliceView;

async function show(daemon: TestDaemon, name: string): Promise<Shown | null> {
  try {
    return await daemon.api.get<Shown>(`/v1/slices/${name}`);
  } catch (err) {
    if (err instanceof CliError && err.code === 'ENOENT') return null;
    throw err;
  }
}

const allReady = (cluster: PlacementView | undefined): boolean =>
  cluster !== undefined && cluster.slivers.every((s) => s.state === 'ready');

let trio: { a: TestDaemon; b: TestDaemon; c: TestDaemon } | null = null;
async function threeAgents(): Promise<{ a: TestDaemon; b: TestDaemon; c: TestDaemon }> {
  if (trio) return trio;
  const a = await agent('a', ['--node-label', 'rack=r1']);
  const b = await agent('b', ['--node-label', 'rack=r1']);
  const c = await agent('c', ['--node-label', 'rack=r2', '--cpu-capacity', '4', '--system-reserve', '200m']);
  await until(
    'all three see each other up',
    async () => [...(await harness.nodes(a)).values()].filter((n) => n.status === 'up').length === 3,
    10_000 * SLOW,
  );
  trio = { a, b, c };
  return trio;
}

harness.test('a slice placed on nodes is realised by each of them and no other, changed and deleted from any node', async (t) => {
  const { a, b, c } = await threeAgents();
  const agents = { a, b, c };
  const spread = slice('spread');

  const created = await a.cli(['slice', 'create', spread, '--all-nodes', '--cpu-reservation', '100m', '--memory', '64M']);
  assert.equal(created.code, 0, created.stderr);
  assert.match(
    created.stdout,
    new RegExp(`created slice ${spread} \\(user sl-a-${spread}\\) on ${nameOf('a')}, ${nameOf('b')}, ${nameOf('c')}`),
  );
  const readyIn = await until('every node realised the slice', async () => allReady((await show(b, spread))?.cluster), 10_000 * SLOW);
  t.diagnostic(`--all-nodes: all three slivers ready ${readyIn} ms after the create returned`);
  for (const [n, daemon] of Object.entries(agents)) {
    const view = (await show(daemon, spread)) as SliceView;
    assert.equal(view.user, `sl-${n}-${spread}`, `${n} made the user by its own rule`);
    assert.equal(view.memory.limit, 64 * 2 ** 20, `${n}: the limits are per node`);
    assert.ok((await KernelGroups.of(daemon)).exists(`${spread}.slice`), `${n}: the group exists`);
    assert.equal(spawnSync('id', ['-u', view.user]).status, 0, `${n}: the user exists`);
  }
  const listed = await b.cli(['slice', 'list', '--cluster']);
  assert.match(
    listed.stdout,
    new RegExp(`^${spread}\\s+${nameOf('a')},${nameOf('b')},${nameOf('c')}\\s+all nodes\\s+${nameOf('a')}$`, 'm'),
    listed.stdout,
  );
  const text = await c.cli(['slice', 'show', spread]);
  for (const n of ['a', 'b', 'c']) assert.match(text.stdout, new RegExp(`Sliver ${nameOf(n)}:\\s+ready`), text.stdout);

  // Changed on c, seen everywhere.
  const set = await c.cli(['slice', 'set', spread, '--cpu-limit', '500m']);
  assert.equal(set.code, 0, set.stderr);
  await until(
    'a and b apply the limit set on c',
    async () => {
      const views = await Promise.all([show(a, spread), show(b, spread)]);
      return views.every((v) => v !== null && 'cpu' in v && v.cpu.limit === 500);
    },
    10_000 * SLOW,
  );

  // --nodes: only there; the node asked shows where it is.
  const onlyB = slice('onlyb');
  const placed = await a.cli(['slice', 'create', onlyB, '--nodes', nameOf('b')]);
  assert.equal(placed.code, 0, placed.stderr);
  const remote = await show(a, onlyB);
  assert.ok(remote !== null && !('cgroup' in remote), `a has no sliver of ${onlyB}: ${JSON.stringify(remote)}`);
  assert.deepEqual(remote.cluster.nodes, [nameOf('b')]);
  assert.match((await a.cli(['slice', 'show', onlyB])).stdout, /On this node:\s+no sliver/);
  assert.ok(!(await KernelGroups.of(a)).exists(`${onlyB}.slice`), 'no group on a');
  await until('b realised it', async () => allReady((await show(b, onlyB))?.cluster), 10_000 * SLOW);

  // --node-selector: the nodes with the labels.
  const rack = slice('rack');
  const selected = await b.cliJson<Shown>(['slice', 'create', rack, '--node-selector', 'rack=r1', '--user', 'nobody']);
  assert.deepEqual(selected.cluster?.nodes, [nameOf('a'), nameOf('b')].sort());

  // Domains: on every node up by default, admitted per node; a slice in one lives inside it there.
  const team = slice('team');
  const domain = await a.cliJson<{ cluster?: PlacementView }>(['domain', 'create', team, '--cpu-reservation', '300m']);
  assert.deepEqual(domain.cluster?.nodes, [nameOf('a'), nameOf('b'), nameOf('c')]);
  const member = slice('member');
  const inTeam = await c.cli([
    'slice',
    'create',
    member,
    '--domain',
    team,
    '--cpu-reservation',
    '200m',
    '--nodes',
    nameOf('b'),
    '--user',
    'nobody',
  ]);
  assert.equal(inTeam.code, 0, inTeam.stderr);
  await until(
    'b runs the member inside the domain',
    async () => (await KernelGroups.of(b)).exists(`${team}.domain/${member}.slice`),
    10_000 * SLOW,
  );
  const tooMuch = await a.cli(['slice', 'create', slice('over'), '--domain', team, '--cpu-reservation', '200m', '--nodes', nameOf('b')]);
  assert.equal(tooMuch.code, 1);
  assert.match(tooMuch.stderr, new RegExp(`node ${nameOf('b')}: .*${team}`), `the domain's admission on b refuses it: ${tooMuch.stderr}`);
  assert.notEqual((await b.cli(['domain', 'delete', team])).code, 0, 'a domain with a member on one node is not deleted');
  assert.equal((await b.cli(['slice', 'delete', member])).code, 0);
  assert.equal((await b.cli(['domain', 'delete', team])).code, 0);

  // A node that cannot run a sliver (its user is missing there) reports it, and runs its other slices on.
  const nouser = slice('nouser');
  const own = await b.cli(['slice', 'create', nouser, '--nodes', `${nameOf('b')},${nameOf('c')}`, '--user', 'nosuchuser14']);
  assert.equal(own.code, 1, 'b cannot run it and says so');
  assert.match(own.stderr, /is in the cluster, but this node cannot run it: user nosuchuser14 does not exist on this node/);
  await until(
    "a sees both slivers failed, with c's reason",
    async () => {
      const slivers = (await show(a, nouser))?.cluster?.slivers ?? [];
      return slivers.length === 2 && slivers.every((s) => s.state === 'failed' && /nosuchuser14 does not exist/.test(s.error ?? ''));
    },
    10_000 * SLOW,
  );
  assert.ok(allReady((await show(c, spread))?.cluster), 'the nodes go on running their other slices');
  assert.equal((await a.cli(['slice', 'delete', nouser])).code, 0);

  // Refusals name what is wrong and change nothing.
  const unknown = await a.cli(['slice', 'create', slice('nowhere'), '--nodes', 'nosuchnode']);
  assert.equal(unknown.code, 3, unknown.stderr);
  assert.match(unknown.stderr, /node nosuchnode is not a member of the cluster/);
  const twice = await b.cli(['slice', 'create', spread]);
  assert.notEqual(twice.code, 0);
  assert.match(twice.stderr, /already exists in the cluster/);
  assert.equal((await a.cli(['node', 'cordon', nameOf('c')])).code, 0);
  const cordoned = await a.cli(['slice', 'create', slice('cordon'), '--nodes', nameOf('c')]);
  assert.notEqual(cordoned.code, 0);
  assert.match(cordoned.stderr, /is cordoned/);
  const all = await a.cliJson<Shown>(['slice', 'create', slice('allbutc'), '--all-nodes', '--user', 'nobody']);
  assert.ok(!all.cluster?.nodes.includes(nameOf('c')), '--all-nodes leaves out a cordoned node');
  assert.equal((await a.cli(['node', 'uncordon', nameOf('c')])).code, 0);
  assert.equal(await show(c, slice('nowhere')), null);

  // Deleted from b: gone from every node, with the users the nodes made.
  const deleted = await b.cli(['slice', 'delete', spread]);
  assert.equal(deleted.code, 0, deleted.stderr);
  await until(
    'every node removed the slice',
    async () => (await Promise.all(Object.values(agents).map((d) => show(d, spread)))).every((v) => v === null),
    10_000 * SLOW,
  );
  for (const n of ['a', 'b', 'c']) {
    assert.ok(!(await KernelGroups.of(agents[n as 'a']).then((g) => g.exists(`${spread}.slice`))), `${n}: the group is gone`);
    assert.notEqual(spawnSync('id', ['-u', `sl-${n}-${spread}`]).status, 0, `${n}: its user is gone`);
  }
  for (const name of [onlyB, rack, slice('allbutc')]) assert.equal((await c.cli(['slice', 'delete', name])).code, 0);
});

harness.test(
  "admission is atomic: hundreds of creates from three nodes racing for one node's last capacity admit exactly what fits",
  async (t) => {
    const { a, b, c } = await threeAgents();
    const target = nameOf('c');
    const store = await EtcdStore.open({ endpoints: harness.etcd!.endpoints, prefix: harness.prefix });
    try {
      const readNode = async (): Promise<{ record: AllocationRecord; reserved: number; count: number }> => {
        const { entries } = await store.rangeVersioned(`${stateScope(target)}/`);
        const record = JSON.parse(entries.get(allocationKey(target))!.value) as AllocationRecord;
        const state = parseState(stateScope(target), new Map([...entries].map(([k, v]) => [k, v.value])));
        // Reserved at the node level, counted from the state itself (not from the record the commits wrote).
        const reserved = allocationSummary(state).cpuReservedMillicores;
        return { record, reserved, count: state.slices.size };
      };
      const before = await readNode();
      const free = before.record.capacity.cpuMillicores - before.record.capacity.systemReserveMillicores - before.reserved;
      const each = 100;
      const expected = Math.floor(free / each);
      const perNode = 100;
      const isRacer = new RegExp(`^race\\d+x\\d+x${harness.run.slice(0, 4)}$`);
      t.diagnostic(`node c: ${free}m free for reservations: ${expected} slices of ${each}m fit; ${3 * perNode} creates race for them`);
      const started = Date.now();
      const outcomes = await Promise.all(
        [a, b, c].flatMap((daemon, i) =>
          Array.from({ length: perNode }, (_, j) =>
            daemon.api
              .post('/v1/slices', {
                name: slice(`race${i}x${j}x`),
                user: 'nobody',
                cpu: { reservation: `${each}m` },
                placement: { nodes: [target] },
              })
              .then(
                () => ({ ok: true, code: '', message: '' }),
                (err: CliError) => ({ ok: false, code: err.code, message: err.message }),
              ),
          ),
        ),
      );
      const accepted = outcomes.filter((o) => o.ok).length;
      const refused = outcomes.filter((o) => !o.ok);
      t.diagnostic(`${accepted} accepted, ${refused.length} refused in ${Date.now() - started} ms; first refusal: ${refused[0]?.message}`);
      assert.equal(accepted, expected, 'exactly the admissible number succeeded');
      assert.deepEqual([...new Set(refused.map((r) => r.code))], ['ENOSPC'], 'every other create was refused by admission');
      assert.match(refused[0]!.message, new RegExp(`node ${target}: .*\\d`), 'the refusal names the node and the numbers');
      const after = await readNode();
      assert.ok(after.reserved <= before.record.capacity.cpuMillicores - before.record.capacity.systemReserveMillicores, 'no over-commit');
      assert.equal(after.count, before.count + expected);
      assert.equal(after.record.summary.slices, after.count, "the node's allocation record follows its state");
      const raced = async (): Promise<string[]> =>
        (await c.api.get<SliceView[]>('/v1/slices')).map((s) => s.name).filter((n) => isRacer.test(n));
      await until('c realised every admitted slice', async () => (await raced()).length === expected, 20_000 * SLOW);
      const names = await raced();
      for (let i = 0; i < names.length; i += 10) await Promise.all(names.slice(i, i + 10).map((n) => a.api.delete(`/v1/slices/${n}`)));
    } finally {
      await store.close();
    }
  },
);

harness.test(
  'a node that ran alone brings its slices into the cluster; one whose slice is already in the cluster is refused, naming it',
  async () => {
    const { a } = await threeAgents();
    const taken = slice('taken');
    assert.equal((await a.cli(['slice', 'create', taken, '--user', 'nobody'])).code, 0);

    const solo = await TestDaemon.start(['--user-prefix', 'sl-d-']);
    harness.daemons.push(solo);
    const own = slice('own');
    assert.equal((await solo.cli(['slice', 'create', own, '--cpu-reservation', '100m'])).code, 0);
    await solo.stop();
    solo.args.push(...harness.args('d'));
    await solo.launch();
    await until('a sees the slice d brought', async () => allReady((await show(a, own))?.cluster), 10_000 * SLOW);
    assert.deepEqual((await show(a, own))?.cluster?.nodes, [nameOf('d')]);
    assert.equal(((await show(solo, own)) as SliceView).user, `sl-d-${own}`, 'd keeps its slice and its user');

    const clash = await TestDaemon.start(['--user-prefix', 'sl-e-']);
    harness.daemons.push(clash);
    assert.equal((await clash.cli(['slice', 'create', taken, '--user', 'nobody'])).code, 0);
    await clash.stop();
    clash.args.push(...harness.args('e'));
    await assert.rejects(clash.launch(), (err: Error) => {
      assert.match(err.message, new RegExp(`cannot join the cluster: .*slice ${taken} exists in the cluster on ${nameOf('a')}`));
      return true;
    });
    // Alone again, it still has its slice: nothing was dropped.
    clash.args.splice(clash.args.indexOf('--cluster'));
    await clash.launch();
    assert.ok(((await show(clash, taken)) as SliceView).cgroup);
    const lone = await clash.cli(['slice', 'list', '--cluster']);
    assert.equal(lone.code, 1);
    assert.match(lone.stderr, /this node is not in a cluster/);
  },
);

harness.test("removing a node that is down forgets its slivers: it leaves every slice's nodes, and a slice only there goes", async () => {
  const { a } = await threeAgents();
  const x = await agent('x');
  await until('a sees x up', async () => (await harness.nodes(a)).get(nameOf('x'))?.status === 'up', 10_000 * SLOW);
  const [shared, only] = [slice('shared'), slice('onlyx')];
  assert.equal((await a.cli(['slice', 'create', shared, '--nodes', `${nameOf('a')},${nameOf('x')}`, '--user', 'nobody'])).code, 0);
  assert.equal((await a.cli(['slice', 'create', only, '--nodes', nameOf('x'), '--user', 'nobody'])).code, 0);
  await until(
    'x realised both',
    async () => allReady((await show(a, only))?.cluster) && allReady((await show(a, shared))?.cluster),
    10_000 * SLOW,
  );
  const up = await a.cli(['node', 'remove', nameOf('x')]);
  assert.equal(up.code, 1, 'a node that is up is not removed');
  await x.stop(); // a clean stop: down at once
  await until('a sees x down', async () => (await harness.nodes(a)).get(nameOf('x'))?.status === 'down', 10_000 * SLOW);
  assert.equal((await show(a, shared))?.cluster?.slivers.find((s) => s.node === nameOf('x'))?.state, 'down');
  const removed = await a.cli(['node', 'remove', nameOf('x')]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, new RegExp(`its slivers forgotten: slices/${only}, slices/${shared}|slices/${shared}, slices/${only}`));
  assert.deepEqual((await show(a, shared))?.cluster?.nodes, [nameOf('a')]);
  assert.equal(await show(a, only), null, 'a slice that was only there is gone');
  assert.equal((await a.cli(['slice', 'delete', shared])).code, 0);
});
