/**
 * `slicectl run` and `slicectl task`: cluster tasks from any node. The schedulers of the tree
 * choose the node among the slice's; the node's agent runs the command as the slice's user in
 * its groups and keeps its output, which any node reads (through the node-to-node channel).
 * `run` without -d streams the output and exits with the task's status, like `exec`.
 */
import { Option, type Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError, EXIT, type ApiClient } from './client.js';
import { renderKeyValues, renderTable } from '../core/table.js';
import { RESTART_POLICIES } from '../core/restart-policies.js';
import type { LogLine, TaskList, TaskView } from '../wire/tasks.js';

export interface TaskCliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

const SIGNALS = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGSTOP', 'SIGCONT'];
/** How long `run` waits for the chosen node to start the task. */
const START_WAIT_MS = 30_000;
/** After the output ends, how long `run` waits for the node's final report. */
const END_REPORT_MS = 10_000;

/** KEY=VALUE pairs of --env, as an environment. */
export function envPairs(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`--env ${JSON.stringify(pair)} must look like KEY=VALUE`, EXIT.usage, 'EINVAL');
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

const collect = (value: string, all: string[]): string[] => [...all, value];
const enc = encodeURIComponent;

export function registerTaskCommands(program: Command, ctx: TaskCliContext): void {
  program
    .command('run')
    .description("run a command as a cluster task in a slice, on the node the slice's schedulers choose (any node of the slice)")
    .requiredOption('--slice <slice>', 'slice to run in')
    .option('--name <name>', 'a name for the task (shown beside its id)')
    .option('--scheduler <name>', 'ask this scheduler of /schedulers alone where the task runs')
    .addOption(new Option('--restart <policy>', 'run it again when it ends').choices([...RESTART_POLICIES]).default('never'))
    .option('--migratable', 'the task may be stopped and started again on another node (balancing, drain)')
    .option('-d, --detach', 'print the task id and return at once')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [] as string[])
    .option('--chdir <dir>', "working directory of the command on its node (default: the slice user's home)")
    .option('--node <node>', 'run on this node of the slice only: it never moves, and waits for that node when it is down')
    .argument('<command...>', 'command and its arguments (put -- before options meant for the command)')
    .action(async (commandLine: string[], options: RunOptions, command: Command) => {
      const api = ctx.client(command);
      const view = await submitTask(api, {
        slice: options.slice,
        ...(options.name !== undefined ? { name: options.name } : {}),
        ...(options.scheduler !== undefined ? { scheduler: options.scheduler } : {}),
        command: commandLine,
        restart: options.restart,
        migratable: options.migratable === true,
        env: envPairs(options.env),
        ...(options.chdir !== undefined ? { cwd: options.chdir } : {}),
        ...(options.node !== undefined ? { node: options.node } : {}),
      });
      if (options.detach) {
        ctx.print(command, view, () => view.id);
        return;
      }
      process.exitCode = await attach(api, view);
    });

  const task = program.command('task').description('cluster tasks: list, show, output, stop, signal, remove (from any node)');

  task
    .command('list')
    .description('every task of the cluster: node, state, restarts, exit status, age')
    .action(async (_options: unknown, command: Command) => {
      const list = await ctx.client(command).get<TaskList>('/v1/tasks');
      ctx.print(command, list, () => taskTable(list.tasks));
    });

  task
    .command('show <id>')
    .description('one task: its command, slice, node and who placed it there, state, restarts, exit status and times')
    .action(async (id: string, _options: unknown, command: Command) => {
      const view = await ctx.client(command).get<TaskView>(`/v1/tasks/${enc(id)}`);
      ctx.print(command, view, () => taskDetails(view));
    });

  task
    .command('logs <id>')
    .description("the task's kept output (stdout and stderr, as they were written), read from the node that runs it")
    .option('-f, --follow', 'go on printing while the task runs')
    .action(async (id: string, options: { follow?: boolean }, command: Command) => {
      await streamOutput(ctx.client(command), id, options.follow === true);
    });

  task
    .command('stop <id>')
    .description('stop the task (SIGTERM, then SIGKILL after the grace period) and wait until its node says so')
    .action(async (id: string, _options: unknown, command: Command) => {
      const view = await ctx.client(command).post<TaskView>(`/v1/tasks/${enc(id)}/stop`, {});
      ctx.print(command, view, () => `task ${view.id} ${view.state} on node ${view.node}`);
    });

  task
    .command('migrate <id>')
    .description(
      'move a migratable task to another node of its slice: stopped where it runs (SIGTERM, grace, SIGKILL), then started again on the target',
    )
    .option('--to <node>', 'the node to move it to (default: where the schedulers place it)')
    .action(async (id: string, options: { to?: string }, command: Command) => {
      const view = await ctx.client(command).post<TaskView>(`/v1/tasks/${enc(id)}/migrate`, options.to ? { to: options.to } : {});
      ctx.print(command, view, () => `task ${view.id} ${view.state} on node ${view.node} (placement ${view.generation})`);
    });

  task
    .command('signal <id> <signal>')
    .description(`send a signal to the task's process group: ${SIGNALS.join(', ')} (or without SIG)`)
    .action(async (id: string, signal: string, _options: unknown, command: Command) => {
      const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
      if (!SIGNALS.includes(name))
        throw new CliError(`signal ${JSON.stringify(signal)} is not one of ${SIGNALS.join(', ')}`, EXIT.usage, 'EINVAL');
      const result = await ctx
        .client(command)
        .post<{ task: string; node: string; signal: string }>(`/v1/tasks/${enc(id)}/signal`, { signal: name });
      ctx.print(command, result, () => `sent ${result.signal} to task ${result.task} on node ${result.node}`);
    });

  task
    .command('rm <id>')
    .description('forget a task that is not running (stopped or ended) and its kept output')
    .action(async (id: string, _options: unknown, command: Command) => {
      const result = await ctx.client(command).delete<{ deleted: string }>(`/v1/tasks/${enc(id)}`);
      ctx.print(command, result, () => `removed task ${result.deleted}`);
    });
}

interface RunOptions {
  slice: string;
  name?: string;
  scheduler?: string;
  restart: string;
  migratable?: boolean;
  detach?: boolean;
  env: string[];
  chdir?: string;
  node?: string;
}

/** Submit a task on behalf of this process (its pid and session count for the schedulers' process sets). */
function submitTask(api: ApiClient, body: Record<string, unknown>): Promise<TaskView> {
  return api.post<TaskView>('/v1/tasks', { ...body, pid: process.pid });
}

/** Run a task pinned to `node` and follow it as `slicectl run` does: its output here, its exit status returned. */
export async function runOnNode(
  api: ApiClient,
  request: { slice: string; node: string; command: string[]; env: Record<string, string>; cwd?: string },
): Promise<number> {
  const { cwd, ...rest } = request;
  return attach(api, await submitTask(api, { ...rest, ...(cwd !== undefined ? { cwd } : {}) }));
}

/** `run` in the foreground: wait for the start, stream the output, forward signals, return the task's exit status. */
async function attach(api: ApiClient, placed: TaskView): Promise<number> {
  const started = await api.get<TaskView>(`/v1/tasks/${placed.id}/started?timeout=${START_WAIT_MS}`);
  if (started.state === 'pending')
    throw new CliError(
      `task ${placed.id} was placed on node ${placed.node}, which has not started it after ${START_WAIT_MS / 1000} s`,
      EXIT.refused,
      'EBUSY',
    );
  if (started.state === 'failed')
    throw new CliError(
      `task ${placed.id} could not start on node ${started.node}: ${started.reason ?? 'no reason given'}`,
      EXIT.refused,
      'EIO',
    );
  const forward = (signal: NodeJS.Signals): void => {
    api.post(`/v1/tasks/${placed.id}/signal`, { signal }).catch(() => undefined); // it may have ended meanwhile
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGQUIT'];
  const handlers = signals.map((signal) => [signal, () => forward(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  try {
    await streamOutput(api, placed.id, true);
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
  const deadline = Date.now() + END_REPORT_MS;
  for (;;) {
    const view = await api.get<TaskView>(`/v1/tasks/${placed.id}`);
    if (view.state === 'exited' || view.state === 'stopped') return view.exitStatus ?? 1;
    if (view.state === 'failed')
      throw new CliError(`task ${view.id} failed on node ${view.node}: ${view.reason ?? 'no reason given'}`, EXIT.refused, 'EIO');
    if (view.state === 'unknown')
      throw new CliError(`task ${view.id}: ${view.reason ?? 'its node cannot say how it ended'}`, EXIT.refused, 'EIO');
    if (Date.now() > deadline)
      throw new CliError(`task ${view.id}: its output ended but node ${view.node} still reports it ${view.state}`, EXIT.refused, 'EIO');
    await sleep(50);
  }
}

async function streamOutput(api: ApiClient, id: string, follow: boolean): Promise<void> {
  await api.stream<LogLine>(`/v1/tasks/${enc(id)}/logs?follow=${follow}`, (line) => {
    (line.stream === 'stderr' ? process.stderr : process.stdout).write(Buffer.from(line.data, 'base64'));
  });
}

function taskTable(tasks: TaskView[]): string {
  if (tasks.length === 0) return 'no tasks';
  return renderTable(
    ['ID', 'NAME', 'SLICE', 'NODE', 'STATE', 'RESTARTS', 'EXIT', 'CREATED', 'COMMAND'],
    tasks.map((t) => [
      t.id,
      t.name ?? '-',
      t.slice,
      t.node,
      t.state,
      String(t.restarts),
      t.exitStatus === null ? '-' : String(t.exitStatus),
      t.createdAt,
      commandText(t.command, 40),
    ]),
    new Set([5, 6]),
  );
}

function taskDetails(t: TaskView): string {
  const pairs: Array<[string, string]> = [
    ['Task', t.id + (t.name ? ` (${t.name})` : '')],
    ['Command', commandText(t.command, 200)],
    ['Slice', t.slice],
    ['Node', `${t.node} (placed by ${t.placedBy}, placement ${t.generation}, ${t.placedAt})`],
    ['State', t.state + (t.reason ? `: ${t.reason}` : '') + (t.desired === 'stop' && t.state === 'running' ? ' (stopping)' : '')],
    ['Restart', `${t.restart}; restarts ${t.restarts}`],
    ['Migratable', t.migratable ? 'yes' : 'no'],
  ];
  if (t.pinned !== null) pairs.push(['Pinned', `to ${t.pinned}`]);
  if (t.pid !== null) pairs.push(['Pid', String(t.pid)]);
  if (t.exitStatus !== null) pairs.push(['Exit status', String(t.exitStatus)]);
  pairs.push(['Created', `${t.createdAt} on ${t.createdOn}`]);
  if (t.startedAt) pairs.push(['Started', t.startedAt]);
  if (t.endedAt) pairs.push(['Ended', t.endedAt]);
  return renderKeyValues(pairs);
}

function commandText(command: string[], max: number): string {
  const text = command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
