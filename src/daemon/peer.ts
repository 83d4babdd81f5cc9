/**
 * The node-to-node channel: a small TCP API other agents call for what only this node has,
 * a task's output and its processes (task logs, signals). Every request must carry the
 * cluster's credentials (peer-auth.ts): the shared token, or a client certificate signed by
 * the cluster CA; anything else is answered 401 before a route runs. Slices are kept away
 * from its port by the cluster guard (nft), like etcd's.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Logger } from 'pino';
import { SlicedError } from '../core/errors.js';
import { assertTaskId } from '../core/tasks.js';
import { parseInput } from '../core/model.js';
import { parseListen } from '../core/net-address.js';
import type { PeerCredentials } from '../cluster/peer-auth.js';
import { errorBody, errorHandler, frameworkErrorHandler, sendError } from './http/errors.js';
import { registerJsonParser } from './http/json-body.js';
import { logLines } from './task-log.js';
import type { TaskRunner } from './task-runner.js';

export interface PeerServerOptions {
  node: string;
  /** HOST:PORT, [IPv6]:PORT or :PORT. */
  listen: string;
  credentials: PeerCredentials;
  runner: TaskRunner;
  logRoot: string;
  log: Logger;
}

export const PEER_SIGNALS = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGSTOP', 'SIGCONT'] as const;
const signalBody = z.object({ signal: z.enum(PEER_SIGNALS) }).strict();

type IdParams = { Params: { id: string }; Querystring: { follow?: string } };

/** Start the channel; resolves to the server (its address() has the port). */
export async function listenPeer(opts: PeerServerOptions): Promise<FastifyInstance> {
  const { credentials: c } = opts;
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    frameworkErrors: frameworkErrorHandler,
    ...(c.kind === 'tls' ? { https: { ca: c.ca, cert: c.cert, key: c.key, requestCert: true, rejectUnauthorized: false } } : {}),
  }) as unknown as FastifyInstance;
  registerJsonParser(app);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new SlicedError('ENOENT', `no such endpoint: ${request.method} ${request.url}`)),
  );
  const expected = c.kind === 'token' ? digest(c.token) : null;
  app.addHook('onRequest', async (request, reply) => {
    const refusal =
      c.kind === 'token' ? tokenRefusal(request.headers.authorization, expected!) : certificateRefusal(request.raw.socket as TLSSocket);
    if (refusal !== null) {
      opts.log.warn({ from: request.ip, url: request.url, refusal }, 'peer channel: a request without valid credentials');
      return reply.code(401).send(errorBody('EPERM', refusal));
    }
  });

  app.get('/peer/v1/health', async () => ({ node: opts.node }));
  app.get<IdParams>('/peer/v1/tasks/:id/logs', async (request, reply) => {
    const id = assertTaskId(request.params.id);
    const abort = new AbortController();
    request.raw.once('close', () => abort.abort());
    const follow = request.query.follow === 'true';
    reply.type('application/x-ndjson');
    return reply.send(Readable.from(logLines(opts.logRoot, id, follow, () => opts.runner.isActive(id), abort.signal)));
  });
  app.post<IdParams>('/peer/v1/tasks/:id/signal', async (request) => {
    const id = assertTaskId(request.params.id);
    const { signal } = parseInput(signalBody, request.body, 'signal');
    opts.runner.signal(id, signal);
    return { task: id, node: opts.node, signal };
  });

  const { host, port } = parseListen(opts.listen)!;
  await app.listen({ host: host === '' ? '::' : host, port });
  return app;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function tokenRefusal(header: string | undefined, expected: Buffer): string | null {
  const m = header === undefined ? null : /^Bearer (.+)$/.exec(header);
  if (!m) return "no credentials: the channel needs the cluster's token (Authorization: Bearer ...)";
  // Digests have one length, so the comparison takes the same time whatever was sent.
  return timingSafeEqual(digest(m[1]!), expected) ? null : "the token is not the cluster's";
}

function certificateRefusal(socket: TLSSocket): string | null {
  if (socket.authorized) return null;
  const peer = socket.getPeerCertificate?.();
  return !peer || Object.keys(peer).length === 0
    ? 'no client certificate: the channel needs one signed by the cluster CA'
    : `the client certificate is not signed by the cluster CA (${String(socket.authorizationError)})`;
}
