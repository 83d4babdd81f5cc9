/**
 * Data-flow benchmark: updates pushed through the slides' chain
 *   probe source -> threshold -> remote_cache -> port -> policy
 * built with the real config tree and built-in filters, and, in the same run, through an
 * RxJS pipeline of the same shape (filter / map / distinctUntilChanged into a subscriber).
 * Also the latency from a probe value change to the policy's reaction with probe_period 10 ms.
 *
 *   npm run bench:dataflow [-- --json] [-- --updates N]
 *
 * Last line of stdout: one JSON object with updates_per_s, ns_per_hop,
 * heap_growth_bytes_per_million, rxjs_updates_per_s, vs_rxjs, the same through the probe's
 * refresh (has_changed included: updates_per_s_via_refresh, vs_rxjs_via_refresh) and the
 * latency percentiles.
 */
import { Subject, filter, map, distinctUntilChanged } from 'rxjs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigTree, type DirNode } from '../src/framework/tree.js';
import { TypeRegistry } from '../src/framework/registry.js';
import { BUILTIN_TYPES } from '../src/components/builtins.js';
import type { Output } from '../src/framework/dataflow.js';
import type { PolicyType, ProbeType } from '../src/framework/types.js';
import type { ProbeInstance } from '../src/framework/instances.js';
import { finish, machine, percentile, round, say } from './lib.js';

const updatesIndex = process.argv.indexOf('--updates');
const UPDATES = updatesIndex > 0 ? Number(process.argv[updatesIndex + 1]) : 5_000_000;
const HOPS = 4; // source->threshold, threshold->remote_cache, remote_cache->port, port->policy
const gc = (globalThis as { gc?: () => void }).gc;

const silentLog = { info() {}, warn() {}, error() {}, debug() {} };

/** A probe whose source the benchmark drives directly (or, for latency, on its own timer). */
let probeInput = 0;
const benchProbe: ProbeType = {
  kind: 'probe',
  name: 'bench_probe',
  description: 'benchmark probe: publishes the number the benchmark sets',
  defaultPeriodMs: 0,
  sources: [{ name: 'node_load', valueType: 'load', description: 'the benchmark value' }],
  create: () => ({
    refresh([out]) {
      out!.setRows(1);
      out!.set(0, 0, probeInput);
    },
  }),
};

let received = 0;
/** Counts updates, as the RxJS subscriber does. */
const countingPolicy: PolicyType = {
  kind: 'policy',
  name: 'bench_policy',
  description: 'benchmark policy: counts updates',
  ports: [{ name: 'node_load', valueType: 'load', description: 'the value' }],
  create: () => ({
    onUpdate() {
      received++;
    },
  }),
};

let reaction: ((value: number, at: number) => void) | null = null;
/** Reacts to the value it receives (latency measurement). */
const reactingPolicy: PolicyType = {
  kind: 'policy',
  name: 'bench_reacting_policy',
  description: 'benchmark policy: reports each value with its arrival time',
  ports: [{ name: 'node_load', valueType: 'load', description: 'the value' }],
  create: () => ({
    onUpdate(_port, value, now) {
      reaction?.(value.get(0, 0), now);
    },
  }),
};

async function buildChain(): Promise<{ tree: ConfigTree; output: Output; probe: ProbeInstance }> {
  const registry = new TypeRegistry({ builtins: BUILTIN_TYPES });
  registry.add(benchProbe);
  registry.add(countingPolicy);
  registry.add(reactingPolicy);
  const tree = new ConfigTree({ registry, services: { nodeName: 'bench', log: silentLog } });
  await tree.mkdir('/probes/bench_probe');
  await tree.mkdir('/schedulers/bench');
  await tree.mkdir('/schedulers/bench/bench_policy');
  await tree.mkdir('/schedulers/bench/bench_policy/node_load/remote_cache');
  await tree.mkdir('/schedulers/bench/bench_policy/node_load/remote_cache/threshold');
  tree.write('/schedulers/bench/bench_policy/node_load/remote_cache/threshold/threshold', '0');
  tree.symlink('/probes/bench_probe/node_load', '/schedulers/bench/bench_policy/node_load/remote_cache/threshold/cpu_load');
  const source = tree.lookup('/probes/bench_probe/node_load', false) as DirNode;
  return { tree, output: source.probe!.outputs[source.sourceIndex!]!, probe: source.probe! };
}

function pushOurs(output: Output, count: number): number {
  const value = output.value;
  value.setRows(1);
  const started = performance.now();
  for (let i = 1; i <= count; i++) {
    value.data[0] = i;
    output.publish(i);
  }
  return performance.now() - started;
}

/** The whole probe path: the probe's refresh, has_changed (compare with the previous value), publish. */
function pushOursViaRefresh(probe: ProbeInstance, count: number): number {
  const started = performance.now();
  for (let i = 1; i <= count; i++) {
    probeInput = i;
    probe.refresh(i);
  }
  return performance.now() - started;
}

function pushRx(count: number): number {
  const subject = new Subject<number>();
  let seen = 0;
  const subscription = subject
    .pipe(
      filter((v) => v > 0),
      map((v) => v),
      distinctUntilChanged(),
    )
    .subscribe(() => {
      seen++;
    });
  const started = performance.now();
  for (let i = 1; i <= count; i++) subject.next(i);
  const elapsed = performance.now() - started;
  subscription.unsubscribe();
  if (seen !== count) throw new Error(`RxJS pipeline delivered ${seen} of ${count}`);
  return elapsed;
}

function heapUsed(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

say(`data-flow benchmark: ${UPDATES.toLocaleString()} updates per run${gc ? '' : ' (no --expose-gc: heap figures are approximate)'}`);
const { tree, output, probe } = await buildChain();

// Warm up both paths so the JIT has compiled them, then measure in alternation.
pushOurs(output, 200_000);
pushOursViaRefresh(probe, 200_000);
pushRx(200_000);
received = 0;
const ours: number[] = [];
const oursViaRefresh: number[] = [];
const rx: number[] = [];
for (let round_ = 0; round_ < 3; round_++) {
  ours.push(pushOurs(output, UPDATES));
  oursViaRefresh.push(pushOursViaRefresh(probe, UPDATES));
  rx.push(pushRx(UPDATES));
}
if (received !== UPDATES * 6) throw new Error(`the policy received ${received} of ${UPDATES * 6} updates`);
const oursMs = Math.min(...ours);
const viaRefreshMs = Math.min(...oursViaRefresh);
const rxMs = Math.min(...rx);

// Heap growth over one million updates on our path (after warm-up).
const before = heapUsed();
pushOurs(output, 1_000_000);
const growth = heapUsed() - before;

say(`  sliced chain: ${round(((UPDATES / oursMs) * 1000) / 1e6, 2)} M updates/s (${round((oursMs * 1e6) / UPDATES / HOPS, 1)} ns per hop)`);
say(`  sliced, through the probe's refresh and has_changed: ${round(((UPDATES / viaRefreshMs) * 1000) / 1e6, 2)} M updates/s`);
say(`  RxJS:         ${round(((UPDATES / rxMs) * 1000) / 1e6, 2)} M updates/s`);
say(`  heap growth over 1M updates: ${growth} bytes`);

// Latency: the probe refreshes itself every 10 ms; the value changes at random moments.
// Same chain, reacting policy in another scheduler, the probe refreshing itself every 10 ms.
await tree.mkdir('/schedulers/latency');
await tree.mkdir('/schedulers/latency/bench_reacting_policy');
await tree.mkdir('/schedulers/latency/bench_reacting_policy/node_load/remote_cache');
await tree.mkdir('/schedulers/latency/bench_reacting_policy/node_load/remote_cache/threshold');
tree.symlink('/probes/bench_probe/node_load', '/schedulers/latency/bench_reacting_policy/node_load/remote_cache/threshold/cpu_load');
tree.write('/probes/bench_probe/probe_period', '10');
// Probe timers do not keep the daemon alive (unref); this one keeps the benchmark alive.
const keepAlive = setInterval(() => undefined, 1000);
const latencies: number[] = [];
for (let i = 0; i < 200; i++) {
  await sleep(Math.random() * 15);
  // Above any count the throughput runs published, so every target is a change.
  const target = 1e12 + i;
  const changedAt = performance.now();
  const reacted = new Promise<number>((resolve) => {
    reaction = (value, at) => {
      if (value === target) {
        reaction = null;
        resolve(at);
      }
    };
  });
  probeInput = target;
  latencies.push((await reacted) - changedAt);
}
clearInterval(keepAlive);
tree.destroyAll();
say(
  `  latency probe change -> policy (probe_period 10 ms): p50 ${round(percentile(latencies, 50), 2)} ms, p99 ${round(percentile(latencies, 99), 2)} ms`,
);

finish({
  bench: 'dataflow',
  updates: UPDATES,
  updates_per_s: Math.round((UPDATES / oursMs) * 1000),
  ns_per_hop: round((oursMs * 1e6) / UPDATES / HOPS, 2),
  heap_growth_bytes_per_million: growth,
  heap_measured_with_gc: gc !== undefined,
  rxjs_updates_per_s: Math.round((UPDATES / rxMs) * 1000),
  vs_rxjs: round(rxMs / oursMs, 2),
  // RxJS's distinctUntilChanged has its counterpart in the probe's has_changed, which the
  // figures above skip (they publish on the source); these include it.
  updates_per_s_via_refresh: Math.round((UPDATES / viaRefreshMs) * 1000),
  vs_rxjs_via_refresh: round(rxMs / viaRefreshMs, 2),
  latency_ms_p50: round(percentile(latencies, 50), 2),
  latency_ms_p99: round(percentile(latencies, 99), 2),
  probe_period_ms: 10,
  machine: machine(),
});
