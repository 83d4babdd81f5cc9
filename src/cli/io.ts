/** `slicectl io`: block devices and their I/O schedulers. sliced switches a scheduler only here, on request. */
import type { Command } from 'commander';
import type { ApiClient } from './client.js';
import { renderTable } from './format.js';
import type { BlockDevice } from '../kernel/block-devices.js';

export interface IoCliContext {
  client(command: Command): ApiClient;
  print(command: Command, json: unknown, text: () => string): void;
}

export function registerIoCommands(program: Command, ctx: IoCliContext): void {
  const io = program.command('io').description('block devices: schedulers, and switching a device to BFQ so io.weight applies');

  io.command('devices')
    .description('list the node\'s block devices with MAJ:MIN and their active I/O scheduler')
    .action(async (_options: unknown, command: Command) => {
      const devices = await ctx.client(command).get<BlockDevice[]>('/v1/io/devices');
      ctx.print(command, devices, () =>
        renderTable(
          ['DEVICE', 'MAJ:MIN', 'SCHEDULER', 'AVAILABLE'],
          devices.map((d) => [d.name, d.device, d.scheduler ?? '-', d.schedulers.join(' ')]),
        ),
      );
    });

  io.command('enable-bfq <device>')
    .description('switch a block device (path or MAJ:MIN) to the BFQ scheduler, which io.weight needs; caps work without it')
    .action(async (device: string, _options: unknown, command: Command) => {
      const result = await ctx.client(command).post<{ device: string; previous: string | null }>('/v1/io/enable-bfq', { device });
      ctx.print(command, result, () =>
        result.previous === 'bfq' ? `${device} (${result.device}) already uses bfq` : `${device} (${result.device}) now uses bfq (was ${result.previous ?? 'unknown'})`,
      );
    });
}
