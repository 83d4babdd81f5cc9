/**
 * slicectl verbs for the config tree: mkdir, rmdir, write, cat, ln, rm, ls, tree, dump,
 * apply, placement. They do what the same shell commands do on the FUSE mount.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient, CliError, EXIT, exitCodeFor } from './client.js';
import type { Entry, TreeListing } from '../wire/tree.js';
import { PID_RANGE, parsePidText } from '../core/pids.js';

export interface CliContext {
  client(command: Command): ApiClient;
  /** The read-only socket of a slice, for its own user. */
  sliceClient(command: Command, slice: string): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

interface ApplyAnswer {
  dryRun: boolean;
  steps: string[];
  problems?: Array<{ step: number; code: string; message: string; action: string }>;
  warnings?: string[];
}

const q = (path: string): string => `?path=${encodeURIComponent(path)}`;

export function registerTreeCommands(program: Command, ctx: CliContext): void {
  /** Reads go to the main socket; a slice's user falls back to its own socket for /slices/<its name>. */
  const read = async <T>(command: Command, path: string, endpoint: string): Promise<T> => {
    try {
      return await ctx.client(command).get<T>(`${endpoint}${q(path)}`);
    } catch (err) {
      const slice = /^\/slices\/([^/]+)/.exec(path)?.[1];
      if (!(err instanceof CliError) || err.exitCode !== EXIT.permission || !slice) throw err;
      return ctx.sliceClient(command, slice).get<T>(`${endpoint}${q(path)}`);
    }
  };

  program
    .command('mkdir')
    .description('create components: a probe (/probes/<type>), a scheduler, a policy or filter (named by its type), a process-set member')
    .argument('<path...>', 'tree paths')
    .action(async (paths: string[], _o, command: Command) => {
      for (const path of paths) await ctx.client(command).post('/v1/tree/mkdir', { path });
      ctx.print(command, { created: paths }, () => paths.map((p) => `created ${p}`).join('\n'));
    });

  program
    .command('rmdir')
    .description('remove components (they must have no links or sources left)')
    .argument('<path...>', 'tree paths')
    .action(async (paths: string[], _o, command: Command) => {
      for (const path of paths) await ctx.client(command).post('/v1/tree/rmdir', { path });
      ctx.print(command, { removed: paths }, () => paths.map((p) => `removed ${p}`).join('\n'));
    });

  program
    .command('write')
    .description('set an attribute (like echo VALUE > PATH); a rejected value leaves the old one')
    .argument('<path>', 'attribute path')
    .argument('<value...>', 'new value')
    .action(async (path: string, value: string[], _o, command: Command) => {
      const result = await ctx.client(command).post<{ path: string; value: string }>('/v1/tree/write', { path, value: value.join(' ') });
      ctx.print(command, result, () => `${path} = ${result.value.trim()}`);
    });

  program
    .command('cat')
    .description('print attributes and values as text')
    .argument('<path...>', 'attribute paths')
    .action(async (paths: string[], _o, command: Command) => {
      const values: Array<{ path: string; value: string }> = [];
      for (const path of paths) values.push(await read<{ path: string; value: string }>(command, path, '/v1/tree/cat'));
      ctx.print(command, values.length === 1 ? values[0] : values, () => values.map((v) => v.value.replace(/\n$/, '')).join('\n'));
    });

  program
    .command('ln')
    .description('link a probe source into a port or filter (like ln -s TARGET PATH)')
    .argument('<target>', 'probe source, e.g. /probes/cpu/node_load')
    .argument('<path>', 'link to create inside a port or filter, e.g. .../threshold/cpu_load')
    .action(async (target: string, path: string, _o, command: Command) => {
      const result = await ctx.client(command).post('/v1/tree/ln', { target, path });
      ctx.print(command, result, () => `${path} -> ${target}`);
    });

  program
    .command('rm')
    .description('remove links')
    .argument('<path...>', 'link paths')
    .action(async (paths: string[], _o, command: Command) => {
      for (const path of paths) await ctx.client(command).post('/v1/tree/rm', { path });
      ctx.print(command, { removed: paths }, () => paths.map((p) => `removed ${p}`).join('\n'));
    });

  program
    .command('ls')
    .description('list a directory of the tree')
    .option('-l', 'long format: kind, writable, link targets')
    .argument('[path]', 'directory', '/')
    .action(async (path: string, options: { l?: boolean }, command: Command) => {
      const entries = await read<Entry[]>(command, path, '/v1/tree/ls');
      ctx.print(command, entries, () =>
        entries
          .map((e) =>
            options.l
              ? `${e.kind === 'dir' ? 'd' : e.kind === 'link' ? 'l' : '-'}${e.writable ? 'w' : 'r'} ${e.name}${e.kind === 'dir' ? '/' : ''}`
              : `${e.name}${e.kind === 'dir' ? '/' : ''}`,
          )
          .join('\n'),
      );
    });

  program
    .command('tree')
    .description('show the tree (or a subtree) with links and attributes')
    .argument('[path]', 'subtree', '/')
    .option('--values', 'also show attribute values')
    .action(async (path: string, options: { values?: boolean }, command: Command) => {
      const listing = await ctx.client(command).get<TreeListing>(`/v1/tree/tree${q(path)}`);
      const lines: string[] = [listing.name];
      const values = new Map<string, string>();
      if (options.values) await collectValues(ctx.client(command), listing, path === '/' ? '' : path, values);
      renderTree(listing, '', path === '/' ? '' : path, lines, values);
      ctx.print(command, listing, () => lines.join('\n'));
    });

  program
    .command('dump')
    .description('print the tree as a YAML document (what apply takes)')
    .action(async (_o, command: Command) => {
      const { yaml } = await ctx.client(command).get<{ yaml: string }>('/v1/tree/dump');
      ctx.print(command, { yaml }, () => yaml.trimEnd());
    });

  program
    .command('apply')
    .description(
      'make the tree equal to a YAML document (FILE, or - for stdin), in a safe order; every step is checked first and nothing ' +
        'changes if one fails',
    )
    .argument('<file>', 'document')
    .option('--dry-run', "print the plan and what apply would find wrong (exit status as apply's); change nothing")
    .option('--force', "apply a plan that stops the daemon's own CPU control loop (/schedulers/cpu)")
    .action(async (file: string, options: { dryRun?: boolean; force?: boolean }, command: Command) => {
      let document: string;
      try {
        document = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`, EXIT.usage, 'EINVAL');
      }
      const result = await ctx
        .client(command)
        .post<ApplyAnswer>('/v1/tree/apply', { document, dryRun: options.dryRun ?? false, force: options.force ?? false });
      for (const warning of result.warnings ?? []) process.stderr.write(`slicectl: warning: ${warning}\n`);
      ctx.print(command, result, () =>
        result.steps.length === 0
          ? 'the tree already matches the document'
          : `${result.dryRun ? 'would run' : 'ran'}:\n${result.steps.map((s) => `  ${s}`).join('\n')}`,
      );
      const problems = result.problems ?? [];
      for (const p of problems)
        process.stderr.write(`slicectl: error: step ${p.step} of ${result.steps.length} (${p.action}) would fail: ${p.message}\n`);
      if (problems.length > 0) process.exitCode = exitCodeFor(problems[0]!.code);
    });

  program
    .command('placement')
    .description('ask the schedulers where a new task of process PID would be placed')
    .argument('<pid>', 'parent process')
    .option('--slice <slice>', 'the slice the task would start in')
    .action(async (pid: string, options: { slice?: string }, command: Command) => {
      if (parsePidText(pid) === null)
        throw new CliError(`pid ${JSON.stringify(pid)} is not a valid pid: it must be ${PID_RANGE}`, EXIT.usage, 'EINVAL');
      const answer = await ctx
        .client(command)
        .get<{ node: string | null; refused: string | null; scheduler: string | null }>(
          `/v1/placement?pid=${pid}${options.slice ? `&slice=${encodeURIComponent(options.slice)}` : ''}`,
        );
      ctx.print(command, answer, () =>
        answer.refused
          ? `refused by scheduler ${answer.scheduler}: ${answer.refused}`
          : answer.node
            ? `node ${answer.node} (scheduler ${answer.scheduler})`
            : 'no scheduler has an opinion: this node',
      );
    });
}

async function collectValues(api: ApiClient, node: TreeListing, path: string, out: Map<string, string>): Promise<void> {
  for (const child of node.children ?? []) {
    const childPath = `${path}/${child.name}`;
    if (child.kind === 'file') {
      try {
        out.set(childPath, (await api.get<{ value: string }>(`/v1/tree/cat${q(childPath)}`)).value.trim().replace(/\n/g, '; '));
      } catch {
        out.set(childPath, '?');
      }
    } else if (child.kind === 'dir') await collectValues(api, child, childPath, out);
  }
}

function renderTree(node: TreeListing, indent: string, path: string, lines: string[], values: Map<string, string>): void {
  const children = node.children ?? [];
  children.forEach((child, i) => {
    const last = i === children.length - 1;
    const childPath = `${path}/${child.name}`;
    const value = values.get(childPath);
    const suffix = child.kind === 'link' ? ` -> ${child.target}` : child.kind === 'dir' ? '/' : value !== undefined ? ` = ${value}` : '';
    lines.push(`${indent}${last ? '└── ' : '├── '}${child.name}${suffix}`);
    if (child.kind === 'dir') renderTree(child, `${indent}${last ? '    ' : '│   '}`, childPath, lines, values);
  });
}
