/**
 * Cluster tasks with three real agents on a real 3-member etcd, talking over the node-to-node
 * channel (shared token): a task submitted on one node runs on a node of its slice, as the
 * slice's user there; its output streams back to the caller and is read from any node; stop
 * and signals work from any node; placement spreads tasks, avoids cordoned nodes and honours
 * a scheduler of the tree; the channel answers 401 without the token; a task on a node that is
 * down says so.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { ClusterHarness, until } from '../helpers/cluster.js';
import { TestDaemon } from '../helpers/daemon.js';
import { SLOW } from '../helpers/env.js';
import type { SliceView } from '../../src/wire/slices.js';
import type { TaskList, TaskView } from '../../src/wire/tasks.js';

const harness = new ClusterHarness();
const nameOf = (n: string): string => harness.nameOf(n);
const secrets = mkdtempSync(join(tmpdir(), 'sliced-peer-'));
after(() => rmSync(secrets, { recursive: true, force: true }));
const tokenFile = join(secrets, 'token');
writeFileSync(tokenFile, `${harness.run}-${'x'.repeat(24)}\n`, { mode: 0o600 });
chmodSync(tokenFile, 0o600);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

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
    await until(
      'the slice on every node',
      async () => {
        const view = await a.cliJson<SliceView & { cluster?: { slivers: Array<{ state: string }> } }>(['slice', 'show', s]);
        return view.cluster?.slivers.every((x) => x.state === 'ready') ?? false;
      },
      15_000 * SLOW,
    );
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
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: ports.get('c')!, path: '/peer/v1/health', headers }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
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
