/**
 * Slices (registered under /v1/slices): list, create, show, change, delete, attach a
 * process, and the exec plan of `slicectl exec`.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from '../agent.js';
import type { Views } from '../views.js';
import { parseInput, sliceCreateSchema, sliceUpdateSchema } from '../../core/model.js';
import { assertValidName } from '../../core/names.js';
import { pidSchema } from '../../core/pids.js';
import { withWarnings } from './io.js';

/** Asks the schedulers whether a new task may start (throws when one refuses). */
export type ExecPlacement = (slice: string, parentPid: number) => void;

export interface SliceRoutesOptions {
  agent: SliceAgent;
  views: Views;
  placement?: ExecPlacement | undefined;
}

const pidBody = z.object({ pid: pidSchema }).strict();

type NameParams = { Params: { name: string } };

export const sliceRoutes: FastifyPluginAsync<SliceRoutesOptions> = async (app, { agent, views, placement }) => {
  // '' and not '/': the prefix alone, without also answering /v1/slices/.
  app.get('', async () => views.slices(false));
  app.post('', async (request, reply) => {
    const input = parseInput(sliceCreateSchema, request.body, 'slice');
    const spec = await agent.createSlice(input);
    return reply.code(201).send(withWarnings(views.slice(spec.name, false), input));
  });
  app.get<NameParams>('/:name', async (request) => views.slice(assertValidName('slice', request.params.name), true));
  app.patch<NameParams>('/:name', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const input = parseInput(sliceUpdateSchema, request.body, 'slice');
    await agent.updateSlice(name, input);
    return withWarnings(views.slice(name, false), input);
  });
  app.delete<NameParams>('/:name', async (request) => {
    const name = assertValidName('slice', request.params.name);
    await agent.deleteSlice(name);
    return { deleted: name };
  });
  app.post<NameParams>('/:name/attach', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const { pid } = parseInput(pidBody, request.body, 'attach');
    await agent.attach(name, pid);
    return { slice: name, pid };
  });
  app.post<NameParams>('/:name/exec-plan', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const { pid } = parseInput(pidBody, request.body, 'exec');
    placement?.(name, pid);
    await agent.net?.settle(); // the command's traffic is counted from its first packet
    return agent.execPlan(name, pid);
  });
};
