/**
 * vsys (registered under /v1/vsys; root and the admin group only, like the rest of the
 * admin API): the services offered, each slice's FIFOs, the vsys log, and calls made on a slice's behalf.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../../core/model.js';
import { assertValidName } from '../../core/names.js';
import { SlicedError } from '../../core/errors.js';
import type { VsysBroker } from '../../vsys/broker.js';

const callBody = z
  .object({
    slice: z.string(),
    /** The input, base64-encoded (binary-safe). */
    input: z
      .string()
      .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
      .default(''),
  })
  .strict();

const logQuery = z
  .object({
    service: z.string().optional(),
    slice: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(10_000).optional(),
  })
  .strict();

export interface VsysRoutesOptions {
  broker: VsysBroker;
}

export const vsysRoutes: FastifyPluginAsync<VsysRoutesOptions> = async (app, { broker }) => {
  // '' and not '/': the prefix alone, without also answering /v1/vsys/.
  app.get('', async () => broker.status());
  app.get('/services', async () => broker.listServices());

  app.get<{ Params: { name: string } }>('/slices/:name', async (request) =>
    broker.sliceView(assertValidName('slice', request.params.name)),
  );

  app.get('/log', async (request) => {
    const query = parseInput(logQuery, request.query, 'vsys log');
    if (query.service !== undefined) assertValidName('service', query.service);
    if (query.slice !== undefined) assertValidName('slice', query.slice);
    return broker.log(query);
  });

  // Base64 makes the body 4/3 of the input; leave room for the JSON around it.
  const bodyLimit = Math.ceil((broker.limits.maxInputBytes * 4) / 3) + 4096;
  app.post<{ Params: { name: string } }>('/services/:name/call', { bodyLimit }, async (request) => {
    const service = assertValidName('service', request.params.name);
    const body = parseInput(callBody, request.body, 'vsys call');
    const slice = assertValidName('slice', body.slice);
    const input = Buffer.from(body.input, 'base64');
    if (input.length > broker.limits.maxInputBytes) {
      throw new SlicedError(
        'EINVAL',
        `input of ${input.length} bytes is over the vsys input limit of ${broker.limits.maxInputBytes} bytes`,
      );
    }
    return broker.adminCall(slice, service, input);
  });
};
