/**
 * `slicectl simulate`: replay a workload on simulated nodes through placement policies (the
 * daemon's own component modules, src/sim), here, without a daemon; several policies side by
 * side on the same jobs. The simulator is loaded only when this command runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT } from './client.js';
import { isSlicedError } from '../core/errors.js';
import { renderTable } from '../core/table.js';
import { parseCpu, parseMemory } from '../core/units.js';
import type { SimResult } from '../sim/metrics.js';

export interface SimulateCliContext {
  print(command: Command, json: unknown, text: () => string): void;
}

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

const round = (v: number, digits = 3): string => (Number.isFinite(v) ? String(Number(v.toFixed(digits))) : String(v));

export function resultsTable(results: readonly SimResult[]): string {
  const curves = results.some((r) => r.curves !== null);
  // Jobs with demand curves end by time: what counts is the share of their demand they got, and the nodes' time over capacity.
  const [headers, cells] = curves
    ? [
        ['VMS', 'CPU ASKED (CPU-S)', 'SERVED', 'OVERLOADED'],
        (r: SimResult) => [
          String(r.curves?.tasks ?? 0),
          String(Math.round(r.curves?.askedCpuSeconds ?? 0)),
          round(r.curves?.servedFraction ?? NaN, 4),
          round(r.overloadedFraction, 4),
        ],
      ]
    : [
        ['JOBS', 'SOJOURN MEAN', 'P50', 'P99', 'SLOWDOWN MEAN', 'P99', 'WAIT MEAN'],
        (r: SimResult) => [
          String(r.measured),
          round(r.sojourn.mean),
          round(r.sojourn.p50),
          round(r.sojourn.p99),
          round(r.slowdown.mean),
          round(r.slowdown.p99),
          round(r.wait.mean),
        ],
      ];
  const all = ['POLICY', ...headers, 'UTIL', 'IMBALANCE', 'MIGRATIONS', 'REFUSED', 'UNPLACED', 'VIOLATIONS', 'DECISIONS/S'];
  return renderTable(
    all,
    results.map((r) => [
      r.label,
      ...cells(r),
      round(r.utilisationMean),
      round(r.imbalanceMean),
      String(r.migrations),
      String(r.refused),
      String(r.unplaced),
      String(r.reservationViolations),
      String(Math.round(r.decisionsPerSecond)),
    ]),
    new Set(all.map((_, c) => c).filter((c) => c > 0)),
  );
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
      'a tree document (YAML, as slicectl dump prints) or random, round_robin, least_loaded, best_of_two; repeat to compare',
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
    .action(async (options: Record<string, string | string[] | undefined>, command: Command) => {
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
      const { runSimulations, resultCharts, NAMED_POLICIES } = await import('../sim/run.js');
      if (policies.length === 0) throw usage(`give --policy at least once: a YAML tree document, or one of ${NAMED_POLICIES.join(', ')}`);
      // The workload and the policy files are the operator's input: what is wrong with them is a usage error, said in one line.
      const { results, skipped } = await runSimulations({
        nodes: { count: wholeNumber('--nodes', options.nodes as string, 1, 1_000_000), cpuMillicores: cpu.value, memoryBytes },
        workload: options.workload as string,
        policies,
        seed: wholeNumber('--seed', options.seed as string, 0, 0xffffffff),
        loadUpdateMs,
        warmup: fraction('--warmup', options.warmup as string),
        pluginDirs: options.pluginDir as string[],
      }).catch((err: unknown) => {
        if (isSlicedError(err)) throw new CliError(err.message, EXIT.usage, err.code);
        throw err;
      });
      const document = { workload: options.workload, skipped, seed: Number(options.seed), loadPeriod: period, results };
      if (options.out !== undefined) {
        mkdirSync(options.out as string, { recursive: true });
        writeFileSync(join(options.out as string, 'results.json'), `${JSON.stringify(document, null, 2)}\n`);
        for (const [name, svg] of Object.entries(resultCharts(results))) writeFileSync(join(options.out as string, name), svg);
      }
      const note = skipped > 0 ? `\n${skipped} job(s) of the workload skipped by its reader (no run time, size or samples)` : '';
      ctx.print(command, document, () => resultsTable(results) + note);
    });
}
