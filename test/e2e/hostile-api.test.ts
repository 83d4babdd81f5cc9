/**
 * Hostile input on the real daemon (issue 16, part 3): generated requests on the admin socket
 * and on a slice's read-only socket: every route with hostile names, path segments, query
 * strings and bodies (wrong shapes, unknown fields, invalid JSON, wrong content types, bodies
 * over the limit). Invariants after every request: an answer came (the daemon neither crashed
 * nor hung), it is not a 5xx, a refusal is JSON {error: {code, message}} with a known code and a
 * sentence, and a refusal changed nothing (slices, domains, reservations and the config tree
 * read the same as before it). fast-check, seeded (printed), shrinking kept; HOSTILE_API_RUNS
 * cases per socket (3,000 in the suite; the recorded 100,000-case runs are in BENCHMARKS.md).
 *
 * Left out on purpose, with why: attach and exec-plan (a generated pid could be the test's own
 * process), tasks (they run commands), io/enable-bfq (it changes a device's scheduler), vsys
 * calls (they run scripts), nodes (single node: nothing to drain).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { fuzzSeed } from '../helpers/prng.js';
import { errorOf, rawCall, type Outcome, type RawRequest } from '../helpers/raw-api.js';
import { KNOWN_CODES } from '../unit/framework-fixtures.js';

const RUNS = Number(process.env.HOSTILE_API_RUNS ?? 3000);
const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP hostile API input: ${skip}\n`);

const segment = fc.oneof(
  fc.constantFrom(
    'web',
    'h0',
    'h1',
    'hd',
    'nope',
    '..',
    '.',
    '%2e%2e',
    '%2F',
    'a%00b',
    '%ff',
    '-x',
    'x'.repeat(65),
    '',
    '%20',
    'web.slice',
    'cgroup.procs',
  ),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.string({ unit: 'grapheme', maxLength: 12 }).map(encodeURIComponent),
);
const treePath = fc.oneof(
  fc.constantFrom(
    '/',
    '/probes',
    '/schedulers',
    '/schedulers/h',
    '/schedulers/h/process_set/handle_all',
    '/slices',
    '/slices/h0',
    '/../etc',
    '//',
    '/probes/cpu',
    '',
  ),
  fc.array(segment, { maxLength: 6 }).map((parts) => `/${parts.join('/')}`),
  fc.string({ maxLength: 40 }),
);
const value = fc.oneof(
  fc.constantFrom('100m', '1.5', 'none', '-1', '1e309', '64M', '0', 'default', '', null, true, 10001, -5, 2 ** 63),
  fc.string({ maxLength: 30 }),
  fc.double(),
  fc.anything({ maxDepth: 2 }),
);
const allocation = fc.dictionary(
  fc.constantFrom('reservation', 'limit', 'shares', 'high', 'swap', 'weight', 'max', 'egress', 'maxRate', 'x'),
  value,
  { maxKeys: 3 },
);
const body = fc.oneof(
  fc.record(
    {
      name: fc.oneof(fc.constantFrom('h0', 'h1', 'hd', '..', 'a/b', ''), fc.string({ maxLength: 70 }), fc.anything()),
      cpu: allocation,
      memory: allocation,
      io: allocation,
      pids: fc.record({ max: value }),
      net: fc.oneof(fc.boolean(), allocation),
      domain: fc.oneof(fc.constantFrom('hd', 'nope'), fc.string()),
      parent: fc.string(),
      member: fc.oneof(fc.constantFrom('h0', 'h1', 'hd', '..'), fc.string()),
      path: treePath,
      target: treePath,
      value: fc.oneof(fc.string({ maxLength: 50 }), value),
      document: fc.oneof(fc.string(), fc.constantFrom('probes: {cpu: {}}', 'schedulers: {h: {}}', 'a: &a [*a]', '!x 1')),
      dryRun: value,
      force: value,
      slice: fc.oneof(fc.constantFrom('h0', 'h1', 'nope'), fc.string()),
      address: fc.oneof(fc.constantFrom('10.0.0.1', '::1', '0.0.0.0', '999.1.1.1', ''), fc.string()),
      protocol: fc.oneof(fc.constantFrom('udp', 'tcp', 'UDP', 'icmp'), fc.string()),
      port: fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.string()),
      extra: value,
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue(),
);
const route = fc.oneof(
  fc.tuple(fc.constantFrom('GET', 'DELETE', 'PATCH', 'POST', 'PUT'), segment).map(([m, s]) => ({ method: m, path: `/v1/slices/${s}` })),
  fc.tuple(fc.constantFrom('GET', 'DELETE', 'PATCH'), segment).map(([m, s]) => ({ method: m, path: `/v1/domains/${s}` })),
  fc.tuple(segment, segment).map(([d, m]) => ({ method: 'DELETE', path: `/v1/domains/${d}/members/${m}` })),
  segment.map((d) => ({ method: 'POST', path: `/v1/domains/${d}/members` })),
  fc.constantFrom('/v1/slices', '/v1/domains', '/v1/net/reservations').map((p) => ({ method: 'POST', path: p })),
  fc.constantFrom('mkdir', 'rmdir', 'write', 'ln', 'rm', 'apply').map((op) => ({ method: 'POST', path: `/v1/tree/${op}` })),
  fc
    .tuple(fc.constantFrom('ls', 'cat', 'stat', 'readlink', 'tree', 'dump'), treePath, fc.constantFrom('', '&path=/', '&x=1', '&path'))
    .map(([op, p, extra]) => ({
      method: 'GET',
      path: `/v1/tree/${op}?path=${encodeURIComponent(p)}${extra}`,
    })),
  fc.tuple(segment, segment, segment).map(([p, a, port]) => ({ method: 'DELETE', path: `/v1/net/reservations/${p}/${a}/${port}` })),
  segment.map((s) => ({ method: 'GET', path: `/v1/net/accounts/${s}` })),
  segment.map((s) => ({ method: 'DELETE', path: `/v1/net/accounts/${s}` })),
  fc.tuple(fc.constantFrom('GET', 'PUT', 'DELETE'), segment).map(([m, s]) => ({ method: m, path: `/v1/simulations/${s}` })),
  fc.tuple(segment, segment).map(([s, c]) => ({ method: 'GET', path: `/v1/simulations/${s}/${c}` })),
  fc
    .tuple(segment, fc.string({ maxLength: 10 }))
    .map(([s, q]) => ({ method: 'GET', path: `/v1/vsys/log?slice=${s}&limit=${encodeURIComponent(q)}` })),
  fc.tuple(fc.constantFrom('GET', 'POST'), fc.string({ maxLength: 40 })).map(([m, p]) => ({ method: m, path: `/${encodeURI(p)}` })),
  fc
    .constantFrom('/v1/status?cluster=maybe', '/v1/slices?cluster=1', '/v1/node', '/v1/self', '/v1/tasks/..', '/v1/tasks/%00')
    .map((p) => ({ method: 'GET', path: p })),
);
const request: fc.Arbitrary<RawRequest> = fc
  .tuple(route, body, fc.constantFrom('json', 'json', 'json', 'invalid', 'text', 'huge', 'none'))
  .map(([r, b, how]): RawRequest => {
    switch (how) {
      case 'invalid':
        return { ...r, raw: '{"name": "h0", ', headers: { 'content-type': 'application/json' } };
      case 'text':
        return { ...r, raw: JSON.stringify(b), headers: { 'content-type': 'text/plain' } };
      case 'huge':
        return { ...r, raw: JSON.stringify({ name: 'h0', pad: 'x'.repeat(200 * 1024) }), headers: { 'content-type': 'application/json' } };
      case 'none':
        return r;
      default:
        return { ...r, body: b };
    }
  });

describe('hostile API input', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;

  before(async () => {
    daemon = await TestDaemon.start(['--log-level', 'warn']);
    // Something for the requests to hit: two slices (one with a network), a domain, a scheduler.
    for (const args of [
      ['slice', 'create', 'h0'],
      ['slice', 'create', 'h1', '--net'],
      ['domain', 'create', 'hd'],
      ['mkdir', '/schedulers/h'],
    ])
      assert.equal((await daemon.cli(args)).code, 0, args.join(' '));
  });

  after(async () => {
    await daemon?.destroy();
  });

  /** What a refusal must leave as it was: allocations (not live figures), reservations, the tree, saved simulations. */
  async function state(): Promise<string> {
    const status = await daemon.api.get<{ slices: Array<Record<string, unknown>>; domains: Array<Record<string, unknown>> }>('/v1/status');
    const strip = (views: Array<Record<string, unknown>>): unknown[] => views.map(({ live: _live, ...rest }) => rest);
    const reservations = await daemon.api.get('/v1/net/reservations');
    const tree = await daemon.api.get<{ yaml: string }>('/v1/tree/dump');
    const simulations = await daemon.api.get('/v1/simulations');
    return JSON.stringify({ slices: strip(status.slices), domains: strip(status.domains), reservations, tree: tree.yaml, simulations });
  }

  function checkAnswer(req: RawRequest, outcome: Outcome): void {
    const what = `${req.method} ${req.path}`;
    // A body over the 64 KiB limit may be refused and the connection closed before the client
    // has sent it all (it then sees EPIPE or ECONNRESET, not the answer), as any HTTP server
    // does; the next request shows the daemon still answers, and the state is still compared.
    const oversized = (req.raw?.length ?? 0) > 64 * 1024;
    if (oversized && outcome.kind === 'lost' && /EPIPE|ECONNRESET/.test(outcome.error)) return;
    assert.equal(outcome.kind, 'answer', `${what}: no answer (${outcome.kind === 'lost' ? outcome.error : ''})`);
    if (outcome.kind !== 'answer') return;
    assert.ok(outcome.status < 500, `${what}: ${outcome.status} ${outcome.text.slice(0, 300)}`);
    if (outcome.status >= 400) {
      const error = errorOf(outcome);
      assert.ok(error !== null, `${what}: a refusal (${outcome.status}) without {error: {code, message}}: ${outcome.text.slice(0, 200)}`);
      assert.ok(KNOWN_CODES.has(error.code), `${what}: unknown error code ${error.code}`);
      assert.ok(error.message.length >= 10, `${what}: a refusal without a sentence: ${error.message}`);
    }
  }

  test(`${RUNS} generated requests on the admin socket: answered, never 5xx, refusals change nothing`, { timeout: 3_600_000 }, async () => {
    const seed = fuzzSeed('hostile API input, admin socket');
    let current = await state();
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        const outcome = await rawCall(daemon.socket, { ...req, timeoutMs: 20_000 });
        checkAnswer(req, outcome);
        const now = await state();
        if (outcome.kind === 'answer' && outcome.status >= 400) {
          refused++;
          assert.equal(now, current, `${req.method} ${req.path} was refused (${outcome.text.slice(0, 200)}) but changed the state`);
        }
        current = now;
      }),
      { seed: seed | 0, numRuns: RUNS, includeErrorInReport: true },
    );
    assert.ok(refused > RUNS / 4, `only ${refused} of ${RUNS} requests were refused: the generator hardly reaches the refusals`);
    assert.equal((await rawCall(daemon.socket, { method: 'GET', path: '/v1/node' })).kind, 'answer');
  });

  test(
    `${RUNS} generated requests on a slice's read-only socket: answered, never 5xx, nothing changes`,
    { timeout: 3_600_000 },
    async () => {
      const seed = fuzzSeed("hostile API input, a slice's socket");
      // A slice of its own: the admin socket's requests may have deleted or changed the others.
      assert.equal((await daemon.cli(['slice', 'create', 'quiet-reader-7'])).code, 0);
      const socket = `${daemon.runDir}/slices/quiet-reader-7.sock`;
      const before = await state();
      await fc.assert(
        fc.asyncProperty(request, async (req) => {
          const outcome = await rawCall(socket, { ...req, timeoutMs: 20_000 });
          checkAnswer(req, outcome);
          if (outcome.kind === 'answer' && req.method !== 'GET')
            assert.ok(outcome.status >= 400, `${req.method} ${req.path} was accepted on a slice's socket: ${outcome.text.slice(0, 200)}`);
        }),
        { seed: seed | 0, numRuns: RUNS, includeErrorInReport: true },
      );
      assert.equal(await state(), before, "requests on a slice's socket changed the state");
    },
  );
});
