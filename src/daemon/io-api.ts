/**
 * I/O routes of the API: the node's block devices with their schedulers and whether
 * io.weight acts on each (and why not), switching a device the operator names to BFQ, and
 * the warnings attached to allocation changes whose io.weight cannot act (weights act only
 * through BFQ; caps act on any scheduler).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from './agent.js';
import type { Views } from './views.js';
import { parseInput, IO_WEIGHT_DEFAULT } from '../core/model.js';
import { weightNoEffect } from '../core/io.js';
import { enableBfq, listBlockDevices, weightConditions } from '../kernel/block-devices.js';
import type { IoDeviceView } from '../wire/io.js';
import type { IoView } from '../wire/slices.js';

const deviceBody = z.object({ device: z.string().min(1, 'must name a device') }).strict();

/** The I/O routes, registered by buildApi beside its own (a route module, as the tree's and net's are). */
export function ioRoutes(agent: SliceAgent, views: Views): (app: FastifyInstance) => void {
  return (app: FastifyInstance) => {
    app.get('/v1/io/devices', async (): Promise<IoDeviceView[]> => {
      const conditions = weightConditions(agent.backend.ioWeightUnavailable());
      return listBlockDevices().map((d) => ({ ...d, weightNoEffect: weightNoEffect(d, conditions, 'DEV') }));
    });
    app.post('/v1/io/enable-bfq', async (request) => {
      const { device } = parseInput(deviceBody, request.body, 'enable-bfq');
      const result = await enableBfq(device);
      views.forgetDevices();
      // Loading the module made BFQ's weight files appear: the stored weights act from now on.
      await agent.refreshIoWeights();
      return { ...result, scheduler: 'bfq' };
    });
  };
}

/** Warnings for a change that set I/O: why a non-default weight has no effect (the view's notes). */
export function ioWarnings(io: IoView, touchedIo: boolean): string[] {
  if (!touchedIo || io.weight === IO_WEIGHT_DEFAULT) return [];
  return io.weightNoEffect ?? [];
}
