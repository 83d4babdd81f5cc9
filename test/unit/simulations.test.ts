/**
 * Saved simulations: the document the admin API accepts is the one `slicectl simulate` makes
 * (and only that, within bounds); the daemon's store keeps them whole in its state directory,
 * lists, draws and deletes them, refuses bad names and more than it keeps, and says which
 * file is unreadable; the side-by-side table's columns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSlicedError } from '../../src/core/errors.js';
import { parseInput } from '../../src/core/model.js';
import { MAX_SERIES_POINTS, simulationDocumentSchema } from '../../src/core/simulations.js';
import { MAX_SAVED_SIMULATIONS, SimulationStore } from '../../src/daemon/simulations.js';
import { runSimulations } from '../../src/sim/run.js';
import { resultCharts } from '../../src/sim/charts.js';
import { resultColumns, type SimulationDocument } from '../../src/wire/simulations.js';
import { pino } from 'pino';

/** A real run's document, through JSON as the CLI sends it (NaN figures become null). */
async function document(): Promise<SimulationDocument> {
  const { results, skipped } = await runSimulations({
    nodes: { count: 4, cpuMillicores: 1000, memoryBytes: 0 },
    workload: 'poisson:rate=3,duration=1,count=500',
    policies: ['random', 'least_loaded'],
    seed: 7,
    loadUpdateMs: 1000,
    warmup: 0,
    pluginDirs: [],
  });
  return JSON.parse(JSON.stringify({ workload: 'poisson:rate=3,duration=1,count=500', skipped, seed: 7, loadPeriod: '1000', results }));
}

const refusal = (run: () => unknown): string => {
  try {
    run();
  } catch (err) {
    assert.ok(isSlicedError(err), String(err));
    return `${err.code}: ${err.message}`;
  }
  assert.fail('not refused');
};

const refusedAsync = async (run: () => Promise<unknown>): Promise<string> => {
  try {
    await run();
  } catch (err) {
    assert.ok(isSlicedError(err), String(err));
    return `${err.code}: ${err.message}`;
  }
  assert.fail('not refused');
};

test("the schema takes the simulator's own document, a figure without a value as null, and nothing else", async () => {
  const doc = await document();
  assert.deepEqual(parseInput(simulationDocumentSchema, doc, 'simulation'), doc);
  const noJobs = structuredClone(doc);
  noJobs.results[0]!.sojourn.mean = null;
  assert.equal(parseInput(simulationDocumentSchema, noJobs, 'simulation').results[0]!.sojourn.mean, null);

  assert.match(
    refusal(() => parseInput(simulationDocumentSchema, { ...doc, extra: 1 }, 'simulation')),
    /^EINVAL: .*unknown field "extra"/,
  );
  const long = structuredClone(doc);
  long.results[0]!.utilisation = Array.from({ length: MAX_SERIES_POINTS + 1 }, (_, i) => [i, 0.5] as [number, number]);
  assert.match(
    refusal(() => parseInput(simulationDocumentSchema, long, 'simulation')),
    /results\.0\.utilisation/,
  );
  const many = { ...doc, results: Array.from({ length: 17 }, () => doc.results[0]!) };
  assert.match(
    refusal(() => parseInput(simulationDocumentSchema, many, 'simulation')),
    /results/,
  );
  const textFigure = structuredClone(doc) as unknown as { results: Array<{ migrations: unknown }> };
  textFigure.results[0]!.migrations = '3';
  assert.match(
    refusal(() => parseInput(simulationDocumentSchema, textFigure, 'simulation')),
    /results\.0\.migrations/,
  );
  assert.match(
    refusal(() => parseInput(simulationDocumentSchema, { ...doc, results: [] }, 'simulation')),
    /results/,
  );
});

test('the store keeps runs whole, lists, shows, draws, replaces and deletes them; bad names and unreadable files are said', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sliced-test-simstore-'));
  try {
    const store = new SimulationStore(dir, pino({ level: 'silent' }));
    assert.deepEqual(await store.list(), []);
    const doc = await document();
    const first = await store.save('run-1', doc);
    assert.equal(first.replaced, false);
    assert.deepEqual(
      [first.entry.name, first.entry.nodes, first.entry.policies, first.entry.charts],
      ['run-1', 4, ['random', 'least_loaded'], ['utilisation.svg', 'slowdown-cdf.svg']],
    );
    assert.equal((await store.save('run-1', doc)).replaced, true);
    assert.deepEqual((await store.get('run-1')).document, doc);
    // The charts are the simulator's own, drawn from the saved document.
    assert.equal(await store.chart('run-1', 'slowdown-cdf.svg'), resultCharts(doc.results)['slowdown-cdf.svg']);
    assert.match(
      await refusedAsync(() => store.chart('run-1', 'x.svg')),
      /^ENOENT: .*has no chart "x.svg"; it has utilisation.svg, slowdown-cdf.svg/,
    );

    for (const bad of ['../x', '.hidden', '', 'a/b'])
      assert.match(await refusedAsync(() => store.save(bad, doc)), /^EINVAL: simulation name/, bad);
    assert.match(await refusedAsync(() => store.get('missing')), /^ENOENT: no saved simulation "missing"/);
    assert.match(await refusedAsync(() => store.save('bad', { ...doc, seed: -1 })), /^EINVAL: .*seed/);

    // What a crash mid-write leaves (the temporary file) is never a run; a damaged file is named and left out of the list.
    writeFileSync(join(dir, 'simulations', '.run-2.json.new'), '{"half');
    writeFileSync(join(dir, 'simulations', 'broken.json'), '{"name":"broken","document":{}}');
    assert.deepEqual(
      (await store.list()).map((e) => e.name),
      ['run-1'],
    );
    assert.match(await refusedAsync(() => store.get('broken')), /^EIO: saved simulation broken \(.*broken\.json\) cannot be read/);

    await store.delete('broken');
    await store.delete('run-1');
    assert.match(await refusedAsync(() => store.delete('run-1')), /^ENOENT/);
    assert.deepEqual(readdirSync(join(dir, 'simulations')), ['.run-2.json.new']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the store keeps at most MAX_SAVED_SIMULATIONS runs; one of them may still be replaced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sliced-test-simstore-'));
  try {
    const store = new SimulationStore(dir, pino({ level: 'silent' }));
    const doc = await document();
    for (let i = 0; i < MAX_SAVED_SIMULATIONS; i++) await store.save(`r${i}`, doc);
    assert.match(
      await refusedAsync(() => store.save('one-more', doc)),
      /^ENOSPC: 100 simulations are saved, the most kept; delete one first/,
    );
    assert.equal((await store.save('r0', doc)).replaced, true);
    assert.equal((await store.list()).length, MAX_SAVED_SIMULATIONS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the table's columns: jobs' figures, or for demand curves what was asked and served; a figure without a value is -", async () => {
  const doc = await document();
  const jobs = resultColumns(doc.results);
  assert.deepEqual(jobs.headers.slice(0, 3), ['POLICY', 'JOBS', 'SOJOURN MEAN']);
  assert.deepEqual(
    jobs.rows.map((r) => [r[0], r[1]]),
    [
      ['random', '500'],
      ['least_loaded', '500'],
    ],
  );
  const curves = structuredClone(doc.results);
  curves[0]!.curves = { tasks: 3, askedCpuSeconds: 1234.4, servedFraction: null };
  const table = resultColumns(curves);
  assert.deepEqual(table.headers.slice(0, 5), ['POLICY', 'VMS', 'CPU ASKED (CPU-S)', 'SERVED', 'OVERLOADED']);
  assert.deepEqual(table.rows[0]!.slice(0, 4), ['random', '3', '1234', '-']);
});
