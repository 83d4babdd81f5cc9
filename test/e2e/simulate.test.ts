/**
 * slicectl simulate as an operator runs it (no daemon): policies side by side on a CSV, on
 * the NASA trace and on PlanetLab's VM curves of ../shared/traces (each skipped, saying so,
 * where it is absent or not the published file), with
 * --json and --out (results.json and two SVG charts); bad input refused with what is allowed;
 * --save with no daemon prints the run, then says it was not saved.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, run, SLICECTL } from '../helpers/daemon.js';
import { skipWith } from '../helpers/env.js';
import { publishedTrace } from '../helpers/traces.js';

const dir = mkdtempSync(join(tmpdir(), 'sliced-sim-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const slicectl = (args: string[]): ReturnType<typeof run> => run(process.execPath, [SLICECTL, ...args]);

interface Output {
  skipped: number;
  results: Array<{
    label: string;
    measured: number;
    sojourn: { mean: number };
    unplaced: number;
    decisions: number;
    curves: { tasks: number; askedCpuSeconds: number; servedFraction: number } | null;
    overloadedFraction: number;
    simulatedSeconds: number;
  }>;
}

test('two policies on one CSV workload: a table, --json, and --out with results.json and the charts', async () => {
  const csv = join(dir, 'jobs.csv');
  // Eight one-CPU jobs of 100 s arriving together on four 2-CPU nodes.
  writeFileSync(csv, `arrival,duration,cpu\n${Array.from({ length: 8 }, (_, k) => `${k * 0.01},100,1000`).join('\n')}\n`);
  const args = [
    'simulate',
    '--workload',
    `csv:${csv}`,
    '--nodes',
    '4',
    '--node-cpu',
    '2',
    '--policy',
    'least_loaded',
    '--policy',
    'round_robin',
  ];
  const table = await slicectl(args);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /POLICY\s+JOBS\s+SOJOURN MEAN/);
  assert.match(table.stdout, /least_loaded\s+8\s+100\s/);
  assert.match(table.stdout, /round_robin\s+8\s+100\s/);

  const out = join(dir, 'out');
  const json = await slicectl([...args, '--json', '--out', out]);
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as Output;
  assert.deepEqual(
    parsed.results.map((r) => [r.label, r.measured, r.decisions, r.unplaced]),
    [
      ['least_loaded', 8, 8, 0],
      ['round_robin', 8, 8, 0],
    ],
  );
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), parsed);
  for (const chart of ['utilisation.svg', 'slowdown-cdf.svg']) {
    const svg = readFileSync(join(out, chart), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.equal(svg.match(/<path /g)?.length, 2, `${chart}: one line per policy`);
    assert.match(svg, /least_loaded/);
  }

  // --save with no daemon there: the run is printed all the same, then the failure to save it.
  const unsaved = await slicectl(['--socket', join(dir, 'no-daemon.sock'), ...args, '--save', 'lost']);
  assert.equal(unsaved.code, 5, `the daemon is not reachable: ${unsaved.stderr}`);
  assert.match(unsaved.stdout, /least_loaded\s+8\s+100\s/);
  assert.match(unsaved.stderr, /the run above was not saved as lost: .*no-daemon\.sock/);
});

test('bad input is refused with what is allowed', async () => {
  for (const [args, message] of [
    [['simulate', '--workload', 'poisson:rate=10,duration=1,count=100'], /give --policy at least once/],
    [
      ['simulate', '--workload', 'nope:x', '--policy', 'random'],
      /^slicectl: workload "nope:x": give swf:PATH, csv:PATH, planetlab:PATH or poisson/m,
    ],
    [
      ['simulate', '--workload', 'poisson:rate=10,duration=1,count=100', '--policy', 'random', '--nodes', '0'],
      /--nodes "0" must be a whole number from 1/,
    ],
    [['simulate', '--workload', 'poisson:rate=-1,duration=1,count=100', '--policy', 'random'], /rate -1: must be a positive number/],
    [
      ['simulate', '--workload', 'poisson:rate=10,duration=1,count=100', '--policy', 'random', '--load-period', 'soon'],
      /--load-period "soon"/,
    ],
  ] as const) {
    const r = await slicectl([...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
  const missing = await slicectl(['simulate', '--workload', `csv:${join(dir, 'absent.csv')}`, '--policy', 'random']);
  assert.match(missing.stderr, /cannot read .*absent\.csv/);
});

test('the NASA iPSC/860 trace (SWF) on 128 nodes: every job placed, least_loaded no slower than random', async (t) => {
  const trace = publishedTrace('NASA-iPSC-1993-3.1-cln.swf.gz');
  if ('skipped' in trace) return skipWith(t, trace.skipped);
  const r = await slicectl([
    'simulate',
    '--workload',
    `swf:${trace.path}`,
    '--nodes',
    '128',
    '--policy',
    'random',
    '--policy',
    'least_loaded',
    // Loads seen once a simulated minute: 92 days of trace in a few seconds.
    '--load-period',
    '60000',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const output = JSON.parse(r.stdout) as Output;
  const [random, least] = output.results;
  assert.equal(output.skipped, 173, 'the jobs without a run time, said');
  // 18,239 jobs, 173 without a run time; a task per processor.
  assert.ok(random!.measured > 18066, `${random!.measured} tasks`);
  assert.equal(least!.measured, random!.measured);
  assert.equal(least!.unplaced, 0);
  t.diagnostic(`mean sojourn: random ${random!.sojourn.mean.toFixed(1)} s, least_loaded ${least!.sojourn.mean.toFixed(1)} s`);
  assert.ok(least!.sojourn.mean <= random!.sojourn.mean, 'balancing by load does not lose to chance');
});

test("PlanetLab's VM curves (1,052 VMs, a day at 300-s steps) on 100 two-CPU nodes: demand asked and served; least_loaded, and every node's mosix_load_balancer, overload less than random", async (t) => {
  const trace = publishedTrace('planetlab-20110303.tar.gz');
  if ('skipped' in trace) return skipWith(t, trace.skipped);
  const args = ['simulate', '--workload', `planetlab:${trace.path}`, '--nodes', '100', '--node-cpu', '2'];
  const r = await slicectl([...args, '--policy', 'random', '--policy', 'least_loaded', '--load-period', 'instant', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const [random, least] = (JSON.parse(r.stdout) as Output).results;
  for (const result of [random!, least!]) {
    assert.equal(result.curves?.tasks, 1052, 'a job per VM file');
    // SOURCES.md: a mean utilisation of 12.3% of a CPU per VM.
    const meanCpu = result.curves!.askedCpuSeconds / (1052 * 86_400);
    assert.ok(meanCpu > 0.12 && meanCpu < 0.126, `mean demand ${meanCpu} CPU per VM`);
    assert.ok(result.curves!.servedFraction > 0.5 && result.curves!.servedFraction <= 1, `served ${result.curves!.servedFraction}`);
    assert.equal(result.simulatedSeconds, 86_400, 'every VM ends by time after its 288th sample');
    assert.equal(result.unplaced, 0);
  }
  t.diagnostic(
    `overloaded node time: random ${random!.overloadedFraction.toFixed(4)}, least_loaded ${least!.overloadedFraction.toFixed(4)}; ` +
      `served: ${random!.curves!.servedFraction.toFixed(4)}, ${least!.curves!.servedFraction.toFixed(4)}`,
  );
  assert.ok(least!.overloadedFraction < random!.overloadedFraction, 'placing by load overloads nodes less than chance');
  assert.ok(least!.curves!.servedFraction > random!.curves!.servedFraction);
  // Every node's mosix_load_balancer (a tree per node), loads seen every 5 simulated minutes.
  const balanced = await slicectl([
    ...args,
    '--policy',
    'random',
    '--policy',
    join(ROOT, 'examples', 'simulate', 'mosix-balance.yaml'),
    '--load-period',
    '300000',
  ]);
  assert.equal(balanced.code, 0, balanced.stderr);
  assert.match(balanced.stdout, /^POLICY +VMS +CPU ASKED \(CPU-S\) +SERVED +OVERLOADED +UTIL +IMBALANCE +MIGRATIONS/m);
  const row = (label: string): string[] =>
    balanced.stdout
      .split('\n')
      .find((l) => l.startsWith(`${label} `))!
      .trim()
      .split(/ +/);
  const [plain, moving] = [row('random'), row('mosix-balance.yaml')];
  t.diagnostic(`random then mosix_load_balancer: ${plain.join(' ')} / ${moving.join(' ')}`);
  assert.equal(plain[7], '0', 'no balancer, no move');
  assert.ok(Number(moving[7]) > 0, 'the balancers moved tasks');
  assert.ok(Number(moving[3]) > Number(plain[3]), 'moving tasks off overloaded nodes serves more of the demand');
  assert.ok(Number(moving[4]) < Number(plain[4]), 'and leaves nodes overloaded less of the time');
});
