/**
 * Networking benchmark, in one run:
 *
 *   npm run bench:net [-- --json] [-- --rounds N] [-- --networks N]
 *
 * 1. Traffic, in rounds whose order rotates, medians over the rounds:
 *    - iperf3 TCP between two slice networks with accounting on and off (off = only the bridge
 *      table's two counting rules removed; the source check and the HTB shaper every slice's
 *      traffic passes through the IFB stay): throughput_ratio = on / off;
 *    - the same against a bare veth pair between two namespaces the benchmark makes (no
 *      bridge, no IFB, no HTB, no nftables): bare_veth_gbit, vs_bare_ratio = on / bare;
 *    - small packets: iperf3 UDP with 64-byte payloads at full speed, packets per second
 *      received, on / off / bare: udp64_*;
 *    - host-network slices (accounted by `socket cgroupv2` in the inet table, no namespace):
 *      TCP and UDP-64 between two of them over loopback with the counting chains
 *      (count_out, count_in) as the daemon wrote them and emptied: host_*.
 * 2. Set-up and tear-down of one slice network through the API (a slice with the existing
 *    user "nobody", so useradd is not measured), 20 times: p50s.
 * 3. Set-up of 200 slice networks (16 requests in flight), then their deletion.
 * Everything it makes (slices, the bare namespaces) goes at the end, also on failure.
 * Last line of stdout: one JSON object.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort, TestDaemon } from '../test/helpers/daemon.js';
import { iperfServer } from '../test/helpers/net.js';
import type { SliceView } from '../src/wire/slices.js';
import { runTool } from '../src/kernel/net/run.js';
import { argValue, finish, inParallel, loadAverage, machine, onInterrupt, percentile, round, say } from './lib.js';

const ROUNDS = Number(argValue('--rounds') ?? 5);
const SECONDS = 3;
const SAMPLES = 20;
const NETWORKS = Number(argValue('--networks') ?? 200);
const CONCURRENCY = 16;
const SMALL = 64; // UDP payload bytes of the small-packet runs

function nft(script: string): void {
  const result = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`nft -f: ${result.stderr}\n${script}`);
}
function nftList(args: string[]): string {
  const result = spawnSync('nft', ['list', ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`nft list ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/**
 * Chains as the daemon wrote them, restored whole ("on") or without the rules that match
 * `drop` ("off"), in one transaction each.
 */
class Chains {
  private readonly saved: Array<{ family: string; table: string; chain: string; listing: string }>;

  constructor(family: string, table: string, chains: string[]) {
    this.saved = chains.map((chain) => ({ family, table, chain, listing: nftList(['chain', family, table, chain]) }));
  }

  set(on: boolean, drop: RegExp): void {
    const script = this.saved.map(({ family, table, chain, listing }) => {
      const kept = on
        ? listing
        : listing
            .split('\n')
            .filter((line) => !drop.test(line))
            .join('\n');
      if (!on && kept === listing) throw new Error(`no counting rule found in chain ${family} ${table} ${chain}:\n${listing}`);
      return `flush chain ${family} ${table} ${chain}\n${kept}`;
    });
    nft(script.join('\n'));
  }

  /** Throw unless the chains are again exactly as the daemon wrote them. */
  verify(): void {
    for (const { family, table, chain, listing } of this.saved) {
      const now = nftList(['chain', family, table, chain]);
      if (now !== listing) throw new Error(`chain ${family} ${table} ${chain} was not restored:\n${now}\nexpected:\n${listing}`);
    }
  }
}

interface Flow {
  /** TCP: receiver's bit/s; UDP: datagrams per second the receiver got. */
  rate: number;
  /** UDP only: % of the datagrams sent that were lost. */
  lossPct?: number;
}

/** Figures of an iperf3 -J client run (TCP or UDP). */
function parseRun(json: string, udp: boolean): Flow {
  const doc = JSON.parse(json) as {
    error?: string;
    end: { sum_received: { bits_per_second: number; seconds: number; packets?: number; lost_packets?: number; lost_percent?: number } };
  };
  if (doc.error) throw new Error(`iperf3: ${doc.error}`);
  const r = doc.end.sum_received;
  if (!udp) return { rate: r.bits_per_second };
  return { rate: (r.packets! - r.lost_packets!) / r.seconds, lossPct: r.lost_percent! };
}

function clientArgs(address: string, port: number, udp: boolean): string[] {
  return ['-J', '-c', address, '-p', String(port), '-t', String(SECONDS), ...(udp ? ['-u', '-b', '0', '-l', String(SMALL)] : [])];
}

async function collect(command: string, args: string[]): Promise<string> {
  const { stdout, stderr, code } = await runTool(command, args);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${stdout.slice(-600)} ${stderr}`);
  return stdout;
}

/** Two namespaces joined by nothing but a veth pair, with an iperf3 server in the second. */
class BareVeth {
  readonly ns: [string, string];
  readonly address = '192.0.2.2'; // TEST-NET-1, only inside the two namespaces
  private server: ChildProcess | null = null;

  constructor() {
    const id = process.pid.toString(36);
    this.ns = [`sliced-bench-${id}a`, `sliced-bench-${id}b`];
  }

  async create(port: number): Promise<void> {
    const [a, b] = this.ns;
    const [va, vb] = [`slbench${process.pid.toString(36)}a`, `slbench${process.pid.toString(36)}b`];
    const ip = (args: string[]): void => {
      const result = spawnSync('ip', args, { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr}`);
    };
    ip(['netns', 'add', a]);
    ip(['netns', 'add', b]);
    ip(['link', 'add', va, 'netns', a, 'type', 'veth', 'peer', 'name', vb, 'netns', b]);
    ip(['-n', a, 'addr', 'add', '192.0.2.1/24', 'dev', va]);
    ip(['-n', b, 'addr', 'add', `${this.address}/24`, 'dev', vb]);
    for (const [ns, veth] of [
      [a, va],
      [b, vb],
    ] as const) {
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'link', 'set', veth, 'up']);
    }
    const server = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '--forceflush', '-B', this.address, '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.server = server;
    await new Promise<void>((resolvePromise, reject) => {
      let out = '';
      server.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (/Server listening/.test(out)) resolvePromise();
      });
      server.on('exit', (code) => reject(new Error(`iperf3 server in ${b} exited ${code}: ${out}`)));
    });
  }

  run(port: number, udp: boolean): Promise<Flow> {
    return collect('ip', ['netns', 'exec', this.ns[0], 'iperf3', ...clientArgs(this.address, port, udp)]).then((out) => parseRun(out, udp));
  }

  /** Stop the server and delete both namespaces (their veth goes with them). */
  async remove(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    for (const ns of this.ns) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

async function sliceRun(daemon: TestDaemon, slice: string, address: string, port: number, udp: boolean): Promise<Flow> {
  const result = await daemon.cli(['exec', '--slice', slice, '--', 'iperf3', ...clientArgs(address, port, udp)]);
  if (result.code !== 0) throw new Error(`iperf3 in ${slice} failed (${result.code}): ${result.stdout.slice(-800)} ${result.stderr}`);
  return parseRun(result.stdout, udp);
}

const load = loadAverage();
say(`load average before: ${load.join(' ')}`);
const daemon = await TestDaemon.start(['--log-level', 'warn']);
const bare = new BareVeth();
const undo = onInterrupt(async () => {
  await bare.remove();
  await daemon.destroy();
});
try {
  const tag = `sliced${daemon.net.tag}`;
  for (const name of ['n5ba', 'n5bb']) await daemon.api.post('/v1/slices', { name, user: 'nobody', net: true });
  for (const name of ['bdh1', 'bdh2']) await daemon.api.post('/v1/slices', { name, user: 'nobody' });
  const sink = (await daemon.api.get<SliceView>('/v1/slices/n5bb')).net!.addresses!.v4;
  const hostPort = await freePort();
  const servers = [await iperfServer(daemon, 'n5bb', sink, 5501), await iperfServer(daemon, 'bdh2', '127.0.0.1', hostPort)];
  await bare.create(5503);
  // Saved after every slice exists: the daemon rewrites the host counting chains when the
  // cgroup levels in use change.
  const bridge = new Chains('bridge', tag, ['prerouting', 'postrouting']);
  const host = new Chains('inet', tag, ['count_out', 'count_in']);
  const BRIDGE_COUNTING = /^\s*counter name [io]ifname map @(sent|received)\s*$/;
  const HOST_COUNTING = /counter name socket cgroupv2/;

  const configs: Array<{ name: string; run: () => Promise<Flow> }> = [];
  for (const udp of [false, true]) {
    const kind = udp ? 'udp64' : 'tcp';
    configs.push(
      { name: `${kind} on`, run: () => (bridge.set(true, BRIDGE_COUNTING), sliceRun(daemon, 'n5ba', sink, 5501, udp)) },
      { name: `${kind} off`, run: () => (bridge.set(false, BRIDGE_COUNTING), sliceRun(daemon, 'n5ba', sink, 5501, udp)) },
      { name: `${kind} bare`, run: () => bare.run(5503, udp) },
      { name: `${kind} host on`, run: () => (host.set(true, HOST_COUNTING), sliceRun(daemon, 'bdh1', '127.0.0.1', hostPort, udp)) },
      { name: `${kind} host off`, run: () => (host.set(false, HOST_COUNTING), sliceRun(daemon, 'bdh1', '127.0.0.1', hostPort, udp)) },
    );
  }
  const flows = new Map<string, Flow[]>(configs.map((c) => [c.name, []]));
  try {
    say(
      `${ROUNDS} rounds of ${configs.length} iperf3 runs of ${SECONDS} s (TCP and UDP with ${SMALL}-byte payloads; slice networks with accounting on and off, a bare veth pair, host-network slices over loopback with accounting on and off), order rotating...`,
    );
    for (let i = 0; i < ROUNDS; i++) {
      for (let k = 0; k < configs.length; k++) {
        const config = configs[(i + k) % configs.length]!;
        flows.get(config.name)!.push(await config.run());
      }
      bridge.set(true, BRIDGE_COUNTING);
      host.set(true, HOST_COUNTING);
      say(
        `  round ${i + 1}: ${configs.map((c) => `${c.name} ${c.name.startsWith('tcp') ? `${round(flows.get(c.name)!.at(-1)!.rate / 1e9)} Gbit/s` : `${round(flows.get(c.name)!.at(-1)!.rate / 1000)} k/s`}`).join(', ')}`,
      );
    }
  } finally {
    bridge.set(true, BRIDGE_COUNTING);
    host.set(true, HOST_COUNTING);
    bridge.verify();
    host.verify();
    for (const server of servers) await server.stop();
    await bare.remove();
  }
  const median = (name: string): number =>
    percentile(
      flows.get(name)!.map((f) => f.rate),
      50,
    );
  const loss = (name: string): number =>
    round(
      percentile(
        flows.get(name)!.map((f) => f.lossPct ?? 0),
        50,
      ),
      1,
    );
  const gbit = (name: string): number => round(median(name) / 1e9, 2);
  const kpps = (name: string): number => round(median(name) / 1000, 1);
  const ratio = (a: string, b: string): number => round(median(a) / median(b), 3);

  say(`set-up and tear-down of one slice network, ${SAMPLES} times...`);
  const setup: number[] = [];
  const teardown: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    let t = performance.now();
    await daemon.api.post('/v1/slices', { name: `n5s${i}`, user: 'nobody', net: true });
    setup.push(performance.now() - t);
    t = performance.now();
    await daemon.api.delete(`/v1/slices/n5s${i}`);
    teardown.push(performance.now() - t);
  }
  say(`  set-up p50 ${round(percentile(setup, 50), 1)} ms, tear-down p50 ${round(percentile(teardown, 50), 1)} ms`);

  say(`set-up of ${NETWORKS} slice networks (${CONCURRENCY} requests in flight)...`);
  const names = Array.from({ length: NETWORKS }, (_, i) => `n5m${i}`);
  const setupAllS = await inParallel(names, (name) => daemon.api.post('/v1/slices', { name, user: 'nobody', net: true }), CONCURRENCY);
  const teardownAllS = await inParallel(names, (name) => daemon.api.delete(`/v1/slices/${name}`), CONCURRENCY);
  say(`  ${round(setupAllS, 2)} s to set up, ${round(teardownAllS, 2)} s to tear down`);

  finish({
    bench: 'net',
    throughput_ratio: ratio('tcp on', 'tcp off'),
    throughput_on_gbit: gbit('tcp on'),
    throughput_off_gbit: gbit('tcp off'),
    bare_veth_gbit: gbit('tcp bare'),
    vs_bare_ratio: ratio('tcp on', 'tcp bare'),
    off_vs_bare_ratio: ratio('tcp off', 'tcp bare'),
    udp64_kpps_on: kpps('udp64 on'),
    udp64_kpps_off: kpps('udp64 off'),
    udp64_kpps_bare: kpps('udp64 bare'),
    udp64_ratio: ratio('udp64 on', 'udp64 off'),
    udp64_vs_bare_ratio: ratio('udp64 on', 'udp64 bare'),
    udp64_loss_pct_on: loss('udp64 on'),
    udp64_loss_pct_off: loss('udp64 off'),
    udp64_loss_pct_bare: loss('udp64 bare'),
    host_throughput_on_gbit: gbit('tcp host on'),
    host_throughput_off_gbit: gbit('tcp host off'),
    host_throughput_ratio: ratio('tcp host on', 'tcp host off'),
    host_udp64_kpps_on: kpps('udp64 host on'),
    host_udp64_kpps_off: kpps('udp64 host off'),
    host_udp64_ratio: ratio('udp64 host on', 'udp64 host off'),
    rounds: ROUNDS,
    seconds_per_run: SECONDS,
    setup_ms_p50: round(percentile(setup, 50), 1),
    setup_ms_p90: round(percentile(setup, 90), 1),
    teardown_ms_p50: round(percentile(teardown, 50), 1),
    setup_200_s: round(setupAllS, 2),
    teardown_200_s: round(teardownAllS, 2),
    networks: NETWORKS,
    runs: Object.fromEntries(
      [...flows].map(([name, list]) => [name, list.map((f) => round(name.startsWith('tcp') ? f.rate / 1e9 : f.rate / 1000, 2))]),
    ),
    load_before: load,
    load_after: loadAverage(),
    machine: machine(),
  });
} finally {
  await bare.remove();
  await daemon.destroy();
  undo();
}
