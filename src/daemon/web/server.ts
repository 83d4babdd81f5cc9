/**
 * The dashboard (sliced --web HOST:PORT): the page and its assets, built into the package
 * (dist/web, served precompressed, nothing from a CDN), and behind them, for a signed-in
 * browser only:
 *   POST/GET/DELETE /api/session  sign in with the token (auth.ts), look (which signs in a
 *                                 client certificate of the configured CA), sign out;
 *   GET /api/live                 server-sent events, one frame per control period (live.ts);
 *   /api/v1/...                   the admin API's views and a few actions (allowed.ts), answered
 *                                 by the admin API itself, with its errors.
 * An action also needs the session's CSRF token in a header and, when the browser sends one,
 * an Origin of this server. Every answer forbids framing and sniffing; the page loads only
 * its own scripts (Content-Security-Policy).
 */
import { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import type { Logger } from 'pino';
import { SlicedError } from '../../core/errors.js';
import { errorHandler, frameworkErrorHandler, sendError } from '../http/errors.js';
import { registerJsonParser } from '../http/json-body.js';
import { CSRF_HEADER, SESSION_COOKIE, SESSION_IDLE_MS, type WebSessions } from './auth.js';
import { webAccess } from './allowed.js';
import type { LiveFeed } from './live.js';

export interface WebServerOptions {
  host: string;
  port: number;
  /** HTTPS; with `ca`, clients whose certificate it signed are signed in without the token. */
  tls: { cert: Buffer; key: Buffer; ca: Buffer | null } | null;
  sessions: WebSessions;
  /** The admin API, which answers /api/v1/... (through inject: no socket in between). */
  admin: FastifyInstance;
  feed: LiveFeed;
  /** The built page (dist/web). */
  assets: string;
  log: Logger;
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};
/** Comments on the live stream this often keep proxies from closing it. */
const KEEPALIVE_MS = 15_000;

export async function startWebServer(opts: WebServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // Live streams never go idle: closing must not wait for them.
    forceCloseConnections: true,
    frameworkErrors: frameworkErrorHandler,
    ...(opts.tls
      ? {
          https: {
            cert: opts.tls.cert,
            key: opts.tls.key,
            // Asked for, not required: without one the token signs in as before.
            ...(opts.tls.ca ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false } : {}),
          },
        }
      : {}),
  }) as unknown as FastifyInstance;
  registerJsonParser(app);
  app.setErrorHandler(errorHandler);
  await app.register(fastifyCookie);
  app.addHook('onSend', async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
  });
  await app.register(fastifyStatic, { root: opts.assets, preCompressed: true, index: false, wildcard: false });
  // The page itself at "/" (the plugin's index option finds no precompressed index there).
  app.get('/', (_request, reply) => reply.sendFile('index.html'));

  const cookieId = (request: FastifyRequest): string | undefined => request.cookies[SESSION_COOKIE];
  // Reads need a session or a certificate; actions need a session's CSRF token too (proxy()),
  // because a browser sends its certificate to any site's requests as it does cookies.
  const signedIn = (request: FastifyRequest): void => {
    if (!opts.sessions.session(cookieId(request)) && certifiedAs(request) === null)
      throw new SlicedError('EACCES', 'sign in first: this needs a session of the dashboard');
  };
  const setSession = (reply: FastifyReply, id: string): void => {
    reply.setCookie(SESSION_COOKIE, id, {
      httpOnly: true,
      sameSite: 'strict',
      secure: opts.tls !== null,
      path: '/',
      maxAge: SESSION_IDLE_MS / 1000,
    });
  };

  app.post('/api/session', async (request, reply) => {
    const token = (request.body as { token?: unknown } | null)?.token;
    const { id, csrf } = opts.sessions.signIn(token, request.ip);
    setSession(reply, id);
    opts.log.info({ client: request.ip }, 'dashboard: signed in');
    return { csrf };
  });
  app.get('/api/session', async (request, reply) => {
    const session = opts.sessions.session(cookieId(request));
    if (session) return { csrf: session.csrf };
    const subject = certifiedAs(request);
    if (subject === null) throw new SlicedError('EACCES', 'not signed in');
    const { id, csrf } = opts.sessions.open();
    setSession(reply, id);
    opts.log.info({ client: request.ip, certificate: subject }, 'dashboard: signed in by client certificate');
    return { csrf };
  });
  app.delete('/api/session', async (request, reply) => {
    opts.sessions.signOut(cookieId(request));
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { signedOut: true };
  });

  app.get('/api/live', (request, reply) => {
    try {
      signedIn(request);
    } catch (err) {
      return sendError(reply, err);
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const unsubscribe = opts.feed.subscribe((json) => {
      // A page that does not read is not waited for: it gets the next frame it can take.
      if (!res.writableNeedDrain) res.write(`data: ${json}\n\n`);
    });
    const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
    res.on('close', () => {
      clearInterval(keepalive);
      unsubscribe();
    });
  });

  app.route({
    method: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'PUT'],
    url: '/api/v1/*',
    handler: async (request, reply) => proxy(opts, request, reply, signedIn),
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new SlicedError('ENOENT', `no such page: ${request.method} ${request.url}`)));

  await app.listen({ host: opts.host, port: opts.port });
  return app;
}

/** The subject of a client certificate the configured CA signed, or null. */
function certifiedAs(request: FastifyRequest): string | null {
  const socket = request.raw.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return null;
  const subject = socket.getPeerCertificate().subject as { CN?: string | string[] } | undefined;
  const cn = subject?.CN;
  return (Array.isArray(cn) ? cn[0] : cn) ?? '(no common name)';
}

async function proxy(
  opts: WebServerOptions,
  request: FastifyRequest,
  reply: FastifyReply,
  signedIn: (request: FastifyRequest) => void,
): Promise<FastifyReply> {
  const url = request.url.slice('/api'.length);
  const path = url.split('?')[0]!;
  const access = webAccess(request.method, path);
  if (access === null) throw new SlicedError('EPERM', `the dashboard does not offer ${request.method} ${path}; use slicectl on the node`);
  signedIn(request);
  if (access === 'admin') {
    if (!opts.sessions.csrfMatches(request.cookies[SESSION_COOKIE], request.headers[CSRF_HEADER])) {
      throw new SlicedError('EPERM', `an action needs the session's CSRF token in the ${CSRF_HEADER} header`);
    }
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `${opts.tls ? 'https' : 'http'}://${request.headers.host}`) {
      throw new SlicedError('EPERM', `an action from another site (Origin ${origin}) is refused`);
    }
  }
  const answer = await opts.admin.inject({
    method: request.method as 'GET',
    url,
    ...(request.body !== undefined ? { payload: JSON.stringify(request.body), headers: { 'content-type': 'application/json' } } : {}),
  });
  if (access === 'admin')
    opts.log.info({ client: request.ip, method: request.method, path, status: answer.statusCode }, 'dashboard: action');
  return reply
    .code(answer.statusCode)
    .header('content-type', answer.headers['content-type'] ?? 'application/json')
    .header('cache-control', 'no-store')
    .send(answer.body);
}
