/**
 * Read-only views for slices: one Unix socket per slice, <runDir>/slices/<name>.sock, owned
 * by the slice's user with mode 0600. The kernel's file permissions decide who may connect,
 * so a connection on a slice's socket can only come from that slice's user (or root), and
 * it can only read that one slice. All sockets feed a single HTTP server, served by fastify
 * with the read-only plugin of http/slice-view.ts.
 *
 * A tenant must not be able to use up the daemon's file descriptors through its socket: each
 * slice may hold a few connections open at once, all slices together a bounded number, and
 * idle or slow connections are closed. Refused connections get a 503 and are counted (log
 * and metrics), so an operator sees who hits the limit.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { chmodSync, chownSync, mkdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { SliceAgent } from './agent.js';
import type { Views } from './views.js';
import type { TreeService } from '../framework/service.js';
import { errorBody, errorHandler } from './http/errors.js';
import { refuseUrl, sliceViewRoutes } from './http/slice-view.js';

const sliceOfSocket = new WeakMap<Socket, string>();

export interface SliceSocketLimits {
  /** Connections one slice may hold open at once. */
  maxPerSlice: number;
  /** Connections all slice sockets together may hold open at once. */
  maxTotal: number;
  /** Idle time after which a connection is closed; also the longest a request may take to arrive. */
  timeoutMs: number;
}

export const DEFAULT_SLICE_SOCKET_LIMITS: SliceSocketLimits = { maxPerSlice: 16, maxTotal: 1024, timeoutMs: 10_000 };

/** Connection figures of one slice's socket (for metrics). */
export interface SliceSocketStats {
  open: number;
  /** Refused because the slice held its maximum. */
  refusedSlice: number;
  /** Refused because all slice sockets together held theirs. */
  refusedTotal: number;
  /** Closed for being idle or too slow. */
  timedOut: number;
}

/** Refusals are logged at most once per slice in this period, with the count since the last line. */
const REFUSAL_LOG_PERIOD_MS = 60_000;
/** Refused connections kept open briefly so their clients read the 503; beyond this many they close at once. */
const MAX_LINGERING = 32;
const LINGER_MS = 250;

export class SliceSockets {
  private readonly dir: string;
  private readonly servers = new Map<string, { server: NetServer; uid: number | null }>();
  private readonly http: HttpServer;
  private readonly app: FastifyInstance;
  private treeService: TreeService | null = null;
  /** Per slice, kept while the slice exists; an open connection keeps its own reference. */
  private readonly figures = new Map<string, SliceSocketStats & { loggedAt: number; unlogged: number }>();
  private openTotal = 0;
  private lingering = 0;

  constructor(
    runDir: string,
    private readonly agent: SliceAgent,
    views: Views,
    private readonly log: Logger,
    private readonly limits: SliceSocketLimits = DEFAULT_SLICE_SOCKET_LIMITS,
  ) {
    this.dir = join(runDir, 'slices');
    // Every request here is a small GET: one timeout bounds idle time, headers and request alike.
    const timeout = limits.timeoutMs;
    this.http = createHttpServer({
      headersTimeout: timeout,
      requestTimeout: timeout,
      connectionsCheckingInterval: Math.min(timeout, 1000),
    });
    this.http.timeout = timeout; // idle before the first request and between requests
    this.http.keepAliveTimeout = Math.min(timeout, 5000);
    const sliceOf = (socket: Socket): string | undefined => sliceOfSocket.get(socket);
    this.app = Fastify({
      logger: false,
      // The server above, with its timeouts; it never listens: open() hands it the sockets.
      serverFactory: (handler) => this.http.on('request', handler),
      frameworkErrors: (_err, request, reply) => refuseUrl(sliceOf, request, reply),
      clientErrorHandler: nodeClientError,
    });
    this.app.setErrorHandler(errorHandler);
    void this.app.register(sliceViewRoutes, { views, sliceOf, tree: () => this.treeService });
  }

  /** Resolves once the sockets can answer; call before the first sync(). */
  async ready(): Promise<void> {
    await this.app.ready();
  }

  /** Connection figures per slice socket. */
  stats(): Map<string, SliceSocketStats> {
    return new Map(
      [...this.figures].map(([name, f]) => [
        name,
        { open: f.open, refusedSlice: f.refusedSlice, refusedTotal: f.refusedTotal, timedOut: f.timedOut },
      ]),
    );
  }

  /** Lets slices read their own part of the config tree (/slices/<name>). */
  setTree(service: TreeService): void {
    this.treeService = service;
  }

  get directory(): string {
    return this.dir;
  }

  /** Open sockets for new slices, close those of deleted ones, re-own on user change. */
  sync(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    chmodSync(this.dir, 0o755);
    const state = this.agent.state;
    for (const [name, entry] of this.servers) {
      const spec = state.slices.get(name);
      if (!spec || this.agent.uidOf(spec) !== entry.uid) this.close(name);
    }
    for (const spec of [...state.slices.values()]) {
      if (!this.servers.has(spec.name)) this.open(spec.name, this.agent.uidOf(spec));
    }
  }

  private open(name: string, uid: number | null): void {
    const path = join(this.dir, `${name}.sock`);
    try {
      unlinkSync(path);
    } catch {
      // Nothing stale to remove.
    }
    const figures = { open: 0, refusedSlice: 0, refusedTotal: 0, timedOut: 0, loggedAt: 0, unlogged: 0 };
    this.figures.set(name, figures);
    const server = createNetServer((socket) => {
      const full = figures.open >= this.limits.maxPerSlice ? 'slice' : this.openTotal >= this.limits.maxTotal ? 'total' : null;
      if (full !== null) {
        this.refuse(name, socket, full, figures);
        return;
      }
      figures.open++;
      this.openTotal++;
      socket.once('close', () => {
        figures.open--;
        this.openTotal--;
      });
      socket.on('timeout', () => figures.timedOut++); // the HTTP server closes it
      sliceOfSocket.set(socket, name);
      this.http.emit('connection', socket);
    });
    const previousMask = process.umask(0o177); // socket is born 0600, never briefly wider
    server.listen(path, () => {
      try {
        if (uid !== null) chownSync(path, uid, -1);
        chmodSync(path, 0o600);
      } catch (err) {
        this.log.error({ slice: name, err: (err as Error).message }, 'cannot set owner of slice socket');
      }
    });
    process.umask(previousMask);
    server.on('error', (err) => this.log.error({ slice: name, err: err.message }, 'slice socket failed'));
    this.servers.set(name, { server, uid });
  }

  /** Answer 503 and close at once: the descriptor is held only for this one write. */
  private refuse(
    name: string,
    socket: Socket,
    full: 'slice' | 'total',
    figures: SliceSocketStats & { loggedAt: number; unlogged: number },
  ): void {
    if (full === 'slice') figures.refusedSlice++;
    else figures.refusedTotal++;
    const message =
      full === 'slice'
        ? `slice ${name} already holds ${this.limits.maxPerSlice} connections to its socket, the most allowed (sliceSocketMaxConnections); close some and retry`
        : `all slice sockets together hold ${this.limits.maxTotal} connections, the most allowed (sliceSocketMaxTotal); retry later`;
    const body = JSON.stringify(errorBody('EBUSY', message));
    socket.on('error', () => socket.destroy());
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    if (this.lingering < MAX_LINGERING) {
      // Closing with the request unread would reset the connection before the client reads
      // the answer: read and drop what it sends until it closes, for a moment at most.
      this.lingering++;
      socket.resume();
      const timer = setTimeout(() => socket.destroy(), LINGER_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        this.lingering--;
      });
    } else {
      socket.destroy(); // a flood: the answer was written at once (the buffer is empty), close now
    }
    figures.unlogged++;
    const now = Date.now();
    if (now - figures.loggedAt >= REFUSAL_LOG_PERIOD_MS) {
      this.log.warn(
        {
          slice: name,
          refused: figures.unlogged,
          limit: full === 'slice' ? this.limits.maxPerSlice : this.limits.maxTotal,
          open: figures.open,
          openTotal: this.openTotal,
        },
        full === 'slice'
          ? 'slice socket connections refused: the slice holds its maximum'
          : 'slice socket connections refused: all slice sockets hold their maximum',
      );
      figures.loggedAt = now;
      figures.unlogged = 0;
    }
  }

  private close(name: string): void {
    const entry = this.servers.get(name);
    if (!entry) return;
    entry.server.close();
    this.servers.delete(name);
    this.figures.delete(name);
    try {
      unlinkSync(join(this.dir, `${name}.sock`));
    } catch {
      // Already gone.
    }
  }

  closeAll(): void {
    for (const name of [...this.servers.keys()]) this.close(name);
    this.http.close(); // fastify closes no server it did not start listening
    void this.app.close();
  }
}

/**
 * A request the HTTP parser refuses (malformed, headers too large, too slow to arrive) gets
 * node's own bare answer, as before fastify served these sockets, and the socket is closed.
 */
function nodeClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (socket.writable) {
    const status =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
            ? '413 Payload Too Large'
            : '400 Bad Request';
    socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
  }
  socket.destroy(err);
}
