/**
 * scripts/cluster-demo: a three-node sliced cluster on this one machine. A 3-member etcd
 * (Debian's etcd-server, each member in its own network namespace on a private bridge, as the
 * tests make it), three agents joined to it with their own names, labels, cgroup roots, net
 * tags, state directories and sockets, slices placed across the nodes (--all-nodes, --nodes,
 * --node-selector, the default node) with a CPU burner in each sliver, and a live table of the
 * cluster (nodes, status, capacity, reserved, load, slivers) redrawn every second. Halfway
 * through each minute one agent is killed (SIGKILL) and is shown down when its lease ends,
 * then started again. Ctrl-C removes everything it made.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { TestDaemon } from '../test/helpers/daemon.js';
import { EtcdCluster, etcdSkipReason } from '../test/helpers/etcd.js';
import { spawnInSlice, type SliceProcessPlan } from '../src/kernel/spawn.js';
import { renderTable } from '../src/core/table.js';
import type { NodeList } from '../src/wire/nodes.js';
import type { StatusDocument } from '../src/wire/status.js';

const NODES = ['n1', 'n2', 'n3'];
// Three agents and three etcd members share this machine's CPUs: the slices are capped, so
// that etcd (whose leader must answer within its election timeout) is never starved.
const SLICES: Array<{ name: string; cpu: Record<string, string | number>; placement?: Record<string, unknown> }> = [
  { name: 'web', cpu: { reservation: '100m', limit: '150m' }, placement: { all: true } },
  { name: 'db', cpu: { reservation: '200m', limit: '200m' }, placement: { nodes: ['demo-n1', 'demo-n2'] } },
  { name: 'ci', cpu: { limit: '150m' }, placement: { selector: { zone: 'z3' } } },
  { name: 'batch', cpu: { shares: 300, limit: '100m' } },
];
const BURN = ['/bin/sh', '-c', 'while :; do :; done'];
/** The node that goes away for a while each minute. */
const FLAKY = 'n3';

const skip = etcdSkipReason();
if (skip !== null) {
  process.stderr.write(`cluster-demo: ${skip}\n`);
  process.exit(1);
}

const run = randomUUID().slice(0, 6);
const nodeName = (n: string): string => `demo-${n}`;
process.stdout.write('starting a 3-member etcd in network namespaces...\n');
const etcd = await EtcdCluster.start(3);
const agents = new Map<string, TestDaemon>();
const burners: ChildProcess[] = [];
let stopping = false;
let starting = true;

async function stopAll(): Promise<void> {
  for (const child of burners) child.kill('SIGKILL');
  for (const agent of agents.values()) await agent.destroy().catch((err: Error) => process.stderr.write(`${err.message}\n`));
  await etcd.destroy();
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    if (starting) return; // the start sees the flag and undoes what it made
    process.stdout.write('\nstopping: removing the agents, their slices and kernel objects, and etcd...\n');
    void stopAll().then(() => process.exit(0));
  });
}

try {
  for (const [i, n] of NODES.entries()) {
    if (stopping) throw new Error('interrupted');
    process.stdout.write(`starting agent ${nodeName(n)}...\n`);
    const agent = await TestDaemon.start([
      '--cluster',
      etcd.endpoints.join(','),
      '--cluster-prefix',
      `/sliced-demo/${run}/`,
      '--node-name',
      nodeName(n),
      '--node-label',
      `zone=z${i + 1}`,
      '--log-level',
      'warn',
      // The three agents share this machine's users: each names those it makes its own way.
      '--user-prefix',
      `sl-${n}-`,
    ]);
    agents.set(n, agent);
  }
  // Made on n1, realised by the nodes each is placed on.
  const first = agents.get('n1')!;
  for (const slice of SLICES) {
    if (stopping) throw new Error('interrupted');
    await first.api.post('/v1/slices', {
      name: slice.name,
      user: 'nobody',
      cpu: slice.cpu,
      ...(slice.placement ? { placement: slice.placement } : {}),
    });
  }
  for (const agent of agents.values()) {
    for (const { name } of await agent.api.get<Array<{ name: string }>>('/v1/slices')) {
      const plan = await agent.api.post<SliceProcessPlan>(`/v1/slices/${name}/exec-plan`, { pid: process.pid });
      burners.push(spawnInSlice(plan, BURN, { stdio: 'ignore' }));
    }
  }
} catch (err) {
  if (!stopping) process.stderr.write(`cluster-demo: ${(err as Error).message}\n`);
  process.stdout.write('removing what the demo made...\n');
  await stopAll();
  process.exit(stopping ? 0 : 1);
}
starting = false;

const started = Date.now();
let event = 'all three nodes up';
let flakyDown = false;

async function draw(): Promise<void> {
  const seconds = Math.floor((Date.now() - started) / 1000);
  const flaky = agents.get(FLAKY)!;
  if (seconds % 60 >= 30 && !flakyDown) {
    flakyDown = true;
    await flaky.stop('SIGKILL');
    event = `${nodeName(FLAKY)}'s agent killed: shown down when its lease ends (5 s); its slices keep running`;
  } else if (seconds % 60 < 30 && flakyDown) {
    flakyDown = false;
    await flaky.launch();
    event = `${nodeName(FLAKY)}'s agent started again: up at once`;
  }
  const list = await agents.get('n1')!.api.get<NodeList>('/v1/nodes');
  const rows: string[][] = [];
  for (const node of list.nodes) {
    const short = node.name.replace(/^demo-/, '');
    const agent = agents.get(short);
    let status: StatusDocument | null = null;
    if (agent && node.status === 'up') status = await agent.api.get<StatusDocument>('/v1/status').catch(() => null);
    const load = status ? status.slices.reduce((sum, s) => sum + (s.live?.usage ?? 0), 0) : null;
    rows.push([
      node.name,
      node.status,
      node.cordoned ? 'yes' : '-',
      node.live ? `${node.live.capacity.cpuMillicores}m` : '-',
      status ? `${status.node.cpu.reserved ?? 0}m` : '-',
      load === null ? '-' : `${Math.round(load)}m`,
      status ? status.slices.map((s) => s.name).join(',') || '-' : '-',
      Object.entries(node.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ]);
  }
  process.stdout.write('\x1b[H\x1b[2J');
  process.stdout.write(`sliced cluster demo — ${seconds}s — ${event}\n\n`);
  process.stdout.write(`${renderTable(['NODE', 'STATUS', 'CORDONED', 'CAPACITY', 'RESERVED', 'LOAD', 'SLIVERS', 'LABELS'], rows)}\n\n`);
  process.stdout.write(`etcd: ${etcd.endpoints.join(',')}\n`);
  for (const [n, agent] of agents) process.stdout.write(`  ${nodeName(n)}: slicectl --socket ${agent.socket} node list\n`);
  process.stdout.write('try: slicectl ... slice show web (one sliver per node); slicectl ... slice create x --all-nodes on one node\n');
  process.stdout.write('     slicectl ... mkdir /probes/load on one node, then ls /probes on another   stop: Ctrl-C\n');
}

const timer = setInterval(() => {
  if (!stopping) void draw().catch((err: Error) => (event = `(table: ${err.message})`));
}, 1000);
process.on('exit', () => clearInterval(timer));
await draw();
