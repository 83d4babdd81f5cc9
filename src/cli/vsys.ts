/** `slicectl vsys list|log|call`: the privileged services offered to slices. */
import type { Command } from 'commander';
import { ApiClient, CliError, EXIT } from './client.js';
import { renderKeyValues, renderTable } from '../core/table.js';
import type { AdminCallResult, ServiceView, SliceVsysView, VsysEvent, VsysStatus } from '../wire/vsys.js';

export interface CliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
  json(command: Command): boolean;
}

const enc = encodeURIComponent;

export function addVsysCommands(program: Command, cli: CliContext): void {
  const vsys = program.command('vsys').description('privileged services (scripts run as root) offered to slices through FIFOs');

  vsys
    .command('list')
    .description("services offered and to whom; with --slice, that slice's FIFOs and their state")
    .option('--slice <slice>', "show one slice's vsys directory")
    .action(async (options: { slice?: string }, command: Command) => {
      const api = cli.client(command);
      if (options.slice !== undefined) {
        const view = await api.get<SliceVsysView>(`/v1/vsys/slices/${enc(options.slice)}`);
        const status = view.services.length === 0 ? await api.get<VsysStatus>('/v1/vsys') : null;
        warnWithdrawn(cli, command, status);
        cli.print(command, view, () => sliceTable(view, status));
        return;
      }
      const services = await api.get<ServiceView[]>('/v1/vsys/services');
      // An empty list needs its reason: nothing installed, or everything withdrawn.
      const status = services.length === 0 ? await api.get<VsysStatus>('/v1/vsys') : null;
      warnWithdrawn(cli, command, status);
      cli.print(command, services, () => (services.length ? servicesTable(services) : noServices(status!)));
    });

  vsys
    .command('log [service]')
    .description('recent vsys events: calls, stderr of scripts, refusals, restarts')
    .option('--slice <slice>', 'only events of this slice')
    .option('-n, --lines <n>', 'at most this many (newest)', '100')
    .action(async (service: string | undefined, options: { slice?: string; lines: string }, command: Command) => {
      if (!/^\d+$/.test(options.lines) || Number(options.lines) < 1) {
        throw new CliError(`--lines ${JSON.stringify(options.lines)} must be a positive whole number`, EXIT.usage, 'EINVAL');
      }
      const query = new URLSearchParams({ limit: options.lines });
      if (service !== undefined) query.set('service', service);
      if (options.slice !== undefined) query.set('slice', options.slice);
      const events = await cli.client(command).get<VsysEvent[]>(`/v1/vsys/log?${query}`);
      cli.print(command, events, () => (events.length ? events.map(eventLine).join('\n') : 'no vsys events'));
    });

  vsys
    .command('call <service>')
    .description('run a service as a slice would (input from stdin, output to stdout); exit 1 if the script fails')
    .option('--slice <slice>', 'the slice to call as (default: the only slice that has the service)')
    .action(async (service: string, options: { slice?: string }, command: Command) => {
      const api = cli.client(command);
      const slice = options.slice ?? (await onlySliceWith(api, service));
      const input = process.stdin.isTTY ? Buffer.alloc(0) : await readAll(process.stdin);
      const result = await api.post<AdminCallResult>(`/v1/vsys/services/${enc(service)}/call`, { slice, input: input.toString('base64') });
      if (cli.json(command)) cli.print(command, result, () => '');
      else process.stdout.write(Buffer.from(result.output, 'base64'));
      if (result.failed) throw new CliError(`${service} as ${slice}: ${result.summary}`, EXIT.refused, 'EIO');
      if (!result.outputVisible && !cli.json(command))
        process.stderr.write(
          `slicectl: ${slice} has only w access to ${service}; its output (${result.bytesOut} bytes) is not shown to it\n`,
        );
    });
}

function noServices(status: VsysStatus): string {
  return status.withdrawn !== null
    ? `no vsys services: all are withdrawn because ${status.withdrawn}`
    : `no vsys services: none installed in ${status.servicesDir}`;
}

/** With --json stdout stays the document; the withdrawal still reaches the operator, on stderr. */
function warnWithdrawn(cli: CliContext, command: Command, status: VsysStatus | null): void {
  if (status?.withdrawn && cli.json(command)) process.stderr.write(`slicectl: warning: vsys services withdrawn: ${status.withdrawn}\n`);
}

async function onlySliceWith(api: ApiClient, service: string): Promise<string> {
  const services = await api.get<ServiceView[]>('/v1/vsys/services');
  const slices = [...new Set(services.filter((s) => s.name === service).flatMap((s) => Object.keys(s.slices)))];
  if (slices.length === 1) return slices[0]!;
  const which = slices.length === 0 ? 'no slice has it' : `it is offered to ${slices.join(', ')}`;
  throw new CliError(`vsys call ${service}: give --slice (${which})`, EXIT.usage, 'EINVAL');
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function servicesTable(services: ServiceView[]): string {
  const rows = services.map((s) => [
    s.name,
    s.private === null ? 'public' : `pvt/${s.private}`,
    s.stateful ? 'yes' : 'no',
    Object.entries(s.slices)
      .map(([slice, mode]) => `${slice}(${mode})`)
      .join(' ') || (s.acl === null && s.private === null ? '- (no ACL)' : '-'),
  ]);
  return renderTable(['SERVICE', 'SCOPE', 'STATEFUL', 'SLICES'], rows);
}

function sliceTable(view: SliceVsysView, status: VsysStatus | null): string {
  const head = renderKeyValues([
    ['Slice', view.slice],
    ['Directory', view.dir],
  ]);
  const rows = view.services.map((s) => [
    s.service,
    s.mode,
    s.stateful ? 'yes' : 'no',
    s.state,
    String(s.calls),
    s.private ? 'pvt' : 'public',
  ]);
  const refused = Object.entries(view.refused).map(([file, why]) => `refused ${file}: ${why}`);
  const none = status?.withdrawn
    ? `no services for this slice: all are withdrawn because ${status.withdrawn}`
    : 'no services for this slice';
  const table = rows.length ? renderTable(['SERVICE', 'MODE', 'STATEFUL', 'STATE', 'CALLS', 'SCOPE'], rows, new Set([4])) : none;
  return [head, '', table, ...refused].join('\n');
}

function eventLine(e: VsysEvent): string {
  const where = [e.service, e.slice].filter((x) => x !== null).join('/');
  return `${e.time}  ${e.level.padEnd(5)}  ${where ? `${where}: ` : ''}${e.message}`;
}
