/**
 * Read-only views for slices: one Unix socket per slice, <runDir>/slices/<name>.sock, owned
 * by the slice's user with mode 0600. The kernel's file permissions decide who may connect,
 * so a connection on a slice's socket can only come from that slice's user (or root), and
 * it can only read that one slice. All sockets feed a single HTTP server.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { chmodSync, chownSync, mkdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { SliceAgent } from './agent.js';
import type { Views } from './views.js';
import type { TreeService } from '../framework/service.js';
import { SlicedError, httpStatusOf, isSlicedError } from '../core/errors.js';

const sliceOfSocket = new WeakMap<Socket, string>();

export class SliceSockets {
  private readonly dir: string;
  private readonly servers = new Map<string, { server: NetServer; uid: number | null }>();
  private readonly http: HttpServer;
  private treeService: TreeService | null = null;

  constructor(
    runDir: string,
    private readonly agent: SliceAgent,
    private readonly views: Views,
    private readonly log: Logger,
  ) {
    this.dir = join(runDir, 'slices');
    this.http = createHttpServer((request, response) => this.handle(request, response));
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
    const server = createNetServer((socket) => {
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

  private close(name: string): void {
    const entry = this.servers.get(name);
    if (!entry) return;
    entry.server.close();
    this.servers.delete(name);
    try {
      unlinkSync(join(this.dir, `${name}.sock`));
    } catch {
      // Already gone.
    }
  }

  closeAll(): void {
    for (const name of [...this.servers.keys()]) this.close(name);
    this.http.close();
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const slice = sliceOfSocket.get(request.socket);
    const reply = (status: number, body: unknown): void => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    try {
      if (!slice) throw new SlicedError('EPERM', 'unknown socket');
      if (request.method !== 'GET') {
        throw new SlicedError('EPERM', `this socket only reads slice ${slice}; changes need root or the admin group on the main socket`);
      }
      const [url, query = ''] = (request.url ?? '/').split('?');
      const treePath = new URLSearchParams(query).get('path') ?? '/';
      if ((url === '/v1/tree/cat' || url === '/v1/tree/ls') && this.treeService) {
        const caller = { admin: false as const, slice };
        reply(200, url === '/v1/tree/cat' ? { path: treePath, value: this.treeService.read(caller, treePath) } : this.treeService.readdir(caller, treePath));
      } else if (url === '/' || url === '/v1/self' || url === `/v1/slices/${slice}`) {
        reply(200, this.views.slice(slice, true));
      } else if (url === '/v1/slices') {
        reply(200, [this.views.slice(slice, true)]);
      } else if (url === '/v1/status') {
        // The node's size and system reserve are settings, not about other slices; the node's
        // total reservation, counts and loop figures are, so they are null (not shown): the
        // slice's own reservation is in its own view.
        const node = this.views.node() as { cpu: { capacity: number; systemReserve: number }; backend: string; cpuControl: string };
        reply(200, {
          node: { cpu: { capacity: node.cpu.capacity, systemReserve: node.cpu.systemReserve, reserved: null }, backend: node.backend, cpuControl: node.cpuControl, control: null },
          slices: [this.views.slice(slice, true)],
          domains: [],
        });
      } else {
        throw new SlicedError('EPERM', `slice ${slice} may read only its own view (GET /v1/self), not ${url}`);
      }
    } catch (err) {
      const code = isSlicedError(err) ? err.code : 'EIO';
      reply(httpStatusOf[code], { error: { code, message: (err as Error).message } });
    }
  }
}
