/** `slicectl io`: block devices and their I/O schedulers. sliced switches a scheduler only here, on request. */
import type { Command } from 'commander';
import type { ApiClient } from './client.js';
import { renderTable } from '../core/table.js';
import type { IoDeviceView } from '../wire/io.js';

export interface IoCliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

export function registerIoCommands(program: Command, ctx: IoCliContext): void {
  const io = program.command('io').description('block devices: schedulers, and switching a device to BFQ so io.weight applies');

  io.command('devices')
    .description("list the node's block devices with MAJ:MIN, their active I/O scheduler, and whether io.weight acts there (and why not)")
    .action(async (_options: unknown, command: Command) => {
      const devices = await ctx.client(command).get<IoDeviceView[]>('/v1/io/devices');
      ctx.print(command, devices, () => {
        const table = renderTable(
          ['DEVICE', 'MAJ:MIN', 'SCHEDULER', 'AVAILABLE', 'IO.WEIGHT'],
          devices.map((d) => [
            d.name,
            d.device,
            d.scheduler ?? '-',
            d.schedulers.join(' '),
            d.weightNoEffect === null ? 'applies' : 'no effect',
          ]),
        );
        // One line per reason, naming the devices it holds for.
        const reasons = new Map<string, string[]>();
        for (const d of devices)
          if (d.weightNoEffect !== null) reasons.set(d.weightNoEffect, [...(reasons.get(d.weightNoEffect) ?? []), d.name]);
        return [table, ...[...reasons].map(([why, names]) => `io.weight has no effect on ${names.join(', ')}: ${why}`)].join('\n');
      });
    });

  io.command('enable-bfq <device>')
    .description('switch a block device (path or MAJ:MIN) to the BFQ scheduler, which io.weight needs; caps work without it')
    .action(async (device: string, _options: unknown, command: Command) => {
      const result = await ctx.client(command).post<{ device: string; previous: string | null }>('/v1/io/enable-bfq', { device });
      ctx.print(command, result, () =>
        result.previous === 'bfq'
          ? `${device} (${result.device}) already uses bfq`
          : `${device} (${result.device}) now uses bfq (was ${result.previous ?? 'unknown'})`,
      );
    });
}
