/**
 * The HTTP API on the root-only Unix socket. Every body is validated with the zod schemas of
 * src/core/model.ts; errors come back as {"error": {"code", "message"}} with a status that
 * matches the code (see httpStatusOf).
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from './agent.js';
import type { Views } from './views.js';
import type { IoView } from '../wire/slices.js';
import { domainCreateSchema, domainUpdateSchema, parseInput, sliceCreateSchema, sliceUpdateSchema } from '../core/model.js';
import { assertValidName } from '../core/names.js';
import { pidSchema } from '../core/pids.js';
import { SlicedError, httpStatusOf, isSlicedError } from '../core/errors.js';
import { ioRoutes, ioWarnings } from './io-api.js';

/** A view with the warnings of the change that produced it (omitted when there are none). */
function withWarnings<T extends { io: IoView }>(view: T, input: { io?: unknown }): T & { warnings?: string[] } {
  const warnings = ioWarnings(view.io, input.io !== undefined);
  return warnings.length > 0 ? { ...view, warnings } : view;
}

/** Asks the schedulers whether a new task may start (throws when one refuses). */
export type ExecPlacement = (slice: string, parentPid: number) => void;
import { registerNetRoutes } from './net-api.js';

const pidBody = z.object({ pid: pidSchema }).strict();
const memberBody = z.object({ member: z.string() }).strict();

export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (isSlicedError(err)) {
    return reply.code(httpStatusOf[err.code]).send({ error: { code: err.code, message: err.message } });
  }
  const fastifyError = err as { statusCode?: number; message?: string };
  if (fastifyError.statusCode && fastifyError.statusCode < 500) {
    return reply.code(400).send({ error: { code: 'EINVAL', message: `bad request: ${fastifyError.message}` } });
  }
  return reply.code(500).send({ error: { code: 'EIO', message: `internal error: ${(err as Error).message ?? String(err)}` } });
}

/** Routes of other modules (the config tree, ...), registered with the same error handling. */
export type RouteModule = (app: FastifyInstance) => void;

/**
 * JSON bodies: fastify's own parser (secure-json-parse, which refuses prototype-poisoning
 * keys), with two differences. An empty body is no body: `curl -X DELETE -H 'content-type:
 * application/json'` sends one, and routes that need a body say so themselves. A refusal
 * says why: the forbidden key, or where the syntax breaks, instead of "not valid JSON".
 */
function registerJsonParser(app: FastifyInstance): void {
  const secureParse = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    secureParse(request, text, (err, value) => (err ? done(jsonProblem(text), undefined) : done(null, value)));
  });
}

/** Why the secure parser refused `text`: a forbidden key (named) or a syntax error (with its position). */
function jsonProblem(text: string): SlicedError {
  try {
    JSON.parse(text, (key: string, value: unknown) => {
      // The same keys secure-json-parse refuses: either could change an object's prototype
      // when the body is later merged into another object.
      if (key === '__proto__') throw new ForbiddenKey('__proto__');
      if (key === 'constructor' && value !== null && typeof value === 'object' && Object.hasOwn(value, 'prototype')) {
        throw new ForbiddenKey('constructor.prototype');
      }
      return value;
    });
  } catch (err) {
    if (err instanceof ForbiddenKey) {
      return new SlicedError(
        'EINVAL',
        `the key "${err.key}" is not allowed in a request body (it could change object prototypes); remove it`,
      );
    }
    return new SlicedError('EINVAL', `the body is not valid JSON: ${(err as Error).message}`);
  }
  return new SlicedError('EINVAL', 'the body was refused by the JSON parser');
}

class ForbiddenKey extends Error {
  constructor(readonly key: string) {
    super(key);
  }
}

export function buildApi(
  agent: SliceAgent,
  views: Views,
  modules: readonly RouteModule[] = [],
  placement?: ExecPlacement,
): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  registerJsonParser(app);
  app.setErrorHandler((err, _request, reply) => sendError(reply, err));
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'ENOENT', message: `no such endpoint: ${request.method} ${request.url}` } }),
  );

  type NameParams = { Params: { name: string } };

  app.get('/v1/node', async () => views.node());
  app.get('/v1/status', async () => ({ node: views.node(), slices: views.slices(true), domains: views.domains(true) }));

  app.get('/v1/slices', async () => views.slices(false));
  app.post('/v1/slices', async (request, reply) => {
    const input = parseInput(sliceCreateSchema, request.body, 'slice');
    const spec = await agent.createSlice(input);
    return reply.code(201).send(withWarnings(views.slice(spec.name, false), input));
  });
  app.get<NameParams>('/v1/slices/:name', async (request) => views.slice(assertValidName('slice', request.params.name), true));
  app.patch<NameParams>('/v1/slices/:name', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const input = parseInput(sliceUpdateSchema, request.body, 'slice');
    await agent.updateSlice(name, input);
    return withWarnings(views.slice(name, false), input);
  });
  app.delete<NameParams>('/v1/slices/:name', async (request) => {
    const name = assertValidName('slice', request.params.name);
    await agent.deleteSlice(name);
    return { deleted: name };
  });
  app.post<NameParams>('/v1/slices/:name/attach', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const { pid } = parseInput(pidBody, request.body, 'attach');
    await agent.attach(name, pid);
    return { slice: name, pid };
  });
  app.post<NameParams>('/v1/slices/:name/exec-plan', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const { pid } = parseInput(pidBody, request.body, 'exec');
    placement?.(name, pid);
    await agent.net?.settle(); // the command's traffic is counted from its first packet
    return agent.execPlan(name, pid);
  });

  app.get('/v1/domains', async () => views.domains(false));
  app.post('/v1/domains', async (request, reply) => {
    const input = parseInput(domainCreateSchema, request.body, 'domain');
    const spec = await agent.createDomain(input);
    return reply.code(201).send(withWarnings(views.domain(spec.name, false), input));
  });
  app.get<NameParams>('/v1/domains/:name', async (request) => views.domain(assertValidName('domain', request.params.name), true));
  app.patch<NameParams>('/v1/domains/:name', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const input = parseInput(domainUpdateSchema, request.body, 'domain');
    await agent.updateDomain(name, input);
    return withWarnings(views.domain(name, false), input);
  });
  app.delete<NameParams>('/v1/domains/:name', async (request) => {
    const name = assertValidName('domain', request.params.name);
    await agent.deleteDomain(name);
    return { deleted: name };
  });
  app.post<NameParams>('/v1/domains/:name/members', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const { member } = parseInput(memberBody, request.body, 'domain member');
    await agent.moveMember(assertValidName('member', member), name);
    return views.domain(name, false);
  });
  app.delete<{ Params: { name: string; member: string } }>('/v1/domains/:name/members/:member', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const member = assertValidName('member', request.params.member);
    const domain = views.domain(name, false);
    if (!domain.members.slices.includes(member) && !domain.members.domains.includes(member)) {
      throw new SlicedError('ENOENT', `${member} is not a member of domain ${name}`);
    }
    await agent.moveMember(member, agent.state.domains.get(name)!.parent);
    return views.domain(name, false);
  });

  for (const register of [ioRoutes(agent, views), ...modules]) register(app);
  registerNetRoutes(app, agent);
  return app;
}
