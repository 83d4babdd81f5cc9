/**
 * `slicectl top`: the dashboard's node view for a terminal. Full screen, refreshed every
 * control period: the node's figures, then domains and slices as a tree (domains fold and
 * unfold) with CPU used and entitled, memory, I/O and network rates and processes, sorted
 * within each level by the chosen column. Rates come from two readings, as the page's do
 * (wire/dashboard.ts). Without a terminal (or with --once, --json) it prints one reading.
 *
 * Keys: c CPU, m memory, i I/O, n network, p processes, a name (sort); up/down select;
 * space or enter folds or unfolds the selected domain; + unfolds all, - folds all; q quits.
 */
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError, EXIT, type ApiClient } from './client.js';
import {
  buildFrame,
  compareRows,
  type FrameInput,
  type FrameMemory,
  type FrameRow,
  type FrameSort,
  type LiveFrame,
} from '../wire/dashboard.js';
import type { StatusDocument } from '../wire/status.js';
import type { AccountsDocument } from '../wire/net.js';
import { formatCpu, formatSizeApprox } from '../core/units.js';

export type TopSort = Exclude<FrameSort, 'entitlement'>;

const SORT_KEYS: Record<string, TopSort> = { c: 'cpu', m: 'memory', i: 'io', n: 'net', p: 'procs', a: 'name' };

export interface TopLine {
  row: FrameRow;
  depth: number;
  folded: boolean;
}

/** The rows in tree order: each level sorted by `sort`, members of folded domains left out. */
export function topLines(rows: readonly FrameRow[], sort: TopSort, folded: ReadonlySet<string>): TopLine[] {
  const children = new Map<string | null, FrameRow[]>();
  for (const row of rows) children.set(row.parent, [...(children.get(row.parent) ?? []), row]);
  const order = compareRows(sort);
  const out: TopLine[] = [];
  const visit = (parent: string | null, depth: number): void => {
    const level = [...(children.get(parent) ?? [])].sort(order);
    for (const row of level) {
      const isFolded = row.kind === 'domain' && folded.has(row.name);
      out.push({ row, depth, folded: isFolded });
      // Only domains have members (slices of a domain name it as their parent).
      if (row.kind === 'domain' && !isFolded) visit(row.name, depth + 1);
    }
  };
  visit(null, 0);
  return out;
}

const rate = (n: number | null): string => (n === null ? '-' : `${formatSizeApprox(Math.round(n))}/s`);

/** The screen as lines of at most `width` characters. */
export function topScreen(
  frame: LiveFrame,
  lines: readonly TopLine[],
  selected: number,
  sort: TopSort,
  width: number,
  height: number,
): string[] {
  const n = frame.node;
  const head = [
    `sliced top  ${new Date(frame.at).toLocaleTimeString()}  period ${frame.periodMs} ms  backend cgroup ${n.backend}`,
    `CPU ${formatCpu(n.capacity)}: reserved ${formatCpu(n.reserved)}, system reserve ${formatCpu(n.systemReserve)}, used outside slices ${n.systemUsage === null ? '-' : formatCpu(Math.round(n.systemUsage))}; memory ${formatSizeApprox(n.memoryBytes)}`,
    `sort: ${sort}   keys: c m i n p a sort, ↑↓ select, space fold, +/- all, q quit`,
    '',
  ];
  const columns = [
    'NAME',
    'CPU',
    'ENTITLED',
    'RESERVED',
    'LIMIT',
    'MEMORY',
    'MEM LIMIT',
    'IO READ',
    'IO WRITE',
    'NET SENT',
    'NET RECV',
    'PROCS',
  ];
  const cells = lines.map((l) => {
    const r = l.row;
    const marker = r.kind === 'domain' ? (l.folded ? '▸ ' : '▾ ') : '  ';
    return [
      `${'  '.repeat(l.depth)}${marker}${r.name}${r.kind === 'domain' ? '/' : ''}`,
      Number.isFinite(r.usage) ? formatCpu(Math.round(r.usage)) : '-',
      formatCpu(Math.round(r.entitlement)),
      formatCpu(r.reservation),
      r.limit === null ? '-' : formatCpu(r.limit),
      formatSizeApprox(r.memoryBytes),
      r.memoryLimit === null ? '-' : formatSizeApprox(r.memoryLimit),
      rate(r.ioReadRate),
      rate(r.ioWriteRate),
      rate(r.netSentRate),
      rate(r.netReceivedRate),
      String(r.procs),
    ];
  });
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const format = (row: string[]): string =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const room = Math.max(1, height - head.length - 1);
  // Keep the selection in view.
  const first = Math.max(0, Math.min(selected - Math.floor(room / 2), cells.length - room));
  const body = cells.slice(first, first + room).map((row, i) => {
    const line = format(row).slice(0, width);
    return first + i === selected ? `\x1b[7m${line.padEnd(width)}\x1b[0m` : line;
  });
  return [...head.map((l) => l.slice(0, width)), format(columns).slice(0, width), ...body];
}

/** One reading of the node through the admin API, as the live feed reads it in the daemon. */
async function readInput(api: ApiClient): Promise<FrameInput> {
  const [status, accounts] = await Promise.all([
    api.get<StatusDocument>('/v1/status'),
    api.get<AccountsDocument>('/v1/net/accounts').catch(() => null), // networking off: no rates
  ]);
  const node = status.node as StatusDocument['node'] & { memoryBytes?: number; controlPeriodMs?: number };
  return {
    at: Date.now(),
    periodMs: node.controlPeriodMs ?? 1000,
    node: {
      capacity: node.cpu.capacity,
      systemReserve: node.cpu.systemReserve,
      reserved: node.cpu.reserved ?? 0,
      systemUsage: node.control?.systemUsage ?? null,
      memoryBytes: node.memoryBytes ?? 0,
      backend: node.backend,
    },
    slices: status.slices,
    domains: status.domains,
    accounts,
  };
}

export interface TopCliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
  json(command: Command): boolean;
}

export function registerTopCommand(program: Command, ctx: TopCliContext): void {
  program
    .command('top')
    .description('full-screen live view of domains and slices: CPU, memory, I/O and network rates; sortable, domains fold (q quits)')
    .option('--once', 'print one reading and exit (the default without a terminal); rates need two: it waits one period')
    .option('--sort <column>', 'cpu, memory, io, net, procs or name', 'cpu')
    .action(async (options: { once?: boolean; sort: string }, command: Command) => {
      const api = ctx.client(command);
      const sort = options.sort as TopSort;
      if (!Object.values(SORT_KEYS).includes(sort)) {
        throw new CliError(
          `--sort ${JSON.stringify(options.sort)} is not a column; allowed: ${Object.values(SORT_KEYS).join(', ')}`,
          EXIT.usage,
          'EINVAL',
        );
      }
      let memory: FrameMemory | null = null;
      const read = async (): Promise<LiveFrame> => {
        const built = buildFrame(await readInput(api), memory);
        memory = built.memory;
        return built.frame;
      };
      const interactive = !options.once && !ctx.json(command) && process.stdout.isTTY === true && process.stdin.isTTY === true;
      if (!interactive) {
        const first = await read();
        await sleep(first.periodMs);
        const frame = await read();
        ctx.print(command, frame, () =>
          topScreen(frame, topLines(frame.rows, sort, new Set()), -1, sort, 1000, 10_000)
            .filter((l) => !l.startsWith('sort:'))
            .join('\n'),
        );
        return;
      }
      await interactiveTop(read, sort);
    });
}

async function interactiveTop(read: () => Promise<LiveFrame>, initial: TopSort): Promise<void> {
  const out = process.stdout;
  const folded = new Set<string>();
  let sort = initial;
  let selected = 0;
  let frame: LiveFrame | null = null;
  let lines: TopLine[] = [];
  let quit = false;
  let wake: (() => void) | null = null;
  const draw = (): void => {
    if (!frame) return;
    lines = topLines(frame.rows, sort, folded);
    selected = Math.max(0, Math.min(selected, lines.length - 1));
    const screen = topScreen(frame, lines, selected, sort, out.columns || 120, out.rows || 40);
    out.write(`\x1b[H\x1b[2J${screen.join('\n')}`);
  };
  const restore = (): void => {
    process.stdin.setRawMode(false);
    out.write('\x1b[?25h\x1b[?1049l');
  };
  out.write('\x1b[?1049h\x1b[?25l');
  process.stdin.setRawMode(true);
  process.stdin.resume();
  process.stdin.on('data', (data: Buffer) => {
    const key = data.toString('utf8');
    if (key === 'q' || key === '\x03') {
      quit = true;
      wake?.();
      return;
    }
    if (SORT_KEYS[key]) sort = SORT_KEYS[key]!;
    else if (key === '\x1b[A') selected--;
    else if (key === '\x1b[B') selected++;
    else if (key === ' ' || key === '\r') {
      const line = lines[selected];
      if (line?.row.kind === 'domain' && !folded.delete(line.row.name)) folded.add(line.row.name);
    } else if (key === '+') folded.clear();
    else if (key === '-') for (const r of frame?.rows ?? []) if (r.kind === 'domain') folded.add(r.name);
    draw();
  });
  out.on('resize', draw);
  try {
    while (!quit) {
      frame = await read();
      draw();
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, frame!.periodMs).unref();
      });
    }
  } finally {
    restore();
    process.stdin.pause();
  }
}
