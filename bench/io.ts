/**
 * I/O isolation benchmark on a loop device the benchmark makes (sliced-test-bench-io-*.img,
 * removed at the end, also on failure); the root disk is never touched. Runs on cgroup v1
 * (blkio) and v2 (io), and on every kernel build: caps always, weights where BFQ exists.
 *
 * 1. Weights (needs BFQ: `slicectl io enable-bfq` on the loop device, which loads the module
 *    where there is one): two slices with io.weight 900 and 100 each run two direct 4 KiB
 *    readers and one direct 4 KiB writer on their own regions of the device; the ratio of
 *    their throughput (bytes read + written, from the slices' I/O counters) is
 *    `weight_ratio_measured` with BFQ's defaults (the mode sliced leaves BFQ in) and
 *    `weight_ratio_strict` in BFQ's strict mode (strict_guarantees 1, low_latency 0;
 *    setBfqStrict). Without BFQ these are null and `weights_unavailable` says why.
 * 2. Baseline, same run: the same load in two plain I/O groups with equal BFQ weights, no
 *    sliced (`baseline_ratio`, `baseline_ratio_strict`; ideally 1).
 * 3. Caps (any scheduler): the heavy slice gets io.max rbps=10M,wbps=5M and runs the same
 *    load alone; `cap_error_pct` is the larger relative error of its read and write rates
 *    against the caps.
 *
 *   npm run bench:io [-- --json] [-- --quick]
 *
 * Last line of stdout: one JSON object.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../test/helpers/daemon.js';
import { ioLayoutOf, PlainIoGroups } from '../test/helpers/io.js';
import { createLoopDevice, readScheduler, setBfqStrict, type LoopDevice } from '../src/kernel/block-devices.js';
import type { SliceView } from '../src/wire/slices.js';
import { finish, jsonMode, machine, round, say } from './lib.js';

const quick = process.argv.includes('--quick');
const RUN_S = quick ? 5 : 10;
const WARM_MS = 1500;
const MiB = 1024 * 1024;
const SIZE_MB = 800;

/** Shell command for one slice's load: two readers and one writer, each in its own 100 MiB region. */
function load(device: string, region: number, seconds: number): string {
  const base = region * 300; // MiB
  const dd = (args: string) => `timeout -s INT ${seconds} dd ${args} bs=4k status=none`;
  return [
    dd(`if=${device} of=/dev/null iflag=direct skip=${(base * MiB) / 4096}`),
    dd(`if=${device} of=/dev/null iflag=direct skip=${((base + 100) * MiB) / 4096}`),
    dd(`if=/dev/zero of=${device} oflag=direct seek=${((base + 200) * MiB) / 4096} count=${(100 * MiB) / 4096}`),
  ]
    .map((c) => `${c} &`)
    .join(' ')
    .concat(' wait');
}

interface Counters {
  read: number;
  write: number;
}

/** Measure rates over the middle of a run: counters after warm-up and near the end. */
async function measure(run: () => Promise<unknown>, read: () => Promise<Counters[]>, seconds: number): Promise<Counters[]> {
  const done = run();
  await sleep(WARM_MS);
  const before = await read();
  const start = Date.now();
  await sleep(seconds * 1000 - WARM_MS - 1000);
  const after = await read();
  const elapsed = (Date.now() - start) / 1000;
  await done;
  return after.map((a, i) => ({ read: (a.read - before[i]!.read) / elapsed, write: (a.write - before[i]!.write) / elapsed }));
}

const total = (c: Counters): number => c.read + c.write;
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(2)} MiB/s`;

let loop: LoopDevice | null = null;
let daemon: TestDaemon | null = null;
let plain: PlainIoGroups | null = null;
let schedulerBefore: string | null = null;
try {
  const load1 = loadavg()[0]!;
  say(`io benchmark (${quick ? 'quick' : 'full'}): ${RUN_S} s per phase, load average ${load1.toFixed(2)} at the start`);
  loop = createLoopDevice({ prefix: 'sliced-test-bench-io', sizeMb: SIZE_MB });
  execFileSync('dd', ['if=/dev/zero', `of=${loop.path}`, 'bs=1M', `count=${SIZE_MB}`, 'oflag=direct', 'status=none']);
  chmodSync(loop.path, 0o666); // the slices' users drive the benchmark's own device
  const queue = `/sys/block/${basename(loop.path)}/queue`;
  schedulerBefore = readScheduler(loop.device).active;
  daemon = await TestDaemon.start();
  const d = daemon;
  const dev = loop.path;
  const layout = ioLayoutOf(JSON.parse((await d.cli(['--json', 'status', '--once'])).stdout).node);
  say(`loop device ${loop.path} (${loop.device}), cgroup ${layout.kind}`);
  // Kernel builds differ: enable-bfq loads the module where there is one; without BFQ the
  // weights are not measured (null) and the JSON says why, the caps still are.
  const enabled = await d.cli(['io', 'enable-bfq', loop.path]);
  const weightsUnavailable = enabled.code === 0 ? null : enabled.stderr.trim().replace(/^slicectl: /, '');
  if (weightsUnavailable !== null) say(`weights not measured: ${weightsUnavailable}`);
  else plain = new PlainIoGroups(layout.kind, `sliced-bench-io-${process.pid}`, ['a', 'b']);

  // Created with their weights either way: sliced stores them (they apply once BFQ is there).
  for (const [name, weight] of [
    ['i6benchheavy', '900'],
    ['i6benchlight', '100'],
  ] as const) {
    const created = await d.cli(['slice', 'create', name, '--io-weight', weight]);
    if (created.code !== 0) throw new Error(created.stderr);
  }
  const sliceCounters = async (names: string[]): Promise<Counters[]> =>
    Promise.all(
      names.map(async (n) => {
        const io = (await d.cliJson<SliceView>(['slice', 'show', n])).live!.io!;
        return { read: io.readBytes, write: io.writeBytes };
      }),
    );
  const execLoad = (slice: string, region: number) => d.cli(['exec', '--slice', slice, '--', 'sh', '-c', load(dev, region, RUN_S)]);
  const plainLoad = (group: string, region: number) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn('sh', ['-c', `echo $$ > ${join(group, 'cgroup.procs')}; ${load(dev, region, RUN_S)}`], { stdio: 'ignore' });
      child.on('error', reject);
      child.on('close', () => resolve());
    });

  /** Weights 900:100 through sliced, then equal weights without it, in one BFQ mode. */
  const weighting = async (strict: boolean) => {
    setBfqStrict(loop!.device, strict);
    const bfq = Object.fromEntries(
      ['low_latency', 'slice_idle', 'strict_guarantees'].map((k) => [k, readFileSync(join(queue, 'iosched', k), 'utf8').trim()]),
    );
    say(`${strict ? 'strict weights' : "BFQ's defaults"} ${JSON.stringify(bfq)}; weights 900:100 through sliced:`);
    const [heavy, light] = await measure(
      () => Promise.all([execLoad('i6benchheavy', 0), execLoad('i6benchlight', 1)]),
      () => sliceCounters(['i6benchheavy', 'i6benchlight']),
      RUN_S,
    );
    const ratio = total(heavy!) / Math.max(1, total(light!));
    say(
      `  heavy ${mib(heavy!.read)} read + ${mib(heavy!.write)} written; light ${mib(light!.read)} + ${mib(light!.write)}; ratio ${ratio.toFixed(2)}`,
    );
    say(`  baseline: plain ${layout.kind} I/O groups with equal BFQ weights, no sliced:`);
    const p = plain!;
    const [ba, bb] = await measure(
      () => Promise.all([plainLoad(p.dirs[0]!, 0), plainLoad(p.dirs[1]!, 1)]),
      async () => [p.bytes(0, loop!.device), p.bytes(1, loop!.device)],
      RUN_S,
    );
    const baseline = total(ba!) / Math.max(1, total(bb!));
    say(`  a ${mib(ba!.read)} + ${mib(ba!.write)}; b ${mib(bb!.read)} + ${mib(bb!.write)}; ratio ${baseline.toFixed(2)}`);
    return { bfq, ratio, baseline, heavy: total(heavy!), light: total(light!) };
  };
  const defaults = weightsUnavailable === null ? await weighting(false) : null;
  const strict = weightsUnavailable === null ? await weighting(true) : null;
  if (weightsUnavailable === null) setBfqStrict(loop.device, false);

  say(`caps rbps=10M,wbps=5M on the heavy slice, alone (scheduler ${readScheduler(loop.device).active ?? 'unknown'}):`);
  const capped = await d.cli(['slice', 'set', 'i6benchheavy', '--io-max', `${dev}:rbps=10M,wbps=5M`]);
  if (capped.code !== 0) throw new Error(capped.stderr);
  const [c] = await measure(
    () => execLoad('i6benchheavy', 0),
    () => sliceCounters(['i6benchheavy']),
    RUN_S,
  );
  const readError = Math.abs(c!.read / (10 * MiB) - 1) * 100;
  const writeError = Math.abs(c!.write / (5 * MiB) - 1) * 100;
  say(`  read ${mib(c!.read)} (error ${readError.toFixed(2)}%), written ${mib(c!.write)} (error ${writeError.toFixed(2)}%)`);

  const orNull = (value: number | null | undefined): number | null => (value === undefined || value === null ? null : round(value));
  if (!jsonMode) say();
  finish({
    bench: 'io',
    backend: layout.kind,
    cap_error_pct: round(Math.max(readError, writeError)),
    cap_read_error_pct: round(readError),
    cap_write_error_pct: round(writeError),
    weight_ratio_measured: orNull(defaults?.ratio),
    baseline_ratio: orNull(defaults?.baseline),
    weight_ratio_strict: orNull(strict?.ratio),
    baseline_ratio_strict: orNull(strict?.baseline),
    weights_unavailable: weightsUnavailable,
    weights: [900, 100],
    bfq: defaults?.bfq ?? null,
    bfq_strict: strict?.bfq ?? null,
    schedulers: readScheduler(loop.device).available,
    run_s: RUN_S,
    heavy_mib_s: orNull(defaults && defaults.heavy / MiB),
    light_mib_s: orNull(defaults && defaults.light / MiB),
    heavy_mib_s_strict: orNull(strict && strict.heavy / MiB),
    light_mib_s_strict: orNull(strict && strict.light / MiB),
    load_average_start: round(load1),
    load_average_end: round(loadavg()[0]!),
    machine: machine(),
    quick,
  });
} finally {
  await daemon?.destroy();
  plain?.remove();
  if (loop && schedulerBefore) writeFileSync(`/sys/block/${basename(loop.path)}/queue/scheduler`, schedulerBefore);
  loop?.destroy();
}
