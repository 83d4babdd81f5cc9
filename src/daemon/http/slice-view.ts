/**
 * What a slice's read-only socket serves (slice-sockets.ts feeds it the connections): a hook
 * identifies the caller's slice from the socket the request came on and refuses anything but
 * GET; the routes answer with that slice's own view only. Any other URL is refused (EPERM),
 * naming the path.
 */
import type { Socket } from 'node:net';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Views } from '../views.js';
import type { TreeService } from '../../framework/service.js';
import { SlicedError } from '../../core/errors.js';
import { sendError } from './errors.js';

/** The slice whose socket accepted a connection (undefined for a socket sliced did not accept). */
export type SliceOfSocket = (socket: Socket) => string | undefined;

export interface SliceViewOptions {
  views: Views;
  sliceOf: SliceOfSocket;
  /** The config tree, once there is one: a slice reads its own part (/slices/<name>). */
  tree: () => TreeService | null;
}

/** The caller's slice, or a refusal: an unknown socket, or a request that is not a GET. */
function callerOf(request: FastifyRequest, sliceOf: SliceOfSocket): string {
  const slice = sliceOf(request.raw.socket);
  if (!slice) throw new SlicedError('EPERM', 'unknown socket');
  if (request.method !== 'GET') {
    throw new SlicedError('EPERM', `this socket only reads slice ${slice}; changes need root or the admin group on the main socket`);
  }
  return slice;
}

/** The request's path as sent, without the query. */
function pathOf(request: FastifyRequest): string {
  return request.url.split('?')[0]!;
}

function notOwnView(slice: string, request: FastifyRequest): SlicedError {
  return new SlicedError('EPERM', `slice ${slice} may read only its own view (GET /v1/self), not ${pathOf(request)}`);
}

/**
 * The answer to a URL the router cannot take (not valid percent-encoding, a parameter too
 * long): the same refusal as any other URL. For fastify's `frameworkErrors`.
 */
export function refuseUrl(sliceOf: SliceOfSocket, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  try {
    throw notOwnView(callerOf(request, sliceOf), request);
  } catch (err) {
    return sendError(reply, err);
  }
}

export const sliceViewRoutes: FastifyPluginAsync<SliceViewOptions> = async (app, { views, sliceOf, tree }) => {
  const own = (request: FastifyRequest) => views.slice(callerOf(request, sliceOf), true);

  // Before routing goes further and before any body is read.
  app.addHook('onRequest', async (request) => {
    const slice = callerOf(request, sliceOf);
    // The path as sent, compared whole with the route's (the router decodes percent-escapes):
    // only these exact paths, and /v1/slices/<the caller's own name>.
    const route = request.routeOptions.url;
    if (route === undefined || pathOf(request) !== route.replace(':name', slice)) throw notOwnView(slice, request);
  });
  app.setNotFoundHandler(async (request) => {
    throw notOwnView(callerOf(request, sliceOf), request);
  });

  app.get('/', async (request) => own(request));
  app.get('/v1/self', async (request) => own(request));
  app.get('/v1/slices', async (request) => [own(request)]);
  app.get('/v1/slices/:name', async (request) => own(request));
  app.get('/v1/status', async (request) => {
    // The node's size and system reserve are settings, not about other slices; the node's
    // total reservation, counts and loop figures are, so they are null (not shown): the
    // slice's own reservation is in its own view.
    const node = views.node() as { cpu: { capacity: number; systemReserve: number }; backend: string; cpuControl: string };
    return {
      node: {
        cpu: { capacity: node.cpu.capacity, systemReserve: node.cpu.systemReserve, reserved: null },
        backend: node.backend,
        cpuControl: node.cpuControl,
        control: null,
      },
      slices: [own(request)],
      domains: [],
    };
  });

  // The tree's read operations, which the tree service checks against the caller's slice.
  const treeRead = (request: FastifyRequest): { service: TreeService; path: string; caller: { admin: false; slice: string } } => {
    const slice = callerOf(request, sliceOf);
    const service = tree();
    if (!service) throw notOwnView(slice, request);
    const query = request.url.split('?')[1] ?? '';
    return { service, path: new URLSearchParams(query).get('path') ?? '/', caller: { admin: false, slice } };
  };
  app.get('/v1/tree/cat', async (request) => {
    const { service, path, caller } = treeRead(request);
    return { path, value: service.read(caller, path) };
  });
  app.get('/v1/tree/ls', async (request) => {
    const { service, path, caller } = treeRead(request);
    return service.readdir(caller, path);
  });
};
