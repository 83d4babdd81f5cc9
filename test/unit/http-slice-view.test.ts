/**
 * The read-only plugin of the slice sockets (src/daemon/http/slice-view.ts), over fastify's
 * inject with a fake views layer: which requests a slice's socket answers, and the exact
 * refusals (the e2e tests drive the real sockets).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { refuseUrl, sliceViewRoutes, type SliceOfSocket } from '../../src/daemon/http/slice-view.js';
import { errorHandler } from '../../src/daemon/http/errors.js';
import { SlicedError } from '../../src/core/errors.js';
import type { Views } from '../../src/daemon/views.js';
import type { TreeService } from '../../src/framework/service.js';

const views = {
  slice: (name: string, live: boolean) => ({ name, live }),
  node: () => ({ cpu: { capacity: 4000, systemReserve: 500, reserved: 1200 }, backend: 'v1', cpuControl: 'weights', control: { x: 1 } }),
} as unknown as Views;

const tree = {
  read: (caller: { slice: string }, path: string) => {
    if (!path.startsWith(`/slices/${caller.slice}`)) throw new SlicedError('EPERM', `not yours: ${path}`);
    if (path.endsWith('/missing')) throw new SlicedError('ENOENT', `no such file: ${path}`);
    return `value of ${path}`;
  },
  readdir: (_caller: unknown, path: string) => [{ name: path }],
} as unknown as TreeService;

async function serve(sliceOf: SliceOfSocket, withTree = true): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, frameworkErrors: (_err, request, reply) => refuseUrl(sliceOf, request, reply) });
  app.setErrorHandler(errorHandler);
  await app.register(sliceViewRoutes, { views, sliceOf, tree: () => (withTree ? tree : null) });
  await app.ready();
  return app;
}

const own = { name: 'pa', live: true };
const notOwn = (path: string) => ({
  error: { code: 'EPERM', message: `slice pa may read only its own view (GET /v1/self), not ${path}` },
});

describe('slice socket: the read-only plugin', () => {
  test('answers the slice its own view, status and tree reads', async () => {
    const app = await serve(() => 'pa');
    const get = async (url: string) => {
      const r = await app.inject({ method: 'GET', url });
      return { status: r.statusCode, body: r.json() as unknown };
    };
    for (const url of ['/', '/v1/self', '/v1/slices/pa', '/v1/self?x=1']) assert.deepEqual(await get(url), { status: 200, body: own }, url);
    assert.deepEqual(await get('/v1/slices'), { status: 200, body: [own] });
    assert.deepEqual(await get('/v1/status'), {
      status: 200,
      body: {
        node: { cpu: { capacity: 4000, systemReserve: 500, reserved: null }, backend: 'v1', cpuControl: 'weights', control: null },
        slices: [own],
        domains: [],
      },
    });
    assert.deepEqual(await get('/v1/tree/cat?path=/slices/pa/cpu'), {
      status: 200,
      body: { path: '/slices/pa/cpu', value: 'value of /slices/pa/cpu' },
    });
    assert.deepEqual(await get('/v1/tree/ls?path=/a&path=/b'), { status: 200, body: [{ name: '/a' }] }, 'the first path= counts');
    assert.deepEqual(await get('/v1/tree/ls'), { status: 200, body: [{ name: '/' }] }, 'no path is the root');
    assert.deepEqual(await get('/v1/tree/cat?path=/slices/pa/missing'), {
      status: 404,
      body: { error: { code: 'ENOENT', message: 'no such file: /slices/pa/missing' } },
    });
    assert.deepEqual(await get('/v1/tree/cat?path=/slices/pb'), {
      status: 403,
      body: { error: { code: 'EPERM', message: 'not yours: /slices/pb' } },
    });
    await app.close();
  });

  test('refuses other slices, other URLs (named without the query) and anything but GET', async () => {
    const app = await serve(() => 'pa');
    const ask = async (method: 'GET' | 'POST' | 'HEAD' | 'DELETE', url: string) => {
      const r = await app.inject({ method, url, ...(method === 'POST' ? { payload: { cpu: 1 } } : {}) });
      return { status: r.statusCode, body: method === 'HEAD' ? null : (r.json() as unknown) };
    };
    for (const path of [
      '/v1/slices/pb',
      '/v1/slices/',
      '/v1/self/',
      '/v1/sel%66',
      '/v1/%zz',
      '/v1/node',
      '/v1/domains',
      '/v1/slices/pa/attach',
      '/v1//self',
    ]) {
      assert.deepEqual(await ask('GET', path), { status: 403, body: notOwn(path) }, path);
    }
    assert.deepEqual(await ask('GET', '/v1/net?x=1'), { status: 403, body: notOwn('/v1/net') });
    assert.deepEqual(await ask('GET', `/v1/slices/${'x'.repeat(300)}`), { status: 403, body: notOwn(`/v1/slices/${'x'.repeat(300)}`) });
    const readOnly = {
      error: { code: 'EPERM', message: 'this socket only reads slice pa; changes need root or the admin group on the main socket' },
    };
    for (const [method, url] of [
      ['POST', '/v1/slices'],
      ['DELETE', '/v1/slices/pa'],
      ['POST', '/v1/nothing'],
    ] as const) {
      assert.deepEqual(await ask(method, url), { status: 403, body: readOnly }, `${method} ${url}`);
    }
    assert.equal((await ask('HEAD', '/v1/self')).status, 403);
    await app.close();
  });

  test('without a config tree, tree reads are refused like any other URL; an unknown socket is refused', async () => {
    const app = await serve(() => 'pa', false);
    const cat = await app.inject({ method: 'GET', url: '/v1/tree/cat?path=/slices/pa' });
    assert.deepEqual([cat.statusCode, cat.json()], [403, notOwn('/v1/tree/cat')]);
    await app.close();
    const stranger = await serve(() => undefined);
    const self = await stranger.inject({ method: 'GET', url: '/v1/self' });
    assert.deepEqual([self.statusCode, self.json()], [403, { error: { code: 'EPERM', message: 'unknown socket' } }]);
    await stranger.close();
  });
});
