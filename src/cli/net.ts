/**
 * `slicectl net ...`: accounts (per slice and node summary, like Scout's
 * /proc/scout/accounts) and port reservations. Registered by main.ts.
 */
import type { Command } from 'commander';
import type { ApiClient } from './client.js';
import { renderKeyValues, renderTable } from '../core/table.js';
import type { AccountRow, AccountsDocument } from '../wire/net.js';
import { describeReservation, type Reservation } from '../core/net.js';
import type { Count } from '../core/accounting.js';

export interface CliHelpers {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

const enc = encodeURIComponent;

function pair(count: Count): string[] {
  return [String(count.packets), String(count.bytes)];
}

function summaryTable(doc: AccountsDocument): string {
  const rows = doc.slices.map((r) => [
    r.slice + (r.deleted ? ' (deleted)' : ''),
    r.network ?? '-',
    ...pair(r.sent),
    ...pair(r.received),
    ...pair(r.loopbackSent),
    ...pair(r.loopbackReceived),
    String(r.conntrackDropped.packets),
  ]);
  rows.push(['TOTAL (no loopback)', '', ...pair(doc.summary.sent), ...pair(doc.summary.received), '', '', '', '', '']);
  return renderTable(
    [
      'SLICE',
      'NETWORK',
      'TX_PKTS',
      'TX_BYTES',
      'RX_PKTS',
      'RX_BYTES',
      'LO_TX_PKTS',
      'LO_TX_BYTES',
      'LO_RX_PKTS',
      'LO_RX_BYTES',
      'CT_DROPS',
    ],
    rows,
    new Set([2, 3, 4, 5, 6, 7, 8, 9, 10]),
  );
}

function sliceTable(row: AccountRow): string {
  return renderKeyValues([
    ['Slice', row.slice + (row.deleted ? ' (deleted; remove with net accounts --remove)' : '')],
    ['Network', row.network ?? '-'],
    ['Sent', `${row.sent.packets} packets, ${row.sent.bytes} bytes`],
    ['Received', `${row.received.packets} packets, ${row.received.bytes} bytes`],
    ['Loopback sent', `${row.loopbackSent.packets} packets, ${row.loopbackSent.bytes} bytes`],
    ['Loopback received', `${row.loopbackReceived.packets} packets, ${row.loopbackReceived.bytes} bytes`],
    ['Conntrack drops', `${row.conntrackDropped.packets} packets, ${row.conntrackDropped.bytes} bytes (new connections over the limit)`],
  ]);
}

export function registerNetCommands(program: Command, { client, print }: CliHelpers): void {
  const net = program.command('net').description('slice networking: packet accounts and port reservations');

  net
    .command('accounts [slice]')
    .description('packets and bytes per slice (one slice, or every slice and the node total); bytes are IP bytes')
    .option('--remove <slice>', 'drop the counts of a deleted slice')
    .action(async (slice: string | undefined, options: { remove?: string }, command: Command) => {
      if (options.remove !== undefined) {
        const result = await client(command).delete<{ removed: string }>(`/v1/net/accounts/${enc(options.remove)}`);
        print(command, result, () => `removed the counts of slice ${options.remove}`);
        return;
      }
      if (slice !== undefined) {
        const row = await client(command).get<AccountRow>(`/v1/net/accounts/${enc(slice)}`);
        print(command, row, () => sliceTable(row));
        return;
      }
      const doc = await client(command).get<AccountsDocument>('/v1/net/accounts');
      print(command, doc, () => summaryTable(doc));
    });

  net
    .command('reserve <slice> <address> <protocol> <port>')
    .description("reserve (address, tcp|udp, port) for a slice: traffic to it reaches the slice's namespace")
    .action(async (slice: string, address: string, protocol: string, port: string, _options: unknown, command: Command) => {
      const r = await client(command).post<Reservation>('/v1/net/reservations', { slice, address, protocol, port });
      print(command, r, () => `reserved ${describeReservation(r)} for slice ${r.slice}`);
    });

  net
    .command('release <address> <protocol> <port>')
    .description('release a reservation; the port is free at once')
    .action(async (address: string, protocol: string, port: string, _options: unknown, command: Command) => {
      const r = await client(command).delete<Reservation>(`/v1/net/reservations/${enc(protocol)}/${enc(address)}/${enc(port)}`);
      print(command, r, () => `released ${describeReservation(r)} (was slice ${r.slice})`);
    });

  net
    .command('list')
    .description('list port reservations')
    .action(async (_options: unknown, command: Command) => {
      const list = await client(command).get<Reservation[]>('/v1/net/reservations');
      print(command, list, () =>
        list.length
          ? renderTable(
              ['SLICE', 'PROTO', 'ADDRESS', 'PORT'],
              list.map((r) => [r.slice, r.protocol, r.address, String(r.port)]),
            )
          : 'no reservations',
      );
    });
}
