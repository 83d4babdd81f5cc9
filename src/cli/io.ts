/** `slicectl io`: block devices and their I/O schedulers. sliced switches a scheduler only here, on request. */
import type { Command } from 'commander';
import type { ApiClient } from './client.js';
import { renderTable } from './format.js';
import type { BfqResult, BlockDevice } from '../kernel/block-devices.js';

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
          ['DEVICE', 'MAJ:MIN', 'SCHEDULER', 'STRICT', 'AVAILABLE'],
          devices.map((d) => [d.name, d.device, d.scheduler ?? '-', d.bfqStrict === null ? '-' : d.bfqStrict ? 'yes' : 'no', d.schedulers.join(' ')]),
        ),
      );
    });

  io.command('enable-bfq <device>')
    .description('switch a block device (path or MAJ:MIN) to the BFQ scheduler, which io.weight needs; caps work without it')
    .option('--strict', 'hold weights strictly: BFQ strict_guarantees on, low_latency off (shares follow the weights; less total throughput)')
    .option('--no-strict', "BFQ's defaults: strict_guarantees off, low_latency on (more throughput; shares drift from the weights)")
    .action(async (device: string, options: { strict?: boolean }, command: Command) => {
      const body = options.strict === undefined ? { device } : { device, strict: options.strict };
      const result = await ctx.client(command).post<BfqResult>('/v1/io/enable-bfq', body);
      const how = result.strict ? 'strict weights' : "BFQ's default weighting";
      ctx.print(command, result, () =>
        result.previous === 'bfq'
          ? `${device} (${result.device}) already uses bfq, with ${how}`
          : `${device} (${result.device}) now uses bfq (was ${result.previous ?? 'unknown'}), with ${how}`,
      );
    });
}
