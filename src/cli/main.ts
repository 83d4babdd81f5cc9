/** `slicectl`: command-line client of sliced. */
import { Command, CommanderError, Option } from 'commander';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, CliError, EXIT } from './client.js';
import { runInSlice } from './exec.js';
import { registerTreeCommands } from './tree.js';
import { addVsysCommands } from './vsys.js';
import { registerIoCommands } from './io.js';
import { registerNodeCommands } from './nodes.js';
import { registerSliceCommands } from './slices.js';
import { PID_RANGE, parsePidText } from '../core/pids.js';
import { registerNetCommands } from './net.js';
import { envPairs, registerTaskCommands, runOnNode } from './tasks.js';
import { registerClusterCommands } from './cluster.js';
import { registerWebCommands } from './web.js';
import { registerTopCommand } from './top.js';
import { registerSimulateCommand } from './simulate.js';
import type { ExecPlan } from '../wire/exec.js';
import { statusTable, type StatusDocument } from '../wire/status.js';

const DEFAULT_SOCKET = process.env.SLICED_SOCKET ?? '/run/sliced/sliced.sock';

interface GlobalOptions {
  socket: string;
  json?: boolean;
}

const program = new Command('slicectl')
  .description('Control sliced: slices, scheduling domains, processes and live status')
  .option('-s, --socket <path>', 'API socket of sliced (env SLICED_SOCKET)', DEFAULT_SOCKET)
  .option('--json', 'print machine-readable JSON')
  .showHelpAfterError()
  .exitOverride()
  .addHelpText(
    'after',
    `
Quantities: CPU in millicores of this node ("1500m") or cores ("1.5"); memory in bytes or with
K/M/G/T suffixes (1K = 1024); I/O rates in bytes per second with the same suffixes ("10M" is
10 MiB/s) and IOPS as whole numbers. "none" removes a limit.

Exit status: 0 success, 1 refused by sliced (invalid value, over-commit, conflict), 2 bad usage,
3 unknown slice/domain/process, 4 not permitted (for this caller, or ever: e.g. attaching a kernel thread),
5 sliced not running.
exec and run return the command's own exit status (128+N when it died of signal N).`,
  );

function globals(command: Command): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

function client(command: Command): ApiClient {
  return new ApiClient(globals(command).socket);
}

function print(command: Command, json: unknown, text: () => string): void {
  if (globals(command).json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}

const enc = encodeURIComponent;

/** The read-only socket of a slice, beside the main socket. */
function sliceClient(command: Command, slice: string): ApiClient {
  return new ApiClient(join(dirname(globals(command).socket), 'slices', `${slice}.sock`));
}

registerIoCommands(program, { client, print });

registerNodeCommands(program, { client, print });

registerTreeCommands(program, { client, sliceClient, print });

registerSliceCommands(program, { client, sliceClient, print });

// ---- processes ------------------------------------------------------------------------------

program
  .command('exec')
  .description("run a command as the slice's user inside the slice (stdio passed through, exit status returned)")
  .requiredOption('--slice <slice>', 'slice to run in')
  .option(
    '-e, --env <KEY=VALUE>',
    'set an environment variable (repeatable)',
    (value: string, all: string[]) => [...all, value],
    [] as string[],
  )
  .option('--chdir <dir>', 'working directory of the command (default: the current one)')
  .option(
    '--node <node>',
    "in a cluster: run it on this node of the slice, as a task pinned there (output and exit status come back; stdin does not; without --chdir it starts in the slice user's home)",
  )
  .argument('<command...>', 'command and its arguments (put -- before options meant for the command)')
  .action(async (commandLine: string[], options: { slice: string; env: string[]; chdir?: string; node?: string }, command: Command) => {
    const env = envPairs(options.env);
    if (options.node !== undefined) {
      const cwd = options.chdir !== undefined ? { cwd: options.chdir } : {};
      process.exitCode = await runOnNode(client(command), { slice: options.slice, node: options.node, command: commandLine, env, ...cwd });
      return;
    }
    const plan = await client(command).post<ExecPlan>(`/v1/slices/${enc(options.slice)}/exec-plan`, { pid: process.pid });
    process.exitCode = await runInSlice(plan, commandLine, { env, ...(options.chdir ? { cwd: options.chdir } : {}) });
  });

program
  .command('attach <slice> <pid>')
  .description('move a running process (all its threads) into a slice')
  .action(async (name: string, pidText: string, _options: unknown, command: Command) => {
    const pid = parsePidText(pidText);
    if (pid === null)
      throw new CliError(`pid ${JSON.stringify(pidText)} is not a valid pid: it must be ${PID_RANGE}`, EXIT.usage, 'EINVAL');
    const result = await client(command).post<{ slice: string; pid: number }>(`/v1/slices/${enc(name)}/attach`, { pid });
    print(command, result, () => `attached process ${pidText} to slice ${name}`);
  });

// ---- status ---------------------------------------------------------------------------------

program
  .command('status')
  .description('live table of slices and domains: allocation, entitlement, measured CPU, memory (like systemd-cgtop)')
  .option('--once', 'print one table and exit (the default when stdout is not a terminal)')
  .addOption(new Option('-d, --delay <seconds>', 'refresh interval').default('1'))
  .option('-n, --iterations <n>', 'stop after this many refreshes')
  .action(async (options: { once?: boolean; delay: string; iterations?: string }, command: Command) => {
    const delay = Number(options.delay);
    if (!(delay > 0))
      throw new CliError(`--delay ${JSON.stringify(options.delay)} must be a positive number of seconds`, EXIT.usage, 'EINVAL');
    const live = !options.once && !globals(command).json && process.stdout.isTTY === true;
    const iterations = options.iterations !== undefined ? Number(options.iterations) : live ? Infinity : 1;
    for (let i = 0; i < iterations; i++) {
      const status = await fetchStatus(command);
      if (live) process.stdout.write('\x1b[H\x1b[2J');
      print(command, status, () => statusTable(status));
      if (i + 1 < iterations) await sleep(delay * 1000);
    }
  });

async function fetchStatus(command: Command): Promise<StatusDocument> {
  try {
    return await client(command).get<StatusDocument>('/v1/status');
  } catch (err) {
    if (!(err instanceof CliError) || err.exitCode !== EXIT.permission) throw err;
    // Not an administrator: show the slices whose read-only sockets this user may open.
    const dir = join(dirname(globals(command).socket), 'slices');
    let entries: string[];
    try {
      entries = readdirSync(dir).filter((f) => f.endsWith('.sock'));
    } catch {
      throw err;
    }
    let combined: StatusDocument | null = null;
    for (const entry of entries) {
      try {
        const own = await new ApiClient(join(dir, entry)).get<StatusDocument>('/v1/status');
        if (combined) combined.slices.push(...own.slices);
        else combined = own;
      } catch {
        // Not this user's slice.
      }
    }
    if (!combined) throw err;
    return combined;
  }
}

addVsysCommands(program, { client, print, json: (command) => globals(command).json === true });
registerNetCommands(program, { client, print });
registerTaskCommands(program, { client, print });
registerClusterCommands(program, { print });
registerWebCommands(program, { client, print });
registerSimulateCommand(program, { client, print });
registerTopCommand(program, { client, print, json: (command) => globals(command).json === true });

// ---- run ------------------------------------------------------------------------------------

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : EXIT.usage);
  }
  if (err instanceof CliError) {
    // With --json, scripts get the error as JSON too (one line on stderr).
    const ownArgs = process.argv.includes('--') ? process.argv.slice(0, process.argv.indexOf('--')) : process.argv;
    const line = ownArgs.includes('--json')
      ? JSON.stringify({ error: { code: err.code, message: err.message } })
      : `slicectl: ${err.message}`;
    process.stderr.write(`${line}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`slicectl: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(EXIT.refused);
}
