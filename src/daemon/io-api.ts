/**
 * I/O routes of the API: the node's block devices with their schedulers, switching a device
 * the operator names to BFQ, and the warnings attached to allocation changes whose io.weight
 * cannot act (weights act only through BFQ; caps act on any scheduler).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { RouteModule } from './api.js';
import { parseInput, IO_WEIGHT_DEFAULT, type IoAllocation } from '../core/model.js';
import { enableBfq, ioWeightWarnings, listBlockDevices } from '../kernel/block-devices.js';

const deviceBody = z.object({ device: z.string().min(1, 'must name a device') }).strict();

export const ioRoutes: RouteModule = (app: FastifyInstance) => {
  app.get('/v1/io/devices', async () => listBlockDevices());
  app.post('/v1/io/enable-bfq', async (request) => {
    const { device } = parseInput(deviceBody, request.body, 'enable-bfq');
    return { ...enableBfq(device), scheduler: 'bfq' };
  });
};

/** Warnings for a change that set I/O: a non-default weight where no named device (or none at all) uses BFQ. */
export function ioWarnings(io: IoAllocation, touchedIo: boolean): string[] {
  if (!touchedIo || io.weight === IO_WEIGHT_DEFAULT) return [];
  return ioWeightWarnings(io.max.map((cap) => cap.device));
}
