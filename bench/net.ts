/**
 * Networking benchmark, in one run:
 *
 *   npm run bench:net [-- --json] [-- --rounds N] [-- --networks N]
 *
 * 1. iperf3 between two slice networks with accounting on and off, alternating rounds side
 *    by side (off = the bridge table's two counting rules flushed; everything else, including
 *    the HTB shaper every slice's traffic passes, stays): throughput_ratio = on / off, medians.
 * 2. Set-up and tear-down of one slice network through the API (a slice with the existing
 *    user "nobody", so useradd is not measured), 20 times: p50s.
 * 3. Set-up of 200 slice networks (16 requests in flight), then their deletion.
 * Last line of stdout: one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { TestDaemon } from '../test/helpers/daemon.js';
import { iperfClient, iperfServer } from '../test/helpers/net.js';
import type { SliceView } from '../src/daemon/views.js';
import { finish, inParallel, machine, percentile, round, say } from './lib.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const ROUNDS = arg('--rounds', 5);
const SECONDS = 3;
const SAMPLES = 20;
const NETWORKS = arg('--networks', 200);
const CONCURRENCY = 16;

function nft(args: string[]): void {
  const result = spawnSync('nft', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`nft ${args.join(' ')}: ${result.stderr}`);
}

const load = loadavg().map((l) => round(l, 2));
say(`load average before: ${load.join(' ')}`);
const daemon = await TestDaemon.start(['--log-level', 'warn']);
try {
  const table = `sliced${daemon.net.tag}`;
  for (const name of ['n5ba', 'n5bb']) await daemon.api.post('/v1/slices', { name, user: 'nobody', net: true });
  const sink = (await daemon.api.get<SliceView>('/v1/slices/n5bb')).net!.addresses!.v4;
  const server = await iperfServer(daemon, 'n5bb', sink, 5501);
  const accounting = (on: boolean): void => {
    for (const chain of ['prerouting', 'postrouting']) nft(['flush', 'chain', 'bridge', table, chain]);
    if (on) {
      nft(['add', 'rule', 'bridge', table, 'prerouting', 'counter', 'name', 'iifname', 'map', '@sent']);
      nft(['add', 'rule', 'bridge', table, 'postrouting', 'counter', 'name', 'oifname', 'map', '@received']);
    }
  };
  const withAccounting: number[] = [];
  const without: number[] = [];
  try {
    say(`iperf3 n5ba -> n5bb, ${ROUNDS} rounds of ${SECONDS} s with and without accounting...`);
    for (let i = 0; i < ROUNDS; i++) {
      for (const on of i % 2 === 0 ? [true, false] : [false, true]) {
        accounting(on);
        const run = await iperfClient(daemon, 'n5ba', ['-c', sink, '-p', '5501', '-t', String(SECONDS)]);
        (on ? withAccounting : without).push(run.bitsPerSecond / 1e9);
      }
      say(`  round ${i + 1}: on ${round(withAccounting.at(-1)!)} Gbit/s, off ${round(without.at(-1)!)} Gbit/s`);
    }
  } finally {
    accounting(true);
    await server.stop();
  }
  const on = percentile(withAccounting, 50);
  const off = percentile(without, 50);

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
    throughput_ratio: round(on / off, 3),
    throughput_on_gbit: round(on, 2),
    throughput_off_gbit: round(off, 2),
    rounds: ROUNDS,
    setup_ms_p50: round(percentile(setup, 50), 1),
    setup_ms_p90: round(percentile(setup, 90), 1),
    teardown_ms_p50: round(percentile(teardown, 50), 1),
    setup_200_s: round(setupAllS, 2),
    teardown_200_s: round(teardownAllS, 2),
    networks: NETWORKS,
    load_before: load,
    load_after: loadavg().map((l) => round(l, 2)),
    machine: machine(),
  });
} finally {
  await daemon.destroy();
}
