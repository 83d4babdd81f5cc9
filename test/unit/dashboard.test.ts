/**
 * The dashboard's pure parts: frames (rates from cumulative counters, events from throttling
 * and OOM counts, nothing made up for the first frame), the table of what the page may ask
 * of the admin API, and sessions (the token, CSRF, failed sign-ins, idle expiry).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFrame, type FrameInput, type FrameRow } from '../../src/wire/dashboard.js';
import { topLines } from '../../src/cli/top.js';
import { webAccess } from '../../src/daemon/web/allowed.js';
import { SESSION_IDLE_MS, WebSessions } from '../../src/daemon/web/auth.js';
import type { SliceView } from '../../src/wire/slices.js';

function slice(name: string, live: { usage: number; io: number; throttled: number; oom: number }): SliceView {
  return {
    name,
    domain: null,
    cpu: { reservation: 100, limit: null, shares: 100, effectiveLimit: null },
    memory: { limit: 1 << 20, high: null, swap: null },
    live: {
      procs: 1,
      usage: live.usage,
      demand: Infinity,
      entitlement: 500,
      weight: 100,
      cpuSeconds: 0,
      throttledPeriods: live.throttled,
      throttledSeconds: 0,
      memoryBytes: 1000,
      oomKills: live.oom,
      io: { readBytes: live.io, writeBytes: 0, readOps: 0, writeOps: 0 },
      pressure: { cpu: null, memory: null, io: null },
      pids: null,
    },
  } as unknown as SliceView;
}

function input(at: number, slices: SliceView[], sent: number): FrameInput {
  return {
    at,
    periodMs: 1000,
    node: { capacity: 2000, systemReserve: 100, reserved: 100, systemUsage: 10, memoryBytes: 1 << 30, backend: 'v1' },
    slices,
    domains: [],
    accounts: {
      slices: slices.map((s) => ({
        slice: s.name,
        deleted: false,
        network: 'host' as const,
        sent: { packets: 0, bytes: sent },
        received: { packets: 0, bytes: 0 },
        loopbackSent: { packets: 0, bytes: 0 },
        loopbackReceived: { packets: 0, bytes: 0 },
        conntrackDropped: { packets: 0, bytes: 0 },
      })),
      summary: { sent: { packets: 0, bytes: 0 }, received: { packets: 0, bytes: 0 } },
    },
  };
}

describe('live frames', () => {
  test('rates come from the counters of two frames; the first has none; throttling and OOM kills become events', () => {
    const first = buildFrame(input(10_000, [slice('a', { usage: 250.04, io: 1000, throttled: 3, oom: 0 })], 500), null);
    const row = first.frame.rows[0]!;
    assert.equal(row.usage, 250);
    assert.equal(row.ioReadRate, null, 'no rate before a second frame');
    assert.equal(row.netSentRate, null);
    assert.equal(row.demand, -1, 'an unknown demand is not sent as Infinity');
    assert.deepEqual(first.frame.events, []);
    const second = buildFrame(input(12_000, [slice('a', { usage: 300, io: 5000, throttled: 7, oom: 1 })], 2500), first.memory);
    const next = second.frame.rows[0]!;
    assert.equal(next.ioReadRate, 2000, '4000 bytes over 2 s');
    assert.equal(next.netSentRate, 1000);
    assert.deepEqual(
      second.frame.events.map((e) => [e.kind, e.count]),
      [
        ['throttled', 4],
        ['oom', 1],
      ],
    );
    // A counter that went back (a slice made anew under the same name) gives no negative rate.
    const third = buildFrame(input(13_000, [slice('a', { usage: 0, io: 0, throttled: 0, oom: 0 })], 0), second.memory);
    assert.equal(third.frame.rows[0]!.ioReadRate, 0);
    assert.deepEqual(third.frame.events, []);
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(third.frame)));
  });

  test('between two readings of the counters (a large node), CPU figures are new, rates the last ones, and nothing is counted twice', () => {
    const first = buildFrame(input(10_000, [slice('a', { usage: 10, io: 0, throttled: 0, oom: 0 })], 0), null);
    const second = buildFrame(input(11_000, [slice('a', { usage: 20, io: 3000, throttled: 2, oom: 0 })], 0), first.memory);
    const between = { ...input(12_000, [slice('a', { usage: 900, io: 3000, throttled: 2, oom: 0 })], 0), countersAt: 11_000 };
    const third = buildFrame(between, second.memory);
    assert.equal(third.frame.rows[0]!.usage, 900);
    assert.equal(third.frame.rows[0]!.ioReadRate, 3000, "the last reading's rate");
    assert.deepEqual(third.frame.events, [], 'the throttling was reported with the reading that saw it');
    assert.equal(third.memory, second.memory);
    const next = buildFrame(input(14_000, [slice('a', { usage: 5, io: 6000, throttled: 2, oom: 0 })], 0), third.memory);
    assert.equal(next.frame.rows[0]!.ioReadRate, 1000, 'over the 3 s since the last reading');
  });
});

describe('what the dashboard may ask of the admin API', () => {
  test('views and a few actions pass; task output, tree writes, exec and the rest do not', () => {
    for (const [method, path] of [
      ['GET', '/v1/status'],
      ['GET', '/v1/slices'],
      ['GET', '/v1/slices/web'],
      ['GET', '/v1/tasks/0123456789ab'],
      ['GET', '/v1/tree/cat'],
      ['GET', '/v1/vsys/log'],
      ['GET', '/v1/simulations'],
      ['GET', '/v1/simulations/run-1'],
      ['GET', '/v1/simulations/run-1/utilisation.svg'],
    ] as Array<[string, string]>)
      assert.equal(webAccess(method, path), 'read', `${method} ${path}`);
    for (const [method, path] of [
      ['POST', '/v1/slices'],
      ['PATCH', '/v1/slices/web'],
      ['DELETE', '/v1/slices/web'],
      ['PATCH', '/v1/nodes/n1'],
      ['POST', '/v1/nodes/n1/drain'],
      ['POST', '/v1/tasks/0123456789ab/stop'],
      ['DELETE', '/v1/simulations/run-1'],
    ] as Array<[string, string]>)
      assert.equal(webAccess(method, path), 'admin', `${method} ${path}`);
    for (const [method, path] of [
      ['GET', '/v1/tasks/0123456789ab/logs'],
      ['POST', '/v1/tree/mkdir'],
      ['POST', '/v1/tree/apply'],
      ['POST', '/v1/slices/web/attach'],
      ['POST', '/v1/slices/web/exec-plan'],
      ['POST', '/v1/vsys/services/x/call'],
      ['DELETE', '/v1/nodes/n1'],
      ['GET', '/v1/slices/a/b'],
      ['PUT', '/v1/slices/web'],
      ['GET', '/v1/web'],
      ['PUT', '/v1/simulations/run-1'],
      ['GET', '/v1/simulations/run-1/results.json'],
      ['DELETE', '/v1/simulations'],
    ] as Array<[string, string]>)
      assert.equal(webAccess(method, path), null, `${method} ${path}`);
  });
});

describe('sessions', () => {
  const token = 'a-token-of-enough-length';

  test('the right token opens a session whose CSRF token is checked; a wrong one is refused', () => {
    const sessions = new WebSessions(token);
    assert.throws(() => sessions.signIn('wrong', '10.0.0.1'), /wrong token/);
    assert.throws(() => sessions.signIn(undefined, '10.0.0.1'), /wrong token/);
    const { id, csrf } = sessions.signIn(` ${token}\n`, '10.0.0.1');
    assert.deepEqual(sessions.session(id), { csrf });
    assert.equal(sessions.csrfMatches(id, csrf), true);
    assert.equal(sessions.csrfMatches(id, `${csrf}x`), false);
    assert.equal(sessions.csrfMatches(id, undefined), false);
    assert.equal(sessions.csrfMatches('other', csrf), false);
    sessions.signOut(id);
    assert.equal(sessions.session(id), null);
  });

  test('an address that keeps guessing is refused for a minute, even the right token; others are not', () => {
    let now = 0;
    const sessions = new WebSessions(token, () => now);
    for (let i = 0; i < 10; i++) assert.throws(() => sessions.signIn('guess', '10.0.0.2'), /wrong token/);
    assert.throws(() => sessions.signIn(token, '10.0.0.2'), /too many failed sign-ins/);
    assert.ok(sessions.signIn(token, '10.0.0.3').id);
    now += 60_001;
    assert.ok(sessions.signIn(token, '10.0.0.2').id);
  });

  test('a session unused for the idle time ends', () => {
    let now = 0;
    const sessions = new WebSessions(token, () => now);
    const { id } = sessions.signIn(token, '10.0.0.4');
    now += SESSION_IDLE_MS - 1;
    assert.ok(sessions.session(id), 'used just in time: renewed');
    now += SESSION_IDLE_MS + 1;
    assert.equal(sessions.session(id), null);
  });
});

describe('slicectl top', () => {
  const row = (name: string, kind: 'slice' | 'domain', parent: string | null, usage: number, memoryBytes = 0): FrameRow => ({
    name,
    kind,
    parent,
    reservation: 0,
    limit: null,
    shares: 100,
    usage,
    entitlement: 0,
    demand: 0,
    memoryBytes,
    memoryLimit: null,
    ioReadRate: null,
    ioWriteRate: null,
    netSentRate: null,
    netReceivedRate: null,
    procs: 0,
    throttledPeriods: 0,
    oomKills: 0,
  });
  const rows = [
    row('a', 'slice', null, 10, 900),
    row('d', 'domain', null, 500, 5),
    row('b', 'slice', 'd', 100, 1),
    row('c', 'slice', 'd', 400, 2),
  ];

  test('a tree sorted within each level; a folded domain hides its members', () => {
    assert.deepEqual(
      topLines(rows, 'cpu', new Set()).map((l) => `${'.'.repeat(l.depth)}${l.row.name}`),
      ['d', '.c', '.b', 'a'],
    );
    assert.deepEqual(
      topLines(rows, 'memory', new Set()).map((l) => l.row.name),
      ['a', 'd', 'c', 'b'],
    );
    const folded = topLines(rows, 'cpu', new Set(['d']));
    assert.deepEqual(
      folded.map((l) => l.row.name),
      ['d', 'a'],
    );
    assert.equal(folded[0]!.folded, true);
  });
});
