/**
 * Cluster membership with real daemons on a real 3-member etcd (test/helpers/etcd.ts): agents
 * joined with --cluster list each other from any node, labels and cordons made on one node are
 * seen on the others, a killed agent is shown down within its lease's time to live + 1 s and up
 * again when it returns, a live node cannot be removed and a down one can, a name held by a
 * live agent is refused at start, and an unreachable etcd refuses the start naming it; slices
 * (namespaced and host-network) cannot reach etcd. A node alone lists itself.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLICED, TestDaemon, run } from '../helpers/daemon.js';
import { ClusterHarness, freePort, until } from '../helpers/cluster.js';
import { EtcdCluster } from '../helpers/etcd.js';
import { EtcdStore } from '../../src/cluster/etcd-store.js';
import { netSkipReason } from '../helpers/net.js';
import { commandSkipReason, kernelSkipReason, skipWith, SLOW } from '../helpers/env.js';
import type { NodeEntry, NodeList } from '../../src/wire/nodes.js';
import type { WebInfo } from '../../src/wire/web.js';
import { browserSkipReason, collectErrors, launchBrowser, screenshot } from '../helpers/browser.js';

const harness = new ClusterHarness();
const { daemons, prefix } = harness;
const nameOf = (n: string): string => harness.nameOf(n);
/** The default time to live, as an operator gets it. */
const TTL_MS = 5000;
const clusterTest = (title: string, body: (t: TestContext) => Promise<void>): void => harness.test(title, body);
const clusterArgs = (name: string, extra: string[] = []): string[] => harness.args(name, extra);
const startAgent = (name: string, extra: string[] = []): Promise<TestDaemon> => harness.startAgent(name, extra);
const nodes = (daemon: TestDaemon): Promise<Map<string, NodeEntry>> => harness.nodes(daemon);

clusterTest('agents list each other from any node; labels and cordons made on one node are seen on the others', async () => {
  const a = await startAgent('a', ['--node-label', 'rack=r1']);
  const b = await startAgent('b');
  await until('both agents see both', async () => (await nodes(a)).size === 2 && (await nodes(b)).size === 2, 5000 * SLOW);
  const seen = await nodes(b);
  assert.equal(seen.get(nameOf('a'))?.status, 'up');
  assert.deepEqual(seen.get(nameOf('a'))?.labels, { rack: 'r1' }, '--node-label gives the first labels');
  assert.equal(seen.get(nameOf('b'))?.self, true);
  assert.ok((seen.get(nameOf('a'))?.live?.capacity.cpuMillicores ?? 0) > 0, 'a registered its capacity');

  // slicectl on b changes a; a shows it.
  const label = await b.cli(['node', 'label', nameOf('a'), 'zone=z1', 'rack-']);
  assert.equal(label.code, 0, label.stderr);
  const cordon = await b.cli(['node', 'cordon', nameOf('a')]);
  assert.equal(cordon.code, 0, cordon.stderr);
  await until(
    'a sees the labels and the cordon made on b',
    async () => {
      const self = (await nodes(a)).get(nameOf('a'));
      return self?.cordoned === true && self.labels.zone === 'z1' && self.labels.rack === undefined;
    },
    5000 * SLOW,
  );
  const list = await a.cli(['node', 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`${nameOf('a')} \\*\\s+up\\s+yes`), list.stdout);
  assert.match(list.stdout, new RegExp(`${nameOf('b')}\\s+up\\s+-`), list.stdout);
  // The tree's /nodes/ shows every member.
  const tree = await a.cliJson<string[] | Array<{ name: string }>>(['ls', '/nodes']);
  const names = (tree as Array<string | { name: string }>).map((e) => (typeof e === 'string' ? e : e.name));
  assert.ok(names.includes(nameOf('a')) && names.includes(nameOf('b')), `ls /nodes: ${JSON.stringify(tree)}`);
  const status = await a.cli(['cat', `/nodes/${nameOf('b')}/status`]);
  assert.equal(status.stdout.trim(), 'up', status.stderr);

  // Bad input is refused with what is allowed, and changes nothing.
  const bad = await b.cli(['node', 'label', nameOf('a'), 'bad key=1']);
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /label key "bad key"/);
  const unknown = await b.cli(['node', 'show', 'nosuchnode']);
  assert.equal(unknown.code, 3, unknown.stderr);
  const uncordon = await b.cli(['node', 'uncordon', nameOf('a')]);
  assert.equal(uncordon.code, 0, uncordon.stderr);

  // Each node's load as it publishes it (every 5 s): a reservation made on b is seen from a.
  const made = await b.cli(['slice', 'create', 'ld', '--user', 'nobody', '--cpu-reservation', '100m', '--nodes', nameOf('b')]);
  assert.equal(made.code, 0, made.stderr);
  await until(
    "a sees b's reservation in b's load",
    async () => (await nodes(a)).get(nameOf('b'))?.load?.reservedMillicores === 100,
    15_000 * SLOW,
  );
  assert.match((await a.cli(['cat', `/nodes/${nameOf('b')}/slices_load`])).stdout, /^\d+\n$/);
  const withLoad = await a.cli(['node', 'list']);
  assert.match(withLoad.stdout, new RegExp(`${nameOf('b')}\\s+up\\s+-\\s+\\d+m\\s+\\d+m\\s+100m`), withLoad.stdout);
  assert.equal((await b.cli(['slice', 'delete', 'ld'])).code, 0);
});

clusterTest('a killed agent is down within TTL + 1 s, up again when it returns; only a down node can be removed', async (t) => {
  const a = daemons[0] ?? (await startAgent('a'));
  const c = await startAgent('c');
  await until('a sees c up', async () => (await nodes(a)).get(nameOf('c'))?.status === 'up', 5000 * SLOW);
  const refused = await a.cli(['node', 'remove', nameOf('c')]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /is up .* stop its agent first/);

  await c.stop('SIGKILL');
  const killedAt = Date.now();
  await until('a shows c down', async () => (await nodes(a)).get(nameOf('c'))?.status === 'down', (TTL_MS + 5000) * SLOW);
  const downAfter = Date.now() - killedAt;
  t.diagnostic(`c shown down ${downAfter} ms after SIGKILL (lease TTL ${TTL_MS} ms)`);
  assert.ok(downAfter <= TTL_MS + 1000, `down after ${downAfter} ms; the target is TTL + 1 s = ${TTL_MS + 1000} ms`);

  await c.launch();
  const upAfter = await until('a shows c up again', async () => (await nodes(a)).get(nameOf('c'))?.status === 'up', 5000 * SLOW);
  t.diagnostic(`c up again ${upAfter} ms after its agent answered`);

  // A restart right after SIGKILL, within the old lease: the same installation takes its name back.
  await c.restart('SIGKILL');
  assert.equal((await nodes(c)).get(nameOf('c'))?.status, 'up');

  await c.stop('SIGTERM');
  await until('a shows c down after a clean stop', async () => (await nodes(a)).get(nameOf('c'))?.status === 'down', 2000 * SLOW);
  const removed = await a.cli(['node', 'remove', nameOf('c')]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal((await nodes(a)).has(nameOf('c')), false);
});

clusterTest('a name held by a live agent, and an etcd nobody answers on, refuse the start with the reason', async () => {
  const a = daemons[0] ?? (await startAgent('a'));
  await until('a up', async () => (await nodes(a)).get(nameOf('a'))?.status === 'up', 5000 * SLOW);
  // Another installation (its own state dir) asking for a's name.
  const twin = await TestDaemon.start().catch((err: unknown) => assert.fail(`a plain daemon did not start: ${String(err)}`));
  daemons.push(twin);
  await twin.stop();
  const taken = await run(process.execPath, [SLICED, ...twin.args, ...clusterArgs('a')]);
  assert.equal(taken.code, 1, taken.stderr);
  assert.match(taken.stderr + taken.stdout, new RegExp(`node name ${nameOf('a')} is held by another live agent`));

  const unreachable = await run(process.execPath, [SLICED, ...twin.args, '--cluster', 'http://127.0.0.1:9', '--node-name', nameOf('x')]);
  assert.equal(unreachable.code, 1, unreachable.stderr);
  assert.match(unreachable.stderr + unreachable.stdout, /cannot reach the cluster's etcd at http:\/\/127\.0\.0\.1:9/);

  const badFlag = await run(process.execPath, [SLICED, ...twin.args, '--cluster', 'ftp://x:1']);
  assert.equal(badFlag.code, 2, badFlag.stderr);
  assert.match(badFlag.stderr, /cluster\.endpoints \(--cluster\).*not http\(s\):\/\/HOST:PORT/);
});

test('a node alone lists itself up; its labels and cordon are kept in its own store across restarts', async (t) => {
  const reason = kernelSkipReason();
  if (reason !== null) return skipWith(t, reason);
  const daemon = await TestDaemon.start(['--node-name', nameOf('solo')]);
  daemons.push(daemon);
  const list = await daemon.api.get<NodeList>('/v1/nodes');
  assert.equal(list.mode, 'single');
  assert.deepEqual(
    list.nodes.map((n) => [n.name, n.status, n.self]),
    [[nameOf('solo'), 'up', true]],
  );
  const label = await daemon.cli(['node', 'label', nameOf('solo'), 'rack=r9']);
  assert.equal(label.code, 0, label.stderr);
  assert.equal((await daemon.cli(['node', 'cordon', nameOf('solo')])).code, 0);
  await daemon.restart();
  const shown = await daemon.cliJson<NodeEntry>(['node', 'show', nameOf('solo')]);
  assert.deepEqual([shown.status, shown.labels, shown.cordoned], ['up', { rack: 'r9' }, true]);
  const text = await daemon.cli(['node', 'list']);
  assert.match(text.stdout, /a single node \(not in a cluster\)/);
  const removeSelf = await daemon.cli(['node', 'remove', nameOf('solo')]);
  assert.equal(removeSelf.code, 1, 'a node that is up cannot be removed');
});

clusterTest(
  "slices cannot reach etcd or the agents' channel: a namespaced slice with egress and a host-network slice get a reset; the host and other ports stay reachable",
  async (t) => {
    const reason = netSkipReason();
    if (reason !== null) return skipWith(t, reason);
    // The agents' channel too: on every address of the host, at a port of its own.
    const peerPort = 20000 + (Number.parseInt(harness.run.slice(0, 4), 16) % 20000);
    const secrets = mkdtempSync(join(tmpdir(), 'sliced-peer-'));
    t.after(() => rmSync(secrets, { recursive: true, force: true }));
    writeFileSync(join(secrets, 'token'), 'a-token-of-this-test-cluster\n', { mode: 0o600 });
    const g = await startAgent('g', ['--peer-listen', `:${peerPort}`, '--peer-token-file', join(secrets, 'token')]);
    const [host, port] = new URL(harness.etcd!.endpoints[0]!).host.split(':') as [string, string];
    /** bash's /dev/tcp: 0 when the connection is made, else the refusal on stderr. */
    const connect = (target: string, p: number | string): string[] => [
      'timeout',
      '5',
      'bash',
      '-c',
      `exec 3<>/dev/tcp/${target}/${p} && echo connected`,
    ];
    const fromHost = await run(connect(host, port)[0]!, connect(host, port).slice(1));
    assert.equal(fromHost.code, 0, `the host reaches etcd: ${fromHost.stderr}`);
    for (const [slice, args] of [
      ['gnet', ['--net', '--net-egress', 'on']],
      ['ghost', []],
    ] as const) {
      const created = await g.cli(['slice', 'create', slice, ...args]);
      assert.equal(created.code, 0, created.stderr);
      const blocked = await g.cli(['exec', '--slice', slice, '--', ...connect(host, port)]);
      assert.notEqual(blocked.code, 0, `${slice} reached etcd: ${blocked.stdout}`);
      assert.match(blocked.stderr, /Connection refused/, `${slice}: the guard answers with a reset, not a timeout: ${blocked.stderr}`);
      // The same member's peer port is not a client URL: the path itself works.
      const other = await g.cli(['exec', '--slice', slice, '--', ...connect(host, 2380)]);
      assert.equal(other.code, 0, `${slice} reaches ${host}:2380 (not guarded): ${other.stderr}`);
      // The agent's channel, at the address the slice reaches the host by (its gateway, or loopback).
      const agentAddress = slice === 'gnet' ? bridgeAddress(`slbr${g.net.tag}`) : '127.0.0.1';
      const toAgent = await g.cli(['exec', '--slice', slice, '--', ...connect(agentAddress, peerPort)]);
      assert.notEqual(toAgent.code, 0, `${slice} reached the agents' channel at ${agentAddress}:${peerPort}`);
      assert.match(toAgent.stderr, /Connection refused/, `${slice}: ${toAgent.stderr}`);
    }
    const hostToAgent = await run(connect('127.0.0.1', peerPort)[0]!, connect('127.0.0.1', peerPort).slice(1));
    assert.equal(hostToAgent.code, 0, `the host reaches the agents' channel: ${hostToAgent.stderr}`);
    const rules = spawnSync('nft', ['list', 'table', 'inet', `sliced${g.net.tag}guard`], { encoding: 'utf8' });
    assert.match(rules.stdout, new RegExp(`${host.replaceAll('.', '\\.')} \\. ${port}`), rules.stdout);
    assert.match(rules.stdout, /counter packets [1-9]/, 'the guard counted the refused connections');
    await g.destroy();
    daemons.splice(daemons.indexOf(g), 1);
    const left = spawnSync('nft', ['list', 'table', 'inet', `sliced${g.net.tag}guard`], { encoding: 'utf8' });
    assert.notEqual(left.status, 0, 'sliced --cleanup removed the guard table');
  },
);

clusterTest("remote_cache shows every node's value, one row per node; a node that goes takes its value with it", async (t) => {
  const r1 = await startAgent('r1');
  const r2 = await startAgent('r2');
  const SCHED = '/schedulers/LB';
  const POLICY = `${SCHED}/mosix_load_balancer`;
  // Made on r1: the tree is the cluster's, so r2 runs the same components.
  for (const agent of [r1]) {
    for (const args of [
      ['mkdir', '/probes/cpu'],
      ['write', '/probes/cpu/probe_period', '200'],
      ['mkdir', SCHED],
      ['mkdir', POLICY],
      ['mkdir', `${POLICY}/node_load/remote_cache`],
      ['write', `${POLICY}/node_load/remote_cache/prefetch_period_ms`, '200'],
      ['ln', '/probes/cpu/node_load', `${POLICY}/node_load/remote_cache/cpu_load`],
    ]) {
      const result = await agent.cli(args);
      assert.equal(result.code, 0, `slicectl ${args.join(' ')}: ${result.stderr}`);
    }
  }
  const rows = async (agent: TestDaemon): Promise<string> => (await agent.cli(['cat', `${POLICY}/node_load/collected_value`])).stdout;
  await until("r1 collects its own value and r2's", async () => (await rows(r1)).includes(nameOf('r2')), 10_000 * SLOW);
  const text = await rows(r1);
  t.diagnostic(`r1's collected_value:\n${text}`);
  assert.match(text, new RegExp(`^${nameOf('r1')}\\s+\\d`, 'm'));
  assert.match(text, new RegExp(`^${nameOf('r2')}\\s+\\d`, 'm'));
  await r2.stop('SIGKILL');
  await until("r2's value is gone from r1 with r2's lease", async () => !(await rows(r1)).includes(nameOf('r2')), (TTL_MS + 5000) * SLOW);
});

clusterTest(
  "the config tree is the cluster's: a change on any node reaches every node in order; a conflicting change gets a clear error; pids stay per node",
  async (t) => {
    const [x, y, z] = [await startAgent('x'), await startAgent('y'), await startAgent('z')];
    const ls = async (agent: TestDaemon, path: string): Promise<string[]> => {
      const result = await agent.cli(['ls', path]);
      return result.code === 0
        ? result.stdout
            .split(/\s+/)
            .filter(Boolean)
            .map((n) => n.replace(/\/$/, ''))
        : [];
    };
    const cat = async (agent: TestDaemon, path: string): Promise<string> => (await agent.cli(['cat', path])).stdout.trim();
    const ok = async (agent: TestDaemon, args: string[]): Promise<void> => {
      const result = await agent.cli(args);
      assert.equal(result.code, 0, `slicectl ${args.join(' ')}: ${result.stderr}`);
    };

    // Made on x, seen on z; then changed on y, seen on x.
    await ok(x, ['mkdir', '/probes/load']);
    const madeAt = Date.now();
    await until('z shows the probe x made', async () => (await ls(z, '/probes')).includes('load'), 5000 * SLOW);
    t.diagnostic(`a mkdir on x visible on z after ${Date.now() - madeAt} ms (including one slicectl call)`);
    await ok(y, ['write', '/probes/load/probe_period', '300']);
    await until('x shows the period written on y', async () => (await cat(x, '/probes/load/probe_period')) === '300', 5000 * SLOW);

    // The same name made on two nodes at once: one wins, the other is told it exists.
    const [first, second] = await Promise.all([x.cli(['mkdir', '/schedulers/race']), z.cli(['mkdir', '/schedulers/race'])]);
    const codes = [first.code, second.code].sort();
    assert.deepEqual(codes, [0, 1], `one mkdir succeeds, one is refused: ${first.stderr} | ${second.stderr}`);
    assert.match(first.stderr + second.stderr, /already exists/);

    // A process-set member is a node's own: x's pid does not appear on y.
    await ok(x, ['mkdir', '/schedulers/race/process_set/single_processes/1']);
    await sleep(500);
    assert.deepEqual(await ls(y, '/schedulers/race/process_set/single_processes'), []);
    assert.deepEqual(await ls(x, '/schedulers/race/process_set/single_processes'), ['1']);

    // All three end with the same tree.
    const dumps = await Promise.all([x, y, z].map(async (a) => (await a.cli(['dump'])).stdout.replace(/\n {6}- 1\n/, '\n')));
    await until(
      'the three trees are the same',
      async () => {
        const now = await Promise.all([y, z].map(async (a) => (await a.cli(['dump'])).stdout));
        return now.every((d) => d === now[0]);
      },
      5000 * SLOW,
    );
    assert.ok(dumps[1]!.includes('load'), dumps[1]);

    // A restart takes the cluster's tree, with its own members back.
    await x.restart();
    assert.deepEqual(await ls(x, '/schedulers/race/process_set/single_processes'), ['1']);
    assert.equal(await cat(x, '/probes/load/probe_period'), '300');
    await ok(y, ['rmdir', '/probes/load']);
    await until('x sees the probe removed on y', async () => !(await ls(x, '/probes')).includes('load'), 5000 * SLOW);
  },
);

clusterTest(
  "a node whose own tree differs from the cluster's refuses to join, naming where; --cluster-take-tree takes the cluster's",
  async () => {
    // A node that ran alone and changed its tree.
    const alone = await TestDaemon.start(['--node-name', nameOf('j')]);
    daemons.push(alone);
    const made = await alone.cli(['mkdir', '/probes/mem_usage']);
    assert.equal(made.code, 0, made.stderr);
    await alone.stop();
    const refused = await run(process.execPath, [SLICED, ...alone.args, ...clusterArgs('j')]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr + refused.stdout, /this node's config tree differs from the cluster's at .*\/probes\/mem_usage/);
    alone.args.push(...clusterArgs('j', ['--cluster-take-tree']));
    await alone.launch();
    const probes = await alone.cli(['ls', '/probes']);
    assert.doesNotMatch(probes.stdout, /mem_usage/, "the cluster's tree replaced the node's own");
  },
);

clusterTest("least_loaded places new tasks on the least loaded node of the cluster, remote nodes' loads included", async () => {
  const p = await startAgent('p');
  // Two more nodes as an agent publishes them: their load values under their own lease.
  const peers = await EtcdStore.open({ endpoints: harness.etcd!.endpoints, prefix });
  const lease = await peers.grantLease(60_000);
  const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
  try {
    const SCHED = '/schedulers/placing';
    const cache = `${SCHED}/least_loaded/node_load/remote_cache`;
    for (const args of [
      ['mkdir', '/probes/cpu'],
      ['mkdir', SCHED],
      ['mkdir', `${SCHED}/least_loaded`],
      ['mkdir', cache],
      ['write', `${cache}/prefetch_period_ms`, '100'],
      ['ln', '/probes/cpu/node_load', `${cache}/cpu_load`],
      ['mkdir', `${SCHED}/process_set/single_processes/${sleeper.pid}`],
    ]) {
      const result = await p.cli(args);
      assert.ok(result.code === 0 || /already exists/.test(result.stderr), `slicectl ${args.join(' ')}: ${result.stderr}`);
    }
    const capacity = (await p.api.get<{ cpu: { capacity: number } }>('/v1/node')).cpu.capacity;
    const loads = { [nameOf('busy')]: 2 * capacity, [nameOf('idle')]: 0 };
    await peers.txnIf(
      [],
      Object.entries(loads).map(([node, load]) => ({
        type: 'put' as const,
        key: `values/${node}${cache}`,
        value: JSON.stringify({ labels: [], data: [load], at: Date.now() }),
        lease: lease.id,
      })),
    );
    const rows = async (): Promise<string> => (await p.cli(['cat', `${SCHED}/least_loaded/node_load/collected_value`])).stdout;
    await until("the other nodes' loads reach least_loaded", async () => (await rows()).includes(nameOf('idle')), 5000 * SLOW);
    const placed = await p.cliJson<{ scheduler: string; node: string }>(['placement', String(sleeper.pid)]);
    assert.equal(placed.node, nameOf('idle'), `the least loaded of: ${await rows()}`);
    // The peers' lease ends: their values go, and so does the idle node as a place (the agents
    // of the other tests, which run the same tree, are still candidates).
    await lease.revoke();
    await until('the peers are gone from least_loaded', async () => !(await rows()).includes(nameOf('idle')), 5000 * SLOW);
    const after = await p.cliJson<{ node: string }>(['placement', String(sleeper.pid)]);
    assert.ok(![nameOf('idle'), nameOf('busy')].includes(after.node), `placed on ${after.node}, a node that is gone`);
  } finally {
    sleeper.kill('SIGKILL');
    await peers.close();
  }
});

clusterTest(
  'TLS: an agent with a client certificate signed by the cluster CA joins an etcd that demands one; without it the start is refused',
  async (t) => {
    const reason = commandSkipReason('openssl', 'openssl');
    if (reason !== null) return skipWith(t, reason);
    const secure = await EtcdCluster.start(1, { tls: true });
    try {
      const tls = secure.tls!;
      const base = ['--cluster', secure.endpoints.join(','), '--cluster-prefix', prefix, '--cluster-ca', tls.ca];
      const agent = await TestDaemon.start([...base, '--cluster-cert', tls.cert, '--cluster-key', tls.key, '--node-name', nameOf('tls')]);
      daemons.push(agent);
      const list = await agent.api.get<NodeList>('/v1/nodes');
      assert.deepEqual(
        [list.mode, list.endpoints[0]?.startsWith('https://'), list.nodes.find((n) => n.self)?.status],
        ['etcd', true, 'up'],
      );
      const made = await agent.cli(['mkdir', '/probes/load']);
      assert.ok(made.code === 0 || /already exists/.test(made.stderr), made.stderr);
      await agent.destroy();
      daemons.splice(daemons.indexOf(agent), 1);

      const plain = await TestDaemon.start();
      daemons.push(plain);
      await plain.stop();
      const refused = await run(process.execPath, [SLICED, ...plain.args, ...base, '--node-name', nameOf('tls2')]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr + refused.stdout, /cannot reach the cluster's etcd at https:\/\//);
      const noHttps = await run(process.execPath, [
        SLICED,
        ...plain.args,
        '--cluster',
        harness.etcd!.endpoints[0]!,
        '--cluster-ca',
        tls.ca,
      ]);
      assert.equal(noHttps.code, 2, noHttps.stderr);
      assert.match(noHttps.stderr, /has tls files but http endpoints; use https:\/\//);
    } finally {
      await secure.destroy();
    }
  },
);

clusterTest(
  'fail-static: with etcd unreachable an agent keeps its slices and answers, refuses tree changes naming the cause, and catches up after',
  async (t) => {
    const f = await startAgent('f');
    const g = await startAgent('g');
    const created = await f.cli(['slice', 'create', 'fstatic', '--user', 'nobody', '--cpu-limit', '200m']);
    assert.equal(created.code, 0, created.stderr);
    for (let i = 0; i < 3; i++) harness.etcd!.pause(i);
    try {
      const started = Date.now();
      const refused = await f.cli(['mkdir', '/schedulers/while_cut_off']);
      const took = Date.now() - started;
      t.diagnostic(`a tree change with every etcd member paused: exit ${refused.code} after ${took} ms: ${refused.stderr.trim()}`);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /etcd|deadline|unavailable/i, 'the refusal names the cause');
      assert.ok(took < 20_000 * SLOW, `refused after ${took} ms: the daemon does not hang on etcd`);
      // Slice changes are the cluster's too: refused, naming the cause, without hanging.
      const sliceRefused = await f.cli(['slice', 'create', 'fcutoff', '--user', 'nobody']);
      assert.equal(sliceRefused.code, 1, sliceRefused.stderr);
      assert.match(sliceRefused.stderr, /etcd|deadline|unavailable/i, 'the refusal names the cause');
      // What is the node's own keeps working: its slices, its API.
      const shown = await f.cliJson<{ cpu: { limit: number | null }; clusterError?: string }>(['slice', 'show', 'fstatic']);
      assert.equal(shown.cpu.limit, 200);
      assert.match(shown.clusterError ?? '', /cannot read the cluster's catalogue/, 'the view says why the nodes are missing');
      assert.equal((await f.cli(['status'])).code, 0);
    } finally {
      for (let i = 0; i < 3; i++) harness.etcd!.resume(i);
    }
    // Back: a change on g reaches f, and f can change the tree again.
    await until(
      'f changes the tree again',
      async () =>
        (await f.cli(['mkdir', '/schedulers/after_cut'])).code === 0 || (await f.cli(['ls', '/schedulers'])).stdout.includes('after_cut'),
      20_000 * SLOW,
    );
    const made = await g.cli(['mkdir', '/schedulers/from_g']);
    assert.equal(made.code, 0, made.stderr);
    await until("f sees g's change", async () => (await f.cli(['ls', '/schedulers'])).stdout.includes('from_g'), 10_000 * SLOW);
    await until('f and g are both up for each other', async () => (await nodes(g)).get(nameOf('f'))?.status === 'up', 10_000 * SLOW);
    // A slice placed on f from g after the cut is realised by f: it caught up.
    const placed = await g.cli(['slice', 'create', 'fafter', '--user', 'nobody', '--nodes', nameOf('f')]);
    assert.equal(placed.code, 0, placed.stderr);
    await until(
      'f realised the slice placed on it from g',
      async () => (await f.cli(['slice', 'show', 'fafter'])).stdout.includes('Cgroup'),
      10_000 * SLOW,
    );
    assert.equal((await f.cli(['slice', 'show', 'fcutoff'])).code, 3, 'the refused create left nothing behind');
  },
);

/** The host's IPv4 address on a bridge (a namespaced slice's gateway). */
function bridgeAddress(bridge: string): string {
  const out = spawnSync('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge], { encoding: 'utf8' }).stdout;
  const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out);
  assert.ok(m, `no IPv4 address on ${bridge}: ${out}`);
  return m[1]!;
}

clusterTest("the dashboard's cluster page: both nodes and a task; cordon a node and stop the task from the page", async (t) => {
  const reason = await browserSkipReason();
  if (reason) return skipWith(t, reason);
  const port = await freePort();
  const w1 = await startAgent('w1', ['--web', `127.0.0.1:${port}`]);
  const w2 = await startAgent('w2');
  await until('both nodes up', async () => (await nodes(w1)).get(nameOf('w2'))?.status === 'up', 10_000 * SLOW);
  assert.equal(
    (await w1.cli(['slice', 'create', 'wq', '--user', 'nobody', '--cpu-reservation', '100m', '--nodes', `${nameOf('w1')},${nameOf('w2')}`]))
      .code,
    0,
  );
  await until('the slice ready on both', async () => (await w2.cli(['slice', 'show', 'wq'])).code === 0, 10_000 * SLOW);
  const task = (await w1.cli(['run', '--slice', 'wq', '-d', '--', 'sleep', '300'])).stdout.trim();
  const info = await w1.cliJson<WebInfo>(['web']);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = collectErrors(page);
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(info.signInUrl);
    await page.click('nav a[href="#/cluster"]');
    for (const n of ['w1', 'w2']) await page.waitForSelector(`#nodes tr[data-node="${nameOf(n)}"]`, { timeout: 10_000 * SLOW });
    assert.match((await page.textContent('#nodes'))!, /Joined to a cluster|up/);
    // w2's load, as w2 publishes it: the slice's reservation there.
    await until(
      "w2's reservation on w1's page",
      async () => /100m/.test((await page.textContent(`#nodes tr[data-node="${nameOf('w2')}"] td:nth-child(5)`)) ?? ''),
      15_000 * SLOW,
    );
    await page.waitForSelector(`#tasks tr[data-task="${task}"]`, { timeout: 10_000 * SLOW });
    await until(
      'the task shown running',
      async () => /running/.test((await page.textContent(`#tasks tr[data-task="${task}"]`)) ?? ''),
      10_000 * SLOW,
    );
    await screenshot(page, 'dashboard-cluster-joined');
    await page.click(`#nodes tr[data-node="${nameOf('w2')}"] button:has-text("Cordon")`);
    await until('w2 cordoned', async () => (await nodes(w1)).get(nameOf('w2'))?.cordoned === true, 10_000 * SLOW);
    await page.click(`#tasks tr[data-task="${task}"] button.danger`);
    await until(
      'the task stopped',
      async () => (await w1.cliJson<{ state: string }>(['task', 'show', task])).state === 'stopped',
      15_000 * SLOW,
    );
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
