/**
 * Cluster tasks with three real agents on a real 3-member etcd, talking over the node-to-node
 * channel (shared token): a task submitted on one node runs on a node of its slice, as the
 * slice's user there; its output streams back to the caller and is read from any node; stop
 * and signals work from any node; placement spreads tasks, avoids cordoned nodes and honours
 * a scheduler of the tree; the channel answers 401 without the token; a task on a node that is
 * down says so.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createLoopDevice, type LoopDevice } from '../../src/kernel/block-devices.js';
import { readMounts } from '../../src/kernel/procfs.js';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, relative } from 'node:path';
import { after } from 'node:test';
import { ClusterHarness, freePort, until } from '../helpers/cluster.js';
import { taskProcesses, watchTwice } from '../helpers/tasks.js';
import { removeEmptyGroups } from '../helpers/cgroups.js';
import { TestDaemon } from '../helpers/daemon.js';
import { commandSkipReason, skipWith, SLOW } from '../helpers/env.js';
import type { SliceView } from '../../src/wire/slices.js';
import type { TaskList, TaskView } from '../../src/wire/tasks.js';
import type { DrainResult } from '../../src/wire/nodes.js';

const harness = new ClusterHarness();
const nameOf = (n: string): string => harness.nameOf(n);
const secrets = mkdtempSync(join(tmpdir(), 'sliced-peer-'));
after(() => rmSync(secrets, { recursive: true, force: true }));
const tokenFile = join(secrets, 'token');
writeFileSync(tokenFile, `${harness.run}-${'x'.repeat(24)}\n`, { mode: 0o600 });
chmodSync(tokenFile, 0o600);

const ports = new Map<string, number>();
async function agent(name: string, extra: string[] = []): Promise<TestDaemon> {
  const port = await freePort();
  ports.set(name, port);
  return harness.startAgent(name, [
    '--user-prefix',
    `sl-${name}-`,
    '--peer-listen',
    `127.0.0.1:${port}`,
    '--peer-token-file',
    tokenFile,
    ...extra,
  ]);
}

let trio: { a: TestDaemon; b: TestDaemon; c: TestDaemon } | null = null;
async function threeAgents(): Promise<{ a: TestDaemon; b: TestDaemon; c: TestDaemon }> {
  if (trio) return trio;
  const a = await agent('a');
  const b = await agent('b');
  const c = await agent('c');
  await until(
    'all three see each other up',
    async () => [...(await harness.nodes(a)).values()].filter((n) => n.status === 'up').length === 3,
    10_000 * SLOW,
  );
  trio = { a, b, c };
  return trio;
}

const slice = (base: string): string => `${base}${harness.run.slice(0, 4)}`;
const threeNames = (): string[] => [nameOf('a'), nameOf('b'), nameOf('c')];
/** Run slicectl on `d`: the test fails with its stderr unless it succeeds. */
async function ok(d: TestDaemon, args: string[]): Promise<void> {
  const r = await d.cli(args);
  assert.equal(r.code, 0, `slicectl ${args.join(' ')}: ${r.stderr}`);
}
/** Until every sliver of slice `name` is ready (realised by its node). */
async function slivered(d: TestDaemon, name: string): Promise<void> {
  await until(
    `slice ${name} on its nodes`,
    async () => {
      const v = await d.cliJson<{ cluster?: { slivers: Array<{ state: string }> } }>(['slice', 'show', name]);
      return v.cluster?.slivers.every((x) => x.state === 'ready') ?? false;
    },
    15_000 * SLOW,
  );
}
const show = (d: TestDaemon, id: string): Promise<TaskView> => d.cliJson<TaskView>(['task', 'show', id]);
async function running(d: TestDaemon, id: string): Promise<TaskView> {
  let view: TaskView | null = null;
  await until(`task ${id} to run`, async () => (view = await show(d, id)).state === 'running', 10_000 * SLOW);
  return view!;
}

harness.test(
  "a task submitted on one node runs on its slice's node as the slice user there; output, stop and signals from any node",
  async () => {
    const { a, b, c } = await threeAgents();
    const s = slice('tb');
    const created = await a.cli(['slice', 'create', s, '--nodes', nameOf('b')]);
    assert.equal(created.code, 0, created.stderr);
    const onB = await b.cliJson<SliceView>(['slice', 'show', s]);

    // Attached from a: the output comes over the channel, the status is the task's.
    const result = await a.cli(['run', '--slice', s, '--', 'sh', '-c', 'id -u; echo to-err >&2; exit 4']);
    assert.equal(result.code, 4, result.stderr);
    assert.equal(Number(result.stdout.trim()), onB.uid, "run as the slice's user on b");
    assert.equal(result.stderr, 'to-err\n');
    const list = await c.cliJson<TaskList>(['task', 'list']);
    const done = list.tasks.find((t) => t.slice === s)!;
    assert.equal(done.node, nameOf('b'));
    assert.equal(done.createdOn, nameOf('a'));
    assert.equal(done.exitStatus, 4);
    const logs = await c.cli(['task', 'logs', done.id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stderr, 'to-err\n');

    // A signal from c to the task on b; then stop from a of another.
    const trap = (
      await a.cli(['run', '--slice', s, '-d', '--', 'sh', '-c', 'trap "echo got-usr1" USR1; while :; do sleep 0.1; done'])
    ).stdout.trim();
    await running(c, trap);
    const signalled = await c.cli(['task', 'signal', trap, 'USR1']);
    assert.equal(signalled.code, 0, signalled.stderr);
    await until('the trap to run', async () => (await a.cli(['task', 'logs', trap])).stdout.includes('got-usr1'), 5000 * SLOW);
    const stopped = await c.cliJson<TaskView>(['task', 'stop', trap]);
    assert.equal(stopped.state, 'stopped');
    assert.equal(stopped.node, nameOf('b'));

    // Followed from a while it runs on b: lines arrive before it ends.
    const follow = a.cli(['run', '--slice', s, '--', 'sh', '-c', 'for i in 1 2 3; do echo line$i; sleep 0.3; done']);
    const followed = await follow;
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, 'line1\nline2\nline3\n');
  },
);

harness.test(
  "placement: tasks spread over the slice's nodes, never to a cordoned one, and a scheduler of the tree decides when asked",
  async () => {
    const { a, b, c } = await threeAgents();
    const s = slice('tp');
    assert.equal((await a.cli(['slice', 'create', s, '--all-nodes'])).code, 0);
    await slivered(a, s);
    const ids: string[] = [];
    for (const d of [a, b, c]) ids.push((await d.cli(['run', '--slice', s, '-d', '--', 'sleep', '30'])).stdout.trim());
    const nodes = await Promise.all(ids.map(async (id) => (await running(a, id)).node));
    assert.deepEqual([...nodes].sort(), [nameOf('a'), nameOf('b'), nameOf('c')], 'one each: the fewest tasks first');

    assert.equal((await a.cli(['node', 'cordon', nameOf('c')])).code, 0);
    try {
      for (let i = 0; i < 4; i++) {
        const view = await a.cliJson<TaskView>(['run', '--slice', s, '-d', '--', 'true']);
        assert.notEqual(view.node, nameOf('c'), 'a cordoned node gets no new task');
      }
    } finally {
      assert.equal((await a.cli(['node', 'uncordon', nameOf('c')])).code, 0);
    }

    // A round_robin scheduler, asked by name: its turn goes round the slice's nodes.
    for (const op of [
      ['mkdir', '/schedulers/rr'],
      ['mkdir', '/schedulers/rr/round_robin'],
    ]) {
      const r = await a.cli(op);
      assert.equal(r.code, 0, `${op.join(' ')}: ${r.stderr}`);
    }
    const chosen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const view = await a.cliJson<TaskView>(['run', '--slice', s, '-d', '--scheduler', 'rr', '--', 'true']);
      assert.equal(view.placedBy, 'rr');
      chosen.push(view.node);
    }
    assert.deepEqual([...chosen].sort(), [nameOf('a'), nameOf('b'), nameOf('c')]);
    for (const id of ids) assert.equal((await b.cli(['task', 'stop', id])).code, 0);
  },
);

harness.test(
  'the channel answers 401 without the token; a slice with no ready node and a task on a node that is down are refused naming the cause',
  async () => {
    const { a, c } = await threeAgents();
    const call = (headers: Record<string, string>): Promise<{ status: number; body: string }> =>
      answer((onResponse) => request({ host: '127.0.0.1', port: ports.get('c')!, path: '/peer/v1/health', headers }, onResponse));
    const none = await call({});
    assert.equal(none.status, 401);
    assert.match(none.body, /no credentials/);
    const wrong = await call({ authorization: 'Bearer not-the-token-of-this-cluster' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /not the cluster's/);

    const s = slice('td');
    assert.equal((await a.cli(['slice', 'create', s, '--nodes', nameOf('c')])).code, 0);
    const id = (await a.cli(['run', '--slice', s, '-d', '--', 'sh', '-c', 'echo kept; sleep 60'])).stdout.trim();
    await running(a, id);
    await c.stop('SIGKILL');
    await until('c to be down', async () => (await harness.nodes(a)).get(nameOf('c'))?.status === 'down', 15_000 * SLOW);
    const logs = await a.cli(['task', 'logs', id]);
    assert.equal(logs.code, 1);
    assert.match(logs.stderr, /which is down: its output is kept there/);
    assert.equal((await show(a, id)).state, 'unknown');
    const noNode = await a.cli(['run', '--slice', s, '--', 'true']);
    assert.equal(noNode.code, 1);
    assert.match(noNode.stderr, new RegExp(`slice ${s} has no node a task can be placed on`));
    // Back up: the task it kept running is taken back and its output read from a again.
    await c.launch();
    await until('c to be up', async () => (await harness.nodes(a)).get(nameOf('c'))?.status === 'up', 15_000 * SLOW);
    assert.equal((await show(a, id)).state, 'running');
    assert.match((await a.cli(['task', 'logs', id])).stdout, /kept/);
    assert.equal((await a.cli(['task', 'stop', id])).code, 0);
  },
);

/** Submit `n` restartable tasks of `slice` that all land on `target` (the slice's other nodes cordoned meanwhile). */
async function tasksOn(d: TestDaemon, slice: string, target: string, others: string[], n: number): Promise<string[]> {
  for (const o of others) assert.equal((await d.cli(['node', 'cordon', o])).code, 0);
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const view = await d.cliJson<TaskView>([
        'run',
        '--slice',
        slice,
        '-d',
        '--restart',
        'always',
        '--',
        'sh',
        '-c',
        'while :; do sleep 0.2; done',
      ]);
      assert.equal(view.node, target);
      ids.push(view.id);
    }
  } finally {
    for (const o of others) await d.cli(['node', 'uncordon', o]);
  }
  for (const id of ids) await running(d, id);
  return ids;
}

harness.test('failover: the tasks of an agent killed with SIGKILL run elsewhere within TTL + 2 s, never on two nodes at once', async () => {
  const { a, b } = await threeAgents();
  const s = slice('tf');
  assert.equal((await a.cli(['slice', 'create', s, '--nodes', [nameOf('a'), nameOf('b')].join(',')])).code, 0);
  await slivered(a, s);
  const ids = await tasksOn(a, s, nameOf('b'), [nameOf('a')], 4);
  const twice = watchTwice(new Set(ids));
  const killed = Date.now();
  await b.stop('SIGKILL');
  let moved = 0;
  await until(
    'every task to run on a',
    async () => {
      const views = await Promise.all(ids.map((id) => show(a, id)));
      return views.every((v) => v.node === nameOf('a') && v.state === 'running') && (moved = Date.now() - killed) > 0;
    },
    20_000 * SLOW,
  );
  const most = twice.stop();
  process.stderr.write(
    `failover: ${ids.length} tasks ran elsewhere ${moved} ms after SIGKILL of their agent (TTL 5000 ms); at most ${most} process per task\n`,
  );
  assert.equal(most, 1, 'a task ran on two nodes at once');
  assert.ok(moved <= (5000 + 2000) * SLOW, `failover took ${moved} ms`);
  const view = await show(a, ids[0]!);
  assert.match(view.placedBy, new RegExp(`failover from ${nameOf('b')}`));
  assert.equal(view.generation, 2);
  await b.launch();
  await until('b to be up', async () => (await harness.nodes(a)).get(nameOf('b'))?.status === 'up', 15_000 * SLOW);
  for (const id of ids) assert.equal((await a.cli(['task', 'stop', id])).code, 0);
});

harness.test(
  'pause: the tasks of an agent frozen (SIGSTOP) past its lease are fenced and run elsewhere; thawed, it does not start them again from old records',
  async () => {
    const { a, b } = await threeAgents();
    const s = slice('tz');
    assert.equal((await a.cli(['slice', 'create', s, '--nodes', [nameOf('a'), nameOf('b')].join(',')])).code, 0);
    await slivered(a, s);
    const ids = await tasksOn(a, s, nameOf('b'), [nameOf('a')], 3);
    const twice = watchTwice(new Set(ids));
    try {
      // Frozen past the lease (5 s): its fence watchdog kills the tasks, the leader places them on a.
      process.kill(b.pid!, 'SIGSTOP');
      try {
        await until(
          'every task to run on a',
          async () => (await Promise.all(ids.map((id) => show(a, id)))).every((v) => v.node === nameOf('a') && v.state === 'running'),
          20_000 * SLOW,
        );
      } finally {
        process.kill(b.pid!, 'SIGCONT');
      }
      // Thawed, b sees the ends of the processes the watchdog killed before it reads the new
      // records: restarting them then would run each on two nodes.
      await until('b to be up again', async () => (await harness.nodes(a)).get(nameOf('b'))?.status === 'up', 20_000 * SLOW);
      await sleep(3000);
    } finally {
      const most = twice.stop();
      for (const id of ids) await a.cli(['task', 'stop', id]);
      assert.equal(most, 1, 'a task ran on two nodes at once');
    }
    const views = await Promise.all(ids.map((id) => show(a, id)));
    assert.ok(
      views.every((v) => v.node === nameOf('a')),
      `tasks: ${JSON.stringify(views.map((v) => [v.node, v.state]))}`,
    );
  },
);

harness.test(
  'fencing: an agent cut off from etcd by nft kills its restartable tasks before its lease can end; they run once, elsewhere; it comes back',
  async (t) => {
    const noNft = commandSkipReason('nft', 'nftables');
    if (noNft !== null) return skipWith(t, noNft);
    const { a } = await threeAgents();
    // Agent d runs in a cgroup2 group of its own: one nft rule on its sockets' group cuts it off
    // from etcd, and nobody else (the other agents reach the same members).
    const mount = readMounts().find((m) => m.fsType === 'cgroup2')?.mountPoint;
    if (!mount) return skipWith(t, "no cgroup2 hierarchy is mounted: nft cannot tell one agent's sockets apart");
    const cutGroup = `slicedcut${harness.run}`;
    mkdirSync(join(mount, cutGroup));
    const port = await freePort();
    const d = await TestDaemon.start(
      [
        ...['--cluster', harness.etcd!.endpoints.join(','), '--cluster-prefix', harness.prefix, '--node-name', nameOf('d')],
        ...['--user-prefix', 'sl-d-', '--peer-listen', `127.0.0.1:${port}`, '--peer-token-file', tokenFile],
      ],
      { cgroup: join(mount, cutGroup) },
    );
    t.after(async () => {
      // d first (its groups go with its cleanup), then its group.
      if (harness.daemons.includes(d)) {
        harness.daemons.splice(harness.daemons.indexOf(d), 1);
        await d.destroy();
      }
      // On a cgroup v1 host, sliced --cleanup run from another group does not find the groups d
      // made in the unified hierarchy below its own (noted for the product): they are empty, remove them.
      // d's fence watchdog, started in d's group, ends within 0.2 s of its file going.
      await until(
        'the groups to empty',
        async () => {
          try {
            removeEmptyGroups(join(mount, cutGroup));
            return true;
          } catch {
            return false;
          }
        },
        5000,
      );
    });
    harness.daemons.push(d);
    const s = slice('tc');
    assert.equal((await a.cli(['slice', 'create', s, '--nodes', [nameOf('a'), nameOf('d')].join(',')])).code, 0);
    await slivered(a, s);
    const ids = await tasksOn(a, s, nameOf('d'), [nameOf('a')], 3);
    const twice = watchTwice(new Set(ids));
    const table = `slicedcut${harness.run}`;
    const nft = (script: string): void => {
      const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    nft(
      `add table inet ${table}\nadd chain inet ${table} out { type filter hook output priority -20; policy accept; }\nadd rule inet ${table} out socket cgroupv2 level 1 "${relative('/sys/fs/cgroup', join(mount, cutGroup))}" tcp dport 2379 drop\n`,
    );
    try {
      await until(
        'every task to run on a',
        async () => {
          const views = await Promise.all(ids.map((id) => show(a, id)));
          return views.every((v) => v.node === nameOf('a') && v.state === 'running');
        },
        25_000 * SLOW,
      );
    } catch (err) {
      // What the agents said about leadership, failover and the fence, to read the failure by.
      const views = await Promise.all(ids.map((id) => show(a, id)));
      process.stderr.write(`tasks: ${JSON.stringify(views.map((v) => [v.id, v.node, v.state, v.placedBy]))}\n`);
      for (const agentDaemon of harness.daemons) {
        const lines = agentDaemon.log.split('\n').filter((l) => /leadership|failover|fenc|handed|membership/.test(l));
        process.stderr.write(`---- ${agentDaemon.dir}\n${lines.slice(-15).join('\n')}\n`);
      }
      throw err;
    } finally {
      spawnSync('nft', ['delete', 'table', 'inet', table]);
      twice.stop();
      t.after(async () => {
        for (const id of ids) await a.cli(['task', 'stop', id]);
      });
    }
    const most = twice.stop();
    assert.equal(most, 1, 'a task ran on two nodes at once');
    await until('d to be up again', async () => (await harness.nodes(a)).get(nameOf('d'))?.status === 'up', 30_000 * SLOW);
    // d reported what the fence did once it could write again.
    await until(
      "d's report of the fence",
      async () => {
        const list = await a.cliJson<TaskList>(['task', 'list']);
        return list.tasks.filter((t) => ids.includes(t.id)).every((t) => t.node === nameOf('a'));
      },
      10_000 * SLOW,
    );
    for (const id of ids) assert.equal((await a.cli(['task', 'stop', id])).code, 0);
    assert.equal([...taskProcesses(new Set(ids)).values()].flat().length, 0, 'nothing of them runs');
  },
);

harness.test(
  'migration by hand and drain: a migratable task stops on its node and starts on the target, never on both; the others stay, each refusal names why',
  async () => {
    const { a, b, c } = await threeAgents();
    const s = slice('tm');
    assert.equal((await a.cli(['slice', 'create', s, '--all-nodes'])).code, 0);
    await slivered(a, s);
    const loop = ['sh', '-c', 'echo "start on $SLICED_NODE"; trap "echo term; exit 0" TERM; while :; do sleep 0.1; done'];
    // Every other member is cordoned meanwhile (an earlier test may have added one), so both land on a.
    const others = [...(await harness.nodes(a)).keys()].filter((n) => n !== nameOf('a'));
    for (const o of others) assert.equal((await a.cli(['node', 'cordon', o])).code, 0);
    let id: string;
    let fixed: string;
    try {
      id = (await a.cliJson<TaskView>(['run', '--slice', s, '-d', '--migratable', '--', ...loop])).id;
      fixed = (await a.cliJson<TaskView>(['run', '--slice', s, '-d', '--', ...loop])).id;
      await running(a, id);
      const refusedCordoned = await a.cli(['task', 'migrate', id, '--to', nameOf('b')]);
      assert.equal(refusedCordoned.code, 1);
      assert.match(refusedCordoned.stderr, new RegExp(`cannot move to ${nameOf('b')}: it is cordoned`));
    } finally {
      for (const o of others) await a.cli(['node', 'uncordon', o]);
    }
    const notMigratable = await a.cli(['task', 'migrate', fixed, '--to', nameOf('b')]);
    assert.equal(notMigratable.code, 4);
    assert.match(notMigratable.stderr, /is not migratable/);

    // Kerrighed's migration_probe publishes when a task last left the node.
    const probe = await a.cli(['mkdir', '/probes/migration_probe']);
    assert.equal(probe.code, 0, probe.stderr);
    // Kerrighed's unit: nanoseconds (here since the epoch).
    const lastMigration = async (): Promise<number> =>
      Number((await a.cli(['cat', '/probes/migration_probe/last_migration/value'])).stdout.trim().split(/\s+/).pop()) / 1e9;
    assert.equal(await lastMigration(), 0, 'no task has left a yet');
    const asked = Date.now() / 1000;
    const twice = watchTwice(new Set([id, fixed]));
    const moved = await c.cliJson<TaskView>(['task', 'migrate', id, '--to', nameOf('b')]);
    assert.equal(moved.node, nameOf('b'));
    assert.equal(moved.state, 'running');
    assert.equal(moved.generation, 2);
    assert.equal(moved.placedBy, 'migrated by hand');
    await until('its output on b', async () => (await c.cli(['task', 'logs', id])).stdout.includes(`start on ${nameOf('b')}`), 5000 * SLOW);
    await until('migration_probe on a to show it', async () => (await lastMigration()) >= asked - 1, 5000 * SLOW);

    // Drain a: the migratable task there (moved back first) leaves, the other stays and is named.
    assert.equal((await b.cli(['task', 'migrate', id, '--to', nameOf('a')])).code, 0);
    const drained = await b.cliJson<DrainResult>(['node', 'drain', nameOf('a')]);
    assert.equal(twice.stop(), 1, 'a task ran on two nodes at once');
    assert.deepEqual(
      drained.moved.map((m) => m.task),
      [id],
      JSON.stringify(drained),
    );
    assert.notEqual(drained.moved[0]!.to, nameOf('a'));
    assert.deepEqual(
      drained.left.map((l) => l.task).filter((t) => t === id || t === fixed),
      [fixed],
      JSON.stringify(drained),
    );
    assert.match(drained.left.find((l) => l.task === fixed)!.reason, /not migratable/);
    assert.equal((await harness.nodes(a)).get(nameOf('a'))?.cordoned, true);
    const text = await b.cli(['node', 'drain', nameOf('a')]);
    assert.match(text.stdout, new RegExp(`task ${fixed} stays: not migratable`));
    assert.equal((await a.cli(['node', 'uncordon', nameOf('a')])).code, 0);
    for (const t of [id, fixed]) assert.equal((await a.cli(['task', 'stop', t])).code, 0);
  },
);

harness.test(
  'mutual TLS: certificates from slicectl cluster init-ca and issue-cert carry the output between agents; no certificate, or one of another CA, gets 401',
  async (t) => {
    const noOpenssl = commandSkipReason('openssl', 'openssl');
    if (noOpenssl !== null) return skipWith(t, noOpenssl);
    const { a } = await threeAgents();
    const pki = join(secrets, 'pki');
    const other = join(secrets, 'other-pki');
    for (const args of [
      ['cluster', 'init-ca', '--dir', pki],
      ['cluster', 'issue-cert', nameOf('e'), '--dir', pki, '--ip', '127.0.0.1'],
      ['cluster', 'issue-cert', nameOf('f'), '--dir', pki, '--ip', '127.0.0.1'],
      ['cluster', 'init-ca', '--dir', other],
      ['cluster', 'issue-cert', 'stranger', '--dir', other],
    ]) {
      const r = await a.cli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const again = await a.cli(['cluster', 'issue-cert', nameOf('e'), '--dir', pki]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exist.* already/);
    const tlsAgent = async (n: string): Promise<{ d: TestDaemon; port: number }> => {
      const port = await freePort();
      const files = [
        '--peer-ca',
        join(pki, 'ca.pem'),
        '--peer-cert',
        join(pki, `${nameOf(n)}.pem`),
        '--peer-key',
        join(pki, `${nameOf(n)}-key.pem`),
      ];
      return { d: await harness.startAgent(n, ['--user-prefix', `sl-${n}-`, '--peer-listen', `127.0.0.1:${port}`, ...files]), port };
    };
    const e = await tlsAgent('e');
    const f = await tlsAgent('f');
    const s = slice('tt');
    assert.equal((await e.d.cli(['slice', 'create', s, '--nodes', nameOf('f')])).code, 0);
    const result = await e.d.cli(['run', '--slice', s, '--', 'sh', '-c', 'echo over-tls; echo err-tls >&2; exit 5']);
    assert.equal(result.code, 5, result.stderr);
    assert.equal(result.stdout, 'over-tls\n');
    assert.equal(result.stderr, 'err-tls\n');

    const call = (options: { cert?: string; key?: string }): Promise<{ status: number; body: string }> =>
      answer((onResponse) =>
        httpsRequest(
          {
            host: '127.0.0.1',
            port: f.port,
            path: '/peer/v1/health',
            ca: readFileSync(join(pki, 'ca.pem')),
            checkServerIdentity: () => undefined,
            ...(options.cert ? { cert: readFileSync(options.cert), key: readFileSync(options.key!) } : {}),
          },
          onResponse,
        ),
      );
    const none = await call({});
    assert.equal(none.status, 401);
    assert.match(none.body, /no client certificate/);
    const stranger = await call({ cert: join(other, 'stranger.pem'), key: join(other, 'stranger-key.pem') });
    assert.equal(stranger.status, 401);
    assert.match(stranger.body, /not signed by the cluster CA/);
    const member = await call({ cert: join(pki, `${nameOf('e')}.pem`), key: join(pki, `${nameOf('e')}-key.pem`) });
    assert.equal(member.status, 200, member.body);
  },
);

harness.test(
  'memory_affinity, scratch_balance and io_balance place on the node with the most memory not promised, the most free scratch space, the least disk I/O',
  async (t) => {
    const { a } = await threeAgents();
    const trio = threeNames();
    /** A probe on every node, its values collected by a policy's port through remote_cache. */
    const wire = async (
      probe: string,
      source: string,
      policy: string,
      port: string,
      extra: string[][] = [],
      via?: string,
    ): Promise<() => Promise<string>> => {
      const cache = `${policy}/${port}/remote_cache`;
      const into = via ? `${cache}/${via}` : cache;
      for (const args of [
        ['mkdir', `/probes/${probe}`],
        ...extra,
        ['write', `/probes/${probe}/probe_period`, '200'],
        ['mkdir', policy.slice(0, policy.lastIndexOf('/'))],
        ['mkdir', policy],
        ['mkdir', cache],
        ['write', `${cache}/prefetch_period_ms`, '200'],
        ...(via ? [['mkdir', into]] : []),
        ['ln', `/probes/${probe}/${source}`, `${into}/values`],
      ])
        await ok(a, args);
      const collected = async (): Promise<string> => {
        const r = await a.cli(['cat', `${policy}/${port}/collected_value`]);
        return r.stdout + r.stderr;
      };
      let text = '';
      await until(
        `${policy} to hear from every node`,
        async () => {
          text = await collected();
          return trio.every((n) => text.includes(n));
        },
        15_000 * SLOW,
      ).catch((err: Error) => assert.fail(`${err.message}; it shows:\n${text}`));
      return collected;
    };
    const s = slice('ta');
    await ok(a, ['slice', 'create', s, '--nodes', trio.join(',')]);
    await slivered(a, s);
    const placed = async (scheduler: string): Promise<string> => {
      const view = await a.cliJson<TaskView>(['run', '--slice', s, '-d', '--scheduler', scheduler, '--', 'true']);
      assert.equal(view.placedBy, scheduler);
      return view.node;
    };

    // Memory: a promises 1G to a slice, b 512M, c nothing: c first; then c promises 2G: b.
    await ok(a, ['slice', 'create', slice('tma'), '--nodes', nameOf('a'), '--memory', '1G']);
    await ok(a, ['slice', 'create', slice('tmb'), '--nodes', nameOf('b'), '--memory', '512M']);
    const memory = await wire('mem_alloc', 'memory', '/schedulers/ma/memory_affinity', 'node_memory');
    assert.equal(await placed('ma'), nameOf('c'), await memory());
    await ok(a, ['slice', 'create', slice('tmc'), '--nodes', nameOf('c'), '--memory', '2G']);
    await until('memory_affinity to prefer b', async () => (await placed('ma')) === nameOf('b'), 10_000 * SLOW);

    // Scratch space: a tmpfs of its own per node (b 32M, c 16M, a 8M): b; then b's filled past c's: c.
    const root = mkdtempSync(join(tmpdir(), 'sliced-scratch-'));
    const sizes: Record<string, string> = { [nameOf('a')]: '8M', [nameOf('b')]: '32M', [nameOf('c')]: '16M' };
    const mounted: string[] = [];
    t.after(() => {
      for (const dir of mounted.reverse()) spawnSync('umount', [dir]);
      rmSync(root, { recursive: true, force: true });
    });
    for (const [node, size] of Object.entries(sizes)) {
      const dir = join(root, node);
      mkdirSync(dir);
      const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'sliced-test-scratch', dir], { encoding: 'utf8' });
      assert.equal(r.status, 0, `mount a tmpfs at ${dir}: ${r.stderr}`);
      mounted.push(dir);
    }
    const scratch = await wire('fs_space', 'space', '/schedulers/sb/scratch_balance', 'node_space', [
      ['write', '/probes/fs_space/path', `${root}/{node}`],
    ]);
    assert.equal(await placed('sb'), nameOf('b'), await scratch());
    writeFileSync(join(root, nameOf('b'), 'fill'), Buffer.alloc(24 * 1024 * 1024));
    await until('scratch_balance to prefer c', async () => (await placed('sb')) === nameOf('c'), 10_000 * SLOW);

    // Disk I/O: a disk of its own per node (a loop device, named by a link per node); a and b
    // write to theirs, c is quiet: c; then a stops and c writes: a.
    const noLosetup = commandSkipReason('losetup', 'mount');
    if (noLosetup !== null) return skipWith(t, noLosetup);
    const disks = join(root, 'disks');
    mkdirSync(disks);
    const loops = new Map<string, LoopDevice>();
    const writers = new Map<string, ChildProcess>();
    t.after(() => {
      for (const writer of writers.values()) if (writer.exitCode === null) process.kill(-writer.pid!, 'SIGKILL');
      for (const loop of loops.values()) loop.destroy();
    });
    for (const node of trio) {
      const loop = createLoopDevice({ prefix: 'sliced-test-tasks-io', sizeMb: 64 });
      loops.set(node, loop);
      symlinkSync(loop.path, join(disks, node));
    }
    const write = (node: string): void => {
      const writer = spawn(
        'sh',
        ['-c', `while :; do dd if=/dev/zero of=${loops.get(node)!.path} bs=1M count=16 oflag=direct status=none; done`],
        {
          detached: true,
          stdio: 'ignore',
        },
      );
      writers.set(node, writer);
    };
    const quiet = (node: string): void => {
      process.kill(-writers.get(node)!.pid!, 'SIGKILL');
      writers.delete(node);
    };
    write(nameOf('a'));
    write(nameOf('b'));
    const io = await wire(
      'disk_io',
      'io',
      '/schedulers/ib/io_balance',
      'node_io',
      [['write', '/probes/disk_io/device', `${disks}/{node}`]],
      'rate',
    );
    const prefers = async (node: string): Promise<void> => {
      let shown = '';
      await until(
        `io_balance to prefer ${node}`,
        async () => {
          shown = await io();
          return (await placed('ib')) === node;
        },
        10_000 * SLOW,
      ).catch((err: Error) => assert.fail(`${err.message}; node_io shows:\n${shown}`));
    };
    await prefers(nameOf('c'));
    quiet(nameOf('a'));
    write(nameOf('c'));
    await prefers(nameOf('a'));
  },
);

harness.test(
  'pinned to a node: run --node and exec --node run there (output and status come back); a node that cannot take it is refused naming why',
  async () => {
    const { a } = await threeAgents();
    const s = slice('tn');
    assert.equal((await a.cli(['slice', 'create', s, '--nodes', [nameOf('a'), nameOf('b')].join(',')])).code, 0);
    await slivered(a, s);
    const exec = await a.cli([
      'exec',
      '--node',
      nameOf('b'),
      '--slice',
      s,
      '--',
      'sh',
      '-c',
      'echo "on $SLICED_NODE as $(id -un)"; echo oops >&2; exit 3',
    ]);
    assert.equal(exec.code, 3, exec.stderr);
    // As the slice's user on b (each agent on this machine names its users with a prefix of its own).
    assert.match(exec.stdout, new RegExp(`^on ${nameOf('b')} as sl-b-\\S+\n$`));
    assert.match(exec.stderr, /oops/);
    const pinned = await a.cliJson<TaskView>([
      'run',
      '--slice',
      s,
      '-d',
      '--node',
      nameOf('b'),
      '--restart',
      'always',
      '--',
      'sleep',
      '30',
    ]);
    assert.deepEqual([pinned.node, pinned.pinned, pinned.placedBy], [nameOf('b'), nameOf('b'), 'pinned (--node)']);
    assert.equal((await a.cli(['task', 'stop', pinned.id])).code, 0);
    const cases: Array<[string[], RegExp]> = [
      [['--node', nameOf('c')], new RegExp(`node ${nameOf('c')} does not hold slice ${s}`)],
      [['--node', nameOf('b'), '--migratable'], /pinned to a node cannot be migratable/],
      [['--node', 'No/Such'], /node/],
    ];
    for (const [extra, message] of cases) {
      const r = await a.cli(['run', '--slice', s, '-d', ...extra, '--', 'true']);
      assert.notEqual(r.code, 0, extra.join(' '));
      assert.match(r.stderr, message, extra.join(' '));
    }
    assert.equal((await a.cli(['node', 'cordon', nameOf('b')])).code, 0);
    try {
      const r = await a.cli(['run', '--slice', s, '-d', '--node', nameOf('b'), '--', 'true']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`${nameOf('b')} is cordoned`));
    } finally {
      await a.cli(['node', 'uncordon', nameOf('b')]);
    }
  },
);

harness.test(
  'every node refusing: swap_avoidance under memory pressure on all the nodes refuses the task naming each; nothing is placed',
  async () => {
    const { a } = await threeAgents();
    const trio = threeNames();
    const s = slice('tr');
    await ok(a, ['slice', 'create', s, '--nodes', trio.join(',')]);
    await slivered(a, s);
    const policy = '/schedulers/sa/swap_avoidance';
    // A pressure of 0% or more is every pressure: every node counts as under pressure.
    const wiring = [
      ['mkdir', '/probes/psi'],
      ['write', '/probes/psi/probe_period', '200'],
      ['mkdir', '/schedulers/sa'],
      ['mkdir', policy],
      ['write', `${policy}/low`, '0'],
      ['write', `${policy}/high`, '0'],
      ['mkdir', `${policy}/memory_pressure/remote_cache`],
      ['write', `${policy}/memory_pressure/remote_cache/prefetch_period_ms`, '200'],
      ['ln', '/probes/psi/memory', `${policy}/memory_pressure/remote_cache/memory`],
      ['write', '/schedulers/sa/process_set/handle_all', '1'],
    ];
    try {
      for (const args of wiring) await ok(a, args);
      const psi = existsSync('/proc/pressure/memory');
      if (psi) {
        await until(
          'swap_avoidance to hear from every node',
          async () => {
            const seen = (await a.cli(['cat', `${policy}/memory_pressure/collected_value`])).stdout;
            return trio.every((n) => seen.includes(n));
          },
          15_000 * SLOW,
        );
      } else process.stderr.write("# no /proc/pressure on this kernel: swap_avoidance refuses on its own node's figure only\n");
      const before = (await a.cliJson<TaskList>(['task', 'list'])).tasks.length;
      const refused = await a.cli(['run', '--slice', s, '-d', '--', 'true']);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /scheduler sa refuses new tasks now: memory pressure/);
      if (psi) for (const n of trio) assert.match(refused.stderr, new RegExp(`on every node of the task: .*${n} \\d`));
      assert.equal((await a.cliJson<TaskList>(['task', 'list'])).tasks.length, before, 'nothing was placed');
    } finally {
      for (const args of [
        ['write', '/schedulers/sa/process_set/handle_all', '0'],
        ['rm', `${policy}/memory_pressure/remote_cache/memory`],
        ['rmdir', `${policy}/memory_pressure/remote_cache`],
        ['rmdir', policy],
        ['rmdir', '/schedulers/sa'],
        ['rmdir', '/probes/psi'],
      ])
        await a.cli(args);
    }
    // Without it the task is placed again.
    assert.equal((await a.cli(['run', '--slice', s, '-d', '--', 'true'])).code, 0);
  },
);

harness.test(
  "mosix_load_balancer between nodes: of two tasks sharing a busy node's slice, one moves to an idle node; then all stays",
  async () => {
    const { a } = await threeAgents();
    const trio = threeNames();
    // Capped at 600 millicores per node, two burners on a use about 300 each: a carries 600,
    // the others about 0, and 0 + 1.3 x 300 < 600: one moves. Then 300 against 300: none.
    const s = slice('tl');
    await ok(a, ['slice', 'create', s, '--nodes', trio.join(','), '--cpu-limit', '600m']);
    await slivered(a, s);
    const others = [...(await harness.nodes(a)).keys()].filter((n) => n !== nameOf('a'));
    for (const o of others) await ok(a, ['node', 'cordon', o]);
    const ids: string[] = [];
    try {
      for (let i = 0; i < 2; i++)
        ids.push((await a.cliJson<TaskView>(['run', '--slice', s, '-d', '--migratable', '--', 'sh', '-c', 'while :; do :; done'])).id);
      for (const id of ids) assert.equal((await running(a, id)).node, nameOf('a'));
    } finally {
      for (const o of others) await a.cli(['node', 'uncordon', o]);
    }
    const twice = watchTwice(new Set(ids));
    const policy = '/schedulers/mb/mosix_load_balancer';
    const wiring = [
      ['mkdir', '/probes/slices_load'],
      ['write', '/probes/slices_load/probe_period', '500'],
      ['mkdir', '/probes/process_load'],
      ['write', '/probes/process_load/probe_period', '500'],
      ['mkdir', '/schedulers/mb'],
      ['mkdir', policy],
      ['mkdir', `${policy}/node_load/remote_cache`],
      ['write', `${policy}/node_load/remote_cache/prefetch_period_ms`, '300'],
      ['ln', '/probes/slices_load/node_load', `${policy}/node_load/remote_cache/slices`],
      ['ln', '/probes/process_load/process_load', `${policy}/process_load/processes`],
      ['write', '/schedulers/mb/process_set/handle_all', '1'],
    ];
    try {
      for (const args of wiring) await ok(a, args);
      let views: TaskView[] = [];
      await until(
        'one of the two tasks to move off a',
        async () => {
          views = await Promise.all(ids.map((id) => show(a, id)));
          return views.filter((v) => v.state === 'running' && v.node !== nameOf('a')).length === 1;
        },
        30_000 * SLOW,
      ).catch(async (err: Error) =>
        assert.fail(
          `${err.message}: ${JSON.stringify(views.map((v) => [v.node, v.state]))}; ${(await a.cli(['cat', `${policy}/status`])).stdout}`,
        ),
      );
      const moved = views.find((v) => v.node !== nameOf('a'))!;
      assert.equal(moved.placedBy, 'mosix_load_balancer');
      assert.ok(trio.includes(moved.node), `moved to ${moved.node}`);
      // Balanced now: no further move over a few of its periods.
      await sleep(4000);
      const after = await Promise.all(ids.map((id) => show(a, id)));
      assert.deepEqual(
        after.map((v) => [v.node, v.generation]),
        views.map((v) => [v.node, v.generation]),
        'nothing moved once each node carries one task',
      );
    } finally {
      assert.equal(twice.stop(), 1, 'a task ran on two nodes at once');
      for (const id of ids) await a.cli(['task', 'stop', id]);
      for (const args of [
        ['write', '/schedulers/mb/process_set/handle_all', '0'],
        ['rm', `${policy}/process_load/processes`],
        ['rm', `${policy}/node_load/remote_cache/slices`],
        ['rmdir', `${policy}/node_load/remote_cache`],
        ['rmdir', policy],
        ['rmdir', '/schedulers/mb'],
        ['rmdir', '/probes/process_load'],
        ['rmdir', '/probes/slices_load'],
      ])
        await a.cli(args);
    }
  },
);

/** The status and body of a request to an agent's channel. */
function answer(start: (onResponse: (res: IncomingMessage) => void) => ClientRequest): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = start((res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

harness.test(
  'a node that dies before it starts its tasks: the restartable one starts elsewhere, the other waits for the node; nothing runs twice',
  async () => {
    const { a } = await threeAgents();
    const g = await harness.startAgent('g', [
      '--user-prefix',
      'sl-g-',
      '--peer-listen',
      `127.0.0.1:${await freePort()}`,
      '--peer-token-file',
      tokenFile,
    ]);
    const s = slice('tg');
    assert.equal((await a.cli(['slice', 'create', s, '--nodes', [nameOf('a'), nameOf('g')].join(',')])).code, 0);
    await slivered(a, s);
    // g is paused: still up for a lease's time, so it is given the tasks, but it starts nothing.
    process.kill(g.pid!, 'SIGSTOP');
    let ids: { restartable: string; once: string };
    assert.equal((await a.cli(['node', 'cordon', nameOf('a')])).code, 0);
    try {
      const run = async (restart: string): Promise<TaskView> =>
        a.cliJson<TaskView>(['run', '--slice', s, '-d', '--restart', restart, '--', 'sh', '-c', 'while :; do sleep 0.2; done']);
      const [r, o] = [await run('always'), await run('never')];
      assert.deepEqual([r.node, o.node, r.state, o.state], [nameOf('g'), nameOf('g'), 'pending', 'pending']);
      ids = { restartable: r.id, once: o.id };
    } finally {
      assert.equal((await a.cli(['node', 'uncordon', nameOf('a')])).code, 0);
    }
    const twice = watchTwice(new Set([ids.restartable, ids.once]));
    await g.stop('SIGKILL');
    await until(
      'the restartable task to run on a',
      async () => {
        const v = await show(a, ids.restartable);
        return v.node === nameOf('a') && v.state === 'running';
      },
      20_000 * SLOW,
    );
    const waiting = await show(a, ids.once);
    assert.deepEqual([waiting.node, waiting.state], [nameOf('g'), 'unknown'], 'a task without a restart policy waits for its node');
    assert.match(waiting.reason ?? '', /is down/);
    assert.equal(taskProcesses(new Set([ids.once])).size, 0, 'nothing of it started anywhere');
    // Back: g starts the task that was placed on it and never ran; the other stays on a.
    await g.launch();
    await until('the waiting task to run on g', async () => (await show(a, ids.once)).state === 'running', 20_000 * SLOW);
    assert.equal((await show(a, ids.restartable)).node, nameOf('a'));
    assert.equal(twice.stop(), 1, 'a task ran on two nodes at once');
    for (const id of [ids.restartable, ids.once]) assert.equal((await a.cli(['task', 'stop', id])).code, 0);
  },
);
