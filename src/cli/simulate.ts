/**
 * `slicectl simulate`: replay a workload on simulated nodes through placement policies (the
 * daemon's own component modules, src/sim), here, without a daemon; several policies side by
 * side on the same jobs. The simulator is loaded only when this command runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT, type ApiClient } from './client.js';
import { isSlicedError } from '../core/errors.js';
import { assertValidName } from '../core/names.js';
import { renderKeyValues, renderTable } from '../core/table.js';
import { parseCpu, parseMemory } from '../core/units.js';
import {
  resultColumns,
  type SavedResult,
  type SavedSimulation,
  type SimulationDocument,
  type SimulationEntry,
} from '../wire/simulations.js';

export interface SimulateCliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

const enc = encodeURIComponent;

const collect = (value: string, all: string[]): string[] => [...all, value];

function usage(message: string): CliError {
  return new CliError(message, EXIT.usage, 'EINVAL');
}

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw usage(`${flag} ${JSON.stringify(text)} must be a whole number from ${min} to ${max}`);
  return n;
}

function fraction(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n >= 0.9) throw usage(`${flag} ${JSON.stringify(text)} must be a fraction from 0 to 0.9`);
  return n;
}

/** The side-by-side table of `slicectl simulate` (and `slicectl simulation show`). */
export function resultsTable(results: readonly SavedResult[]): string {
  const { headers, rows } = resultColumns(results);
  return renderTable(headers, rows, new Set(headers.map((_, c) => c).filter((c) => c > 0)));
}

export function registerSimulateCommand(program: Command, ctx: SimulateCliContext): void {
  program
    .command('simulate')
    .description("replay a workload on simulated nodes through placement policies (the daemon's own modules); no daemon needed")
    .requiredOption(
      '--workload <spec>',
      'swf:PATH[.gz], csv:PATH (arrival,duration,cpu[,memory][,slice]), planetlab:PATH (a folder or .tar.gz of per-VM CPU curves) ' +
        'or poisson:rate=R,duration=D,count=N[,cpu=C]',
    )
    .option(
      '--policy <file|name>',
      'a tree document (YAML, as slicectl dump prints) or random, round_robin, least_loaded, best_of_two, round_robin_balancer; repeat to compare',
      collect,
      [] as string[],
    )
    .option('--nodes <n>', 'simulated nodes', '128')
    .option('--node-cpu <cpu>', 'CPU of each node ("1000m", "4")', '1000m')
    .option('--node-memory <bytes>', 'memory of each node ("16G"); placements past it count as violations (default: not limited)')
    .option('--load-period <ms|instant>', 'how often policies see new node loads: simulated milliseconds, or instant', '1000')
    .option('--seed <n>', "seed of the run (generated workloads and the policies' random choices)", '1')
    .option('--warmup <fraction>', 'share of the jobs, by arrival, left out of the statistics at the start', '0')
    .option('--plugin-dir <dir>', 'a directory of sliced-plugin-* packages (repeatable)', collect, [] as string[])
    .option('--out <dir>', 'also write results.json and the charts there: utilisation.svg, and slowdown-cdf.svg when jobs have run times')
    .option(
      '--save <name>',
      "also keep the run in this node's sliced under NAME (replacing one of that name): slicectl simulation, the dashboard's Simulations page",
    )
    .action(async (options: Record<string, string | string[] | undefined>, command: Command) => {
      // A name that cannot be saved is refused before the run, not after it.
      const save = options.save === undefined ? null : checkedName(options.save as string);
      const cpu = parseCpu(options.nodeCpu);
      if (!cpu.ok || cpu.value <= 0)
        throw usage(`--node-cpu ${JSON.stringify(options.nodeCpu)}: ${cpu.ok ? 'must be more than 0' : cpu.reason}`);
      let memoryBytes = 0;
      if (options.nodeMemory !== undefined) {
        const memory = parseMemory(options.nodeMemory);
        if (!memory.ok) throw usage(`--node-memory ${JSON.stringify(options.nodeMemory)}: ${memory.reason}`);
        memoryBytes = memory.value;
      }
      const period = options.loadPeriod as string;
      const loadUpdateMs = period === 'instant' ? 'instant' : wholeNumber('--load-period', period, 1, 3_600_000);
      const policies = options.policy as string[];
      const seed = wholeNumber('--seed', options.seed as string, 0, 0xffffffff);
      const { runSimulations, resultCharts, NAMED_POLICIES } = await import('../sim/run.js');
      if (policies.length === 0) throw usage(`give --policy at least once: a YAML tree document, or one of ${NAMED_POLICIES.join(', ')}`);
      // The workload and the policy files are the operator's input: what is wrong with them is a usage error, said in one line.
      const { results, skipped } = await runSimulations({
        nodes: { count: wholeNumber('--nodes', options.nodes as string, 1, 1_000_000), cpuMillicores: cpu.value, memoryBytes },
        workload: options.workload as string,
        policies,
        seed,
        loadUpdateMs,
        warmup: fraction('--warmup', options.warmup as string),
        pluginDirs: options.pluginDir as string[],
      }).catch((err: unknown) => {
        if (isSlicedError(err)) throw new CliError(err.message, EXIT.usage, err.code);
        throw err;
      });
      const document: SimulationDocument = {
        workload: options.workload as string,
        skipped,
        seed,
        loadPeriod: period,
        results,
      };
      if (options.out !== undefined) writeRun(options.out as string, document, Object.entries(resultCharts(results)));
      const note = skipped > 0 ? `\n${skipped} job(s) of the workload skipped by its reader (no run time, size or samples)` : '';
      // Printed first: a run is never lost to a daemon that is not there.
      ctx.print(command, document, () => resultsTable(results) + note);
      if (save !== null) {
        let saved: SimulationEntry & { replaced: boolean };
        try {
          saved = await ctx.client(command).request('PUT', `/v1/simulations/${enc(save)}`, document);
        } catch (err) {
          if (!(err instanceof CliError)) throw err;
          throw new CliError(`the run above was not saved as ${save}: ${err.message}`, err.exitCode, err.code);
        }
        // Beside --json's document, not in it.
        const line = `${saved.replaced ? 'replaced' : 'saved as'} simulation ${save}: slicectl simulation show ${save}, or the dashboard's Simulations page\n`;
        (command.optsWithGlobals().json === true ? process.stderr : process.stdout).write(line);
      }
    });

  registerSavedCommands(program, ctx);
}

/** What --out writes: results.json and the charts, by file name. */
function writeRun(dir: string, document: SimulationDocument, charts: ReadonlyArray<[string, string]>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.json'), `${JSON.stringify(document, null, 2)}\n`);
  for (const [name, svg] of charts) writeFileSync(join(dir, name), svg);
}

function checkedName(name: string): string {
  try {
    return assertValidName('simulation', name);
  } catch (err) {
    throw usage(`--save: ${(err as Error).message}`);
  }
}

/** `slicectl simulation`: the runs saved with --save, kept by the daemon. */
function registerSavedCommands(program: Command, ctx: SimulateCliContext): void {
  const simulation = program
    .command('simulation')
    .description('the simulations saved with slicectl simulate --save: list, show (table, charts), delete');
  simulation
    .command('list')
    .description('list the saved simulations: name, when, workload, nodes, policies')
    .action(async (_options: unknown, command: Command) => {
      const list = await ctx.client(command).get<{ simulations: SimulationEntry[] }>('/v1/simulations');
      ctx.print(command, list, () =>
        list.simulations.length === 0
          ? 'no saved simulations (slicectl simulate ... --save NAME saves one)'
          : renderTable(
              ['NAME', 'SAVED', 'WORKLOAD', 'NODES', 'POLICIES'],
              list.simulations.map((s) => [s.name, s.savedAt, s.workload, String(s.nodes ?? '-'), s.policies.join(', ')]),
              new Set([3]),
            ),
      );
    });
  simulation
    .command('show <name>')
    .description("a saved simulation's table, as slicectl simulate printed it; --out DIR also writes its results.json and charts")
    .option('--out <dir>', 'write results.json and the charts (SVG) there')
    .action(async (name: string, options: { out?: string }, command: Command) => {
      const client = ctx.client(command);
      const saved = await client.get<SavedSimulation>(`/v1/simulations/${enc(name)}`);
      if (options.out !== undefined) {
        const charts: Array<[string, string]> = [];
        for (const chart of saved.charts) charts.push([chart, await client.text(`/v1/simulations/${enc(name)}/${enc(chart)}`)]);
        writeRun(options.out, saved.document, charts);
      }
      ctx.print(command, saved, () =>
        [
          renderKeyValues([
            ['name', saved.name],
            ['saved', saved.savedAt],
            ['workload', saved.workload],
            ['seed', String(saved.seed)],
            ['load period', saved.document.loadPeriod],
            ['charts', saved.charts.join(', ')],
          ]),
          resultsTable(saved.document.results),
        ].join('\n\n'),
      );
    });
  simulation
    .command('delete <name>')
    .description('delete a saved simulation')
    .action(async (name: string, _options: unknown, command: Command) => {
      const answer = await ctx.client(command).delete<{ deleted: string }>(`/v1/simulations/${enc(name)}`);
      ctx.print(command, answer, () => `simulation ${name} deleted`);
    });
}
