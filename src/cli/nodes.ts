/** `slicectl node`: the cluster's members, from any node (a node alone lists itself). */
import type { Command } from 'commander';
import type { ApiClient } from './client.js';
import { renderKeyValues, renderTable } from '../core/table.js';
import { parseLabelArgs } from '../core/membership.js';
import type { DrainResult, NodeChange, NodeEntry, NodeList } from '../wire/nodes.js';

export interface NodeCliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

const enc = encodeURIComponent;

export function registerNodeCommands(program: Command, ctx: NodeCliContext): void {
  const node = program
    .command('node')
    .description("the cluster's nodes: status, capacity and labels; label, cordon and remove them from any node");

  node
    .command('list')
    .description('list the nodes: status (up while its agent renews its lease), cordoned, capacity, labels')
    .action(async (_options: unknown, command: Command) => {
      const list = await ctx.client(command).get<NodeList>('/v1/nodes');
      ctx.print(command, list, () => nodeTable(list));
    });

  node
    .command('show <name>')
    .description("one node's records: status, labels, cordon, capacity, addresses, version, registered since")
    .action(async (name: string, _options: unknown, command: Command) => {
      const entry = await ctx.client(command).get<NodeEntry>(`/v1/nodes/${enc(name)}`);
      ctx.print(command, entry, () => nodeDetails(entry));
    });

  node
    .command('label <name> <labels...>')
    .description('set labels (KEY=VALUE) or remove them (KEY-) on a node, e.g. slicectl node label n1 rack=r1 gpu-')
    .action(async (name: string, labels: string[], _options: unknown, command: Command) => {
      const changes = parseLabelArgs(labels);
      const body: NodeChange = {
        labels: { ...changes.set, ...Object.fromEntries(changes.remove.map((k) => [k, null])) },
      };
      const entry = await ctx.client(command).patch<NodeEntry>(`/v1/nodes/${enc(name)}`, body);
      ctx.print(command, entry, () => `node ${name} labels: ${labelText(entry.labels) || '(none)'}`);
    });

  for (const [verb, cordoned] of [
    ['cordon', true],
    ['uncordon', false],
  ] as const) {
    node
      .command(`${verb} <name>`)
      .description(cordoned ? 'take no new slivers or tasks on a node; what runs there stays' : 'let a cordoned node take new work again')
      .action(async (name: string, _options: unknown, command: Command) => {
        const entry = await ctx.client(command).patch<NodeEntry>(`/v1/nodes/${enc(name)}`, { cordoned } satisfies NodeChange);
        ctx.print(command, entry, () => `node ${name} ${cordoned ? 'cordoned' : 'uncordoned'}`);
      });
  }

  node
    .command('drain <name>')
    .description(
      'cordon a node and move its migratable tasks to other nodes of their slices; lists what could not move (uncordon reverses the cordon)',
    )
    .action(async (name: string, _options: unknown, command: Command) => {
      const result = await ctx.client(command).post<DrainResult>(`/v1/nodes/${enc(name)}/drain`, {});
      ctx.print(command, result, () => drainText(result));
    });

  node
    .command('remove <name>')
    .description('forget a node that is down (its labels, cordon and slivers go); a node that is up is refused')
    .action(async (name: string, _options: unknown, command: Command) => {
      const result = await ctx.client(command).delete<{ deleted: string; slivers?: string[] }>(`/v1/nodes/${enc(name)}`);
      const slivers = result.slivers ?? [];
      ctx.print(command, result, () => `node ${name} removed${slivers.length > 0 ? `; its slivers forgotten: ${slivers.join(', ')}` : ''}`);
    });
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function nodeTable(list: NodeList): string {
  const table = renderTable(
    ['NAME', 'STATUS', 'CORDONED', 'CPU', 'USED', 'RESERVED', 'MEMORY', 'VERSION', 'LABELS'],
    list.nodes.map((n) => [
      `${n.name}${n.self ? ' *' : ''}`,
      n.status,
      n.cordoned ? 'yes' : '-',
      n.live ? `${n.live.capacity.cpuMillicores}m` : '-',
      n.load ? `${n.load.slicesCpuMillicores}m` : '-',
      n.load ? `${n.load.reservedMillicores}m` : '-',
      n.live ? `${Math.round(n.live.capacity.memoryBytes / 2 ** 20)}M` : '-',
      n.live?.version ?? '-',
      labelText(n.labels) || '-',
    ]),
  );
  const where = list.mode === 'etcd' ? `cluster on etcd ${list.endpoints.join(',')}` : 'a single node (not in a cluster)';
  return `${table}\n(* this node; ${where})`;
}

function nodeDetails(n: NodeEntry): string {
  return renderKeyValues([
    ['name', `${n.name}${n.self ? ' (this node)' : ''}`],
    ['status', n.status],
    ['cordoned', n.cordoned ? 'yes' : 'no'],
    ['labels', labelText(n.labels) || '(none)'],
    ['cpu', n.live ? `${n.live.capacity.cpuMillicores}m (${n.live.capacity.cpus} CPUs)` : '-'],
    ['slices use', n.load ? `${n.load.slicesCpuMillicores}m (reserved ${n.load.reservedMillicores}m)` : '-'],
    ['memory', n.live ? `${Math.round(n.live.capacity.memoryBytes / 2 ** 20)}M` : '-'],
    ['addresses', n.live?.addresses.join(', ') || '-'],
    ['version', n.live?.version ?? '-'],
    ['registered', n.live ? new Date(n.live.since).toISOString() : '-'],
  ]);
}

function drainText(result: DrainResult): string {
  const lines = [`node ${result.node} cordoned: no new task goes there`];
  for (const m of result.moved) lines.push(`task ${m.task} moved to ${m.to}`);
  for (const l of result.left) lines.push(`task ${l.task} stays: ${l.reason}`);
  if (result.moved.length === 0 && result.left.length === 0) lines.push('no task ran there');
  return lines.join('\n');
}
