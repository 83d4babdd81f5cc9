/**
 * Cluster tasks under /v1/tasks (daemon/tasks.ts): submit, list, show, wait for the start,
 * output (NDJSON, followed with ?follow=true), stop, signal and remove; on the admin socket.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../../core/model.js';
import { assertTaskId, parseTaskRequest } from '../../core/tasks.js';
import { readSessionOf } from '../../kernel/node-stats.js';
import { checkNodeName } from '../../core/membership.js';
import type { TaskList } from '../../wire/tasks.js';
import type { TaskService } from '../tasks.js';
import { PEER_SIGNALS } from '../peer.js';

export interface TaskRoutesOptions {
  tasks: TaskService;
}

type IdParams = { Params: { id: string }; Querystring: { follow?: string; timeout?: string } };

const signalBody = z.object({ signal: z.enum(PEER_SIGNALS) }).strict();
const migrateBody = z.object({ to: z.string().optional() }).strict();
const MAX_START_WAIT_MS = 60_000;

export const taskRoutes: FastifyPluginAsync<TaskRoutesOptions> = async (app, { tasks }) => {
  app.post('', async (request, reply) => {
    // The caller's pid places the task by its process set, as for slicectl exec.
    const body = (request.body ?? {}) as Record<string, unknown>;
    const { pid, ...rest } = typeof body === 'object' && !Array.isArray(body) ? body : {};
    const requester = Number.isSafeInteger(pid) && (pid as number) > 0 ? (pid as number) : 0;
    const view = await tasks.submit(parseTaskRequest(rest), { pid: requester, sessionId: requester > 0 ? readSessionOf(requester) : null });
    return reply.code(201).send(view);
  });
  app.get('', async (): Promise<TaskList> => ({ tasks: await tasks.list() }));
  app.get<IdParams>('/:id', async (request) => tasks.show(assertTaskId(request.params.id)));
  app.get<IdParams>('/:id/started', async (request) => {
    const timeout = Math.min(MAX_START_WAIT_MS, Math.max(0, Number(request.query.timeout ?? 10_000) || 0));
    return tasks.started(assertTaskId(request.params.id), timeout);
  });
  app.get<IdParams>('/:id/logs', async (request, reply) => {
    const abort = new AbortController();
    request.raw.once('close', () => abort.abort());
    const stream = await tasks.logs(assertTaskId(request.params.id), request.query.follow === 'true', abort.signal);
    reply.type('application/x-ndjson');
    return reply.send(stream);
  });
  app.post<IdParams>('/:id/stop', async (request) => tasks.stop(assertTaskId(request.params.id)));
  app.post<IdParams>('/:id/migrate', async (request) => {
    const { to } = parseInput(migrateBody, request.body ?? {}, 'migrate');
    return tasks.migrate(assertTaskId(request.params.id), to === undefined ? null : checkNodeName(to), 'migrated by hand');
  });
  app.post<IdParams>('/:id/signal', async (request) => {
    const { signal } = parseInput(signalBody, request.body, 'signal');
    return tasks.signal(assertTaskId(request.params.id), signal);
  });
  app.delete<IdParams>('/:id', async (request) => {
    const id = assertTaskId(request.params.id);
    await tasks.remove(id);
    return { deleted: id };
  });
};
