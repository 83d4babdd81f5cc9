/**
 * I/O (registered under /v1/io): the node's block devices with their schedulers and whether
 * io.weight acts on each (and why not), switching a device the operator names to BFQ; and
 * the warnings attached to allocation changes whose io.weight cannot act (weights act only
 * through BFQ; caps act on any scheduler).
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from '../agent.js';
import type { Views } from '../views.js';
import { parseInput, IO_WEIGHT_DEFAULT } from '../../core/model.js';
import { weightNoEffect } from '../../core/io.js';
import { enableBfq, listBlockDevices, weightConditions } from '../../kernel/block-devices.js';
import type { IoDeviceView } from '../../wire/io.js';
import type { IoView } from '../../wire/slices.js';

export interface IoRoutesOptions {
  agent: SliceAgent;
  views: Views;
}

const deviceBody = z.object({ device: z.string().min(1, 'must name a device') }).strict();

export const ioRoutes: FastifyPluginAsync<IoRoutesOptions> = async (app, { agent, views }) => {
  app.get('/devices', async (): Promise<IoDeviceView[]> => {
    const conditions = weightConditions(agent.backend.ioWeightUnavailable());
    return listBlockDevices().map((d) => ({ ...d, weightNoEffect: weightNoEffect(d, conditions, 'DEV') }));
  });
  app.post('/enable-bfq', async (request) => {
    const { device } = parseInput(deviceBody, request.body, 'enable-bfq');
    const result = await enableBfq(device);
    views.forgetDevices();
    // Loading the module made BFQ's weight files appear: the stored weights act from now on.
    await agent.refreshIoWeights();
    return { ...result, scheduler: 'bfq' };
  });
};

/** Warnings for a change that set I/O: why a non-default weight has no effect (the view's notes). */
export function ioWarnings(io: IoView, touchedIo: boolean): string[] {
  if (!touchedIo || io.weight === IO_WEIGHT_DEFAULT) return [];
  return io.weightNoEffect ?? [];
}

/** A view with the warnings of the change that produced it (omitted when there are none). */
export function withWarnings<T extends object>(view: T, input: { io?: unknown }): T & { warnings?: string[] } {
  // A view without io (a slice only on other nodes) has no local devices to warn about.
  if (!('io' in view)) return view;
  const warnings = ioWarnings(view.io as IoView, input.io !== undefined);
  return warnings.length > 0 ? { ...view, warnings } : view;
}
