/**
 * `slicectl slice ...` and `slicectl domain ...`: create, change, show, list and delete
 * slices and scheduling domains, with the allocation and network options they share.
 * Registered by main.ts.
 */
import type { Command } from 'commander';
import { CliError, EXIT, type ApiClient } from './client.js';
import { domainDetails, domainListTable, placementDetails, sliceDetails, sliceListTable } from './format.js';
import { ioMaxArguments } from '../core/io.js';
import { isSlicedError } from '../core/errors.js';
import type { DomainView, PlacementEntry, PlacementView, RemoteDomainView, RemoteSliceView, SliceView } from '../wire/slices.js';
import { renderTable } from '../core/table.js';

/** A slice as `show` gets it: this node's view, or (in a cluster) only its nodes when it has no sliver here. */
type ShownSlice = SliceView | RemoteSliceView;
type ShownDomain = DomainView | RemoteDomainView;

export interface SliceCliContext {
  client(command: Command): ApiClient;
  /** The read-only socket of a slice, for its own user. */
  sliceClient(command: Command, slice: string): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

const enc = encodeURIComponent;

function allocationOptions(command: Command, withCreateOnly: boolean): Command {
  command
    .option('--cpu-reservation <cpu>', 'guaranteed CPU, e.g. 500m or 0.5')
    .option('--cpu-limit <cpu>', 'CPU cap, e.g. 1500m, or "none"')
    .option('--cpu-shares <n>', 'share of what is left among siblings, 1..10000 (default 100)')
    .option('--memory <size>', 'memory limit, e.g. 512M, or "none"')
    .option('--memory-high <size>', 'soft memory limit (v2 memory.high, v1 soft limit), or "none"')
    .option('--memory-swap <size>', 'swap the slice may use, or "none" (on cgroup v1 needs --memory)')
    .option('--io-weight <n>', 'I/O weight among siblings, 1..10000 (default 100); acts through BFQ only')
    .option(
      '--pids-max <n>',
      'most tasks (processes and threads) at once, or "none"; slices: "default" (the node\'s default, 15% of its PIDs unless configured)',
    )
    .option(
      '--io-max <DEV:caps>',
      'I/O caps on a device, e.g. /dev/vdb:rbps=10M,wbps=5M,riops=500,wiops=200 or 253:16:none (repeatable)',
      (value: string, all: string[]) => [...all, value],
      [] as string[],
    );
  if (withCreateOnly) command.option('--domain <domain>', 'create the slice inside this scheduling domain');
  return command;
}

/** --net options of slice create/set (create: --net is a flag; set: --net on|off). */
function netOptions(command: Command, create: boolean): Command {
  if (create) command.option('--net', 'give the slice its own network: namespace, addresses, accounting');
  else command.option('--net <on|off>', 'give the slice its own network, or take it away');
  return command
    .option('--net-egress <on|off>', "let the slice's traffic leave the node (NAT through the host)")
    .option('--net-min-rate <rate>', 'guaranteed rate of outgoing traffic, e.g. 10mbit, or "none"')
    .option('--net-max-rate <rate>', 'ceiling of outgoing traffic, e.g. 50mbit, or "none"')
    .option('--net-tun <on|off>', "a tun device tun0 owned by the slice's user in its namespace");
}

function onOff(flag: string, value: string): boolean {
  if (value === 'on' || value === 'true' || value === 'yes') return true;
  if (value === 'off' || value === 'false' || value === 'no') return false;
  throw new CliError(`${flag} ${JSON.stringify(value)} must be "on" or "off"`, EXIT.usage, 'EINVAL');
}

function netBody(options: Pick<AllocationOptions, 'net' | 'netEgress' | 'netMinRate' | 'netMaxRate' | 'netTun'>): Record<string, unknown> {
  const net: Record<string, unknown> = {};
  if (options.netEgress !== undefined) net.egress = onOff('--net-egress', String(options.netEgress));
  if (options.netMinRate !== undefined) net.minRate = options.netMinRate;
  if (options.netMaxRate !== undefined) net.maxRate = options.netMaxRate;
  if (options.netTun !== undefined) net.tun = onOff('--net-tun', String(options.netTun));
  const enabled = options.net === undefined ? undefined : options.net === true || onOff('--net', String(options.net));
  if (enabled === false) {
    if (Object.keys(net).length > 0) throw new CliError('--net off cannot be combined with other --net-* options', EXIT.usage, 'EINVAL');
    return { net: false };
  }
  if (Object.keys(net).length > 0) return { net };
  return enabled ? { net: true } : {};
}

interface AllocationOptions {
  cpuReservation?: string;
  cpuLimit?: string;
  cpuShares?: string;
  memory?: string;
  memoryHigh?: string;
  memorySwap?: string;
  ioWeight?: string;
  ioMax?: string[];
  pidsMax?: string;
  user?: string;
  domain?: string;
  parent?: string;
  net?: string | boolean;
  netEgress?: string;
  netMinRate?: string;
  netMaxRate?: string;
  netTun?: string;
}

function allocationBody(options: AllocationOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const cpu: Record<string, unknown> = {};
  if (options.cpuReservation !== undefined) cpu.reservation = options.cpuReservation;
  if (options.cpuLimit !== undefined) cpu.limit = options.cpuLimit;
  if (options.cpuShares !== undefined) cpu.shares = options.cpuShares;
  if (Object.keys(cpu).length > 0) body.cpu = cpu;
  const memory: Record<string, unknown> = {};
  if (options.memory !== undefined) memory.limit = options.memory;
  if (options.memoryHigh !== undefined) memory.high = options.memoryHigh;
  if (options.memorySwap !== undefined) memory.swap = options.memorySwap;
  if (Object.keys(memory).length > 0) body.memory = memory;
  const io: Record<string, unknown> = {};
  if (options.ioWeight !== undefined) io.weight = options.ioWeight;
  if (options.ioMax && options.ioMax.length > 0) {
    try {
      io.max = ioMaxArguments(options.ioMax);
    } catch (err) {
      if (isSlicedError(err)) throw new CliError(err.message, EXIT.usage, 'EINVAL');
      throw err;
    }
  }
  if (Object.keys(io).length > 0) body.io = io;
  if (options.pidsMax !== undefined) body.pids = { max: options.pidsMax };
  return body;
}

const ALLOCATION_FLAGS =
  '--cpu-reservation, --cpu-limit, --cpu-shares, --memory, --memory-high, --memory-swap, --io-weight, --io-max, --pids-max';

/** --nodes, --node-selector, --all-nodes of slice and domain create: where the new object gets slivers in a cluster. */
function placementOptions(command: Command, defaultText: string): Command {
  return command
    .option('--nodes <a,b,...>', `in a cluster: the nodes to place it on (default: ${defaultText})`)
    .option('--node-selector <key=value,...>', 'in a cluster: every node up and not cordoned with these labels')
    .option('--all-nodes', 'in a cluster: every node up and not cordoned');
}

interface PlacementFlags {
  nodes?: string;
  nodeSelector?: string;
  allNodes?: boolean;
}

function placementBody(options: PlacementFlags): Record<string, unknown> {
  const given = [options.nodes !== undefined, options.nodeSelector !== undefined, options.allNodes === true].filter(Boolean).length;
  if (given > 1) throw new CliError('give one of --nodes, --node-selector and --all-nodes', EXIT.usage, 'EINVAL');
  if (options.nodes !== undefined) return { placement: { nodes: options.nodes.split(',').filter((n) => n !== '') } };
  if (options.allNodes) return { placement: { all: true } };
  if (options.nodeSelector === undefined) return {};
  const selector: Record<string, string> = {};
  for (const pair of options.nodeSelector.split(',')) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new CliError(`--node-selector ${JSON.stringify(pair)} must be key=value`, EXIT.usage, 'EINVAL');
    selector[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return { placement: { selector } };
}

/** "created slice web (user sl-web)"; in a cluster, with its nodes. */
function createdText(kind: string, view: { name: string; user?: string; cluster?: PlacementView }): string {
  const user = view.user !== undefined ? ` (user ${view.user})` : '';
  return `created ${kind} ${view.name}${user}${view.cluster ? ` on ${view.cluster.nodes.join(', ')}` : ''}`;
}

/** Warnings the daemon attached to a change (an io.weight where BFQ is not active) go to stderr. */
function printWarnings(view: { warnings?: string[] }): void {
  for (const warning of view.warnings ?? []) process.stderr.write(`slicectl: warning: ${warning}\n`);
}

export function registerSliceCommands(program: Command, ctx: SliceCliContext): void {
  // ---- slices ---------------------------------------------------------------------------------

  const slice = program.command('slice').description('create, change, show and delete slices');

  placementOptions(
    netOptions(
      allocationOptions(
        slice
          .command('create <name>')
          .description('create a slice (and, unless --user is given, a Unix user "sl-<name>" for it)')
          .option('--user <user>', "run the slice's processes as this existing unprivileged user"),
        true,
      ),
      true,
    ),
    'the node asked',
  ).action(async (name: string, options: AllocationOptions & PlacementFlags, command: Command) => {
    const body = {
      name,
      ...allocationBody(options),
      ...netBody(options),
      ...(options.user ? { user: options.user } : {}),
      ...(options.domain ? { domain: options.domain } : {}),
      ...placementBody(options),
    };
    const view = await ctx.client(command).post<ShownSlice & { warnings?: string[] }>('/v1/slices', body);
    printWarnings(view);
    ctx.print(command, view, () => createdText('slice', view));
  });

  netOptions(allocationOptions(slice.command('set <name>').description("change a slice's allocation or network"), false), false).action(
    async (name: string, options: AllocationOptions, command: Command) => {
      const body = { ...allocationBody(options), ...netBody(options) };
      if (Object.keys(body).length === 0)
        throw new CliError(
          `slice set needs at least one of ${ALLOCATION_FLAGS}, --net, --net-egress, --net-min-rate, --net-max-rate, --net-tun`,
          EXIT.usage,
          'EINVAL',
        );
      const view = await ctx.client(command).patch<ShownSlice & { warnings?: string[] }>(`/v1/slices/${enc(name)}`, body);
      printWarnings(view);
      ctx.print(command, view, () => `updated slice ${view.name}`);
    },
  );

  slice
    .command('show <name>')
    .description('show a slice with its live figures')
    .action(async (name: string, _options: unknown, command: Command) => {
      const view = await withSliceSocketFallback(ctx, command, name, (api) => api.get<ShownSlice>(`/v1/slices/${enc(name)}`));
      ctx.print(command, view, () => ('cgroup' in view ? sliceDetails(view) : placementDetails(view.name, view.cluster)));
    });

  slice
    .command('list')
    .description("list this node's slices (--cluster: every slice of the cluster, with its nodes)")
    .option('--cluster', 'in a cluster: every slice, with its placement and nodes')
    .action(async (options: { cluster?: boolean }, command: Command) => {
      if (options.cluster) return listCatalogue(ctx, command, 'slice');
      const views = await ctx.client(command).get<SliceView[]>('/v1/slices');
      ctx.print(command, views, () => (views.length ? sliceListTable(views) : 'no slices'));
    });

  slice
    .command('delete <name>')
    .description("stop the slice's processes (SIGTERM, grace, SIGKILL) and remove it")
    .action(async (name: string, _options: unknown, command: Command) => {
      const result = await ctx.client(command).delete<{ deleted: string }>(`/v1/slices/${enc(name)}`);
      ctx.print(command, result, () => `deleted slice ${name}`);
    });

  // ---- domains --------------------------------------------------------------------------------

  const domain = program.command('domain').description('scheduling domains: groups of slices living inside one allocation');

  placementOptions(
    allocationOptions(
      domain
        .command('create <name>')
        .description('create a scheduling domain')
        .option('--parent <domain>', 'nest it inside another domain'),
      false,
    ),
    'every node up',
  ).action(async (name: string, options: AllocationOptions & PlacementFlags, command: Command) => {
    const body = { name, ...allocationBody(options), ...(options.parent ? { parent: options.parent } : {}), ...placementBody(options) };
    const view = await ctx.client(command).post<ShownDomain & { warnings?: string[] }>('/v1/domains', body);
    printWarnings(view);
    ctx.print(command, view, () => createdText('domain', view));
  });

  allocationOptions(domain.command('set <name>').description("change a domain's allocation"), false).action(
    async (name: string, options: AllocationOptions, command: Command) => {
      const body = allocationBody(options);
      if (Object.keys(body).length === 0) throw new CliError(`domain set needs at least one of ${ALLOCATION_FLAGS}`, EXIT.usage, 'EINVAL');
      const view = await ctx.client(command).patch<DomainView & { warnings?: string[] }>(`/v1/domains/${enc(name)}`, body);
      printWarnings(view);
      ctx.print(command, view, () => `updated domain ${view.name}`);
    },
  );

  domain
    .command('add <domain> <member>')
    .description('move a slice (or a domain) into the domain; its processes follow at once')
    .action(async (name: string, member: string, _options: unknown, command: Command) => {
      const view = await ctx.client(command).post<DomainView>(`/v1/domains/${enc(name)}/members`, { member });
      ctx.print(command, view, () => `${member} is now in domain ${name}`);
    });

  domain
    .command('remove <domain> <member>')
    .description('move a member out of the domain, one level up')
    .action(async (name: string, member: string, _options: unknown, command: Command) => {
      const view = await ctx.client(command).delete<DomainView>(`/v1/domains/${enc(name)}/members/${enc(member)}`);
      ctx.print(command, view, () => `${member} is no longer in domain ${name}`);
    });

  domain
    .command('show <name>')
    .description('show a domain and its members')
    .action(async (name: string, _options: unknown, command: Command) => {
      const view = await ctx.client(command).get<ShownDomain>(`/v1/domains/${enc(name)}`);
      ctx.print(command, view, () => ('cgroup' in view ? domainDetails(view) : placementDetails(view.name, view.cluster)));
    });

  domain
    .command('list')
    .description("list this node's domains (--cluster: every domain of the cluster, with its nodes)")
    .option('--cluster', 'in a cluster: every domain, with its placement and nodes')
    .action(async (options: { cluster?: boolean }, command: Command) => {
      if (options.cluster) return listCatalogue(ctx, command, 'domain');
      const views = await ctx.client(command).get<DomainView[]>('/v1/domains');
      ctx.print(command, views, () => (views.length ? domainListTable(views) : 'no domains'));
    });

  domain
    .command('delete <name>')
    .description('delete an empty domain')
    .action(async (name: string, _options: unknown, command: Command) => {
      const result = await ctx.client(command).delete<{ deleted: string }>(`/v1/domains/${enc(name)}`);
      ctx.print(command, result, () => `deleted domain ${name}`);
    });
}

/** `slice list --cluster`, `domain list --cluster`: NAME, NODES, PLACEMENT, CREATED ON. */
async function listCatalogue(ctx: SliceCliContext, command: Command, kind: 'slice' | 'domain'): Promise<void> {
  const entries = await ctx.client(command).get<PlacementEntry[]>(`/v1/${kind}s?cluster=true`);
  ctx.print(command, entries, () =>
    entries.length
      ? renderTable(
          [kind.toUpperCase(), 'NODES', 'PLACEMENT', 'CREATED ON'],
          entries.map((e) => [e.name, e.nodes.join(','), e.placement, e.createdOn]),
        )
      : `no ${kind}s in the cluster`,
  );
}

/** Root and admins use the main socket; a slice's user falls back to its own read-only socket. */
async function withSliceSocketFallback<T>(
  ctx: SliceCliContext,
  command: Command,
  name: string,
  call: (api: ApiClient) => Promise<T>,
): Promise<T> {
  try {
    return await call(ctx.client(command));
  } catch (err) {
    if (!(err instanceof CliError) || err.exitCode !== EXIT.permission) throw err;
    const own = ctx.sliceClient(command, name);
    try {
      return await call(own);
    } catch (inner) {
      if (inner instanceof CliError && inner.exitCode === EXIT.unavailable) throw err;
      throw inner;
    }
  }
}
