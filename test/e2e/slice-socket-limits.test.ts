/**
 * A slice's read-only socket cannot be used to exhaust the daemon's file descriptors: the
 * slice's own user opens thousands of connections and leaves them idle; the daemon holds at
 * most its per-slice maximum, answers the rest 503, closes idle ones after the timeout,
 * counts the refusals (log and metrics), and the admin API keeps answering meanwhile.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, freePort, userIds } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/slice-socket-limits: ${skip}\n`);

const ATTEMPTS = 5000;
/** The default sliceSocketTimeoutMs (the test passes no flags, so it runs against any version). */
const TIMEOUT_MS = 10_000;
const PER_SLICE = 16;

/**
 * Runs as the slice's user: opens ATTEMPTS connections (at most 200 connecting at once,
 * retrying EAGAIN of a full backlog), holds every one that stays open, and prints one JSON
 * line when all attempts have settled and another, with how long the held ones stayed open,
 * when the server has closed the last one.
 */
const CLIENT = `
const net = require('node:net');
const [path, total] = [process.argv[1], Number(process.argv[2])];
const figures = { attempts: 0, refused503: 0, closedOther: 0, errors: 0, retries: 0, held: 0 };
const open = new Set();
let launched = 0, inFlight = 0, reported = false;
const heldFor = [];
function attempt() {
  inFlight++;
  const socket = net.connect(path);
  let data = '', connected = false, settled = false, connectedAt = 0;
  const settle = () => { if (!settled) { settled = true; inFlight--; pump(); } };
  socket.on('connect', () => { connected = true; connectedAt = Date.now(); open.add(socket); setTimeout(settle, 50); });
  socket.on('data', (d) => { data += d; });
  socket.on('error', (e) => {
    if (!connected && (e.code === 'EAGAIN' || e.code === 'ECONNREFUSED')) { figures.retries++; settled = true; inFlight--; setTimeout(attempt, 5); return; }
    figures.errors++;
  });
  socket.on('close', () => {
    if (!connected) return;
    open.delete(socket);
    if (reported) heldFor.push(Date.now() - connectedAt);
    if (data.startsWith('HTTP/1.1 503')) figures.refused503++; else figures.closedOther++;
    settle();
    if (reported && open.size === 0) {
      console.log(JSON.stringify({ minHeldMs: Math.min(...heldFor), maxHeldMs: Math.max(...heldFor) }));
      process.exit(0);
    }
  });
}
function pump() {
  while (launched < total && inFlight < 200) { launched++; figures.attempts++; attempt(); }
  if (launched === total && inFlight === 0 && !reported) {
    reported = true;
    figures.held = open.size;
    console.log(JSON.stringify(figures));
    if (open.size === 0) { console.log(JSON.stringify({ minHeldMs: 0, maxHeldMs: 0 })); process.exit(0); }
  }
}
pump();
`;

describe('slice socket connection limits', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let metricsPort: number;

  before(async () => {
    metricsPort = await freePort();
    daemon = await TestDaemon.start(['--metrics-port', String(metricsPort)]);
    assert.equal((await daemon.cli(['slice', 'create', 'sbsock'])).code, 0);
  });

  after(async () => {
    await daemon.destroy();
  });

  const fdsOfDaemon = (): number => readdirSync(`/proc/${daemon.pid}/fd`).length;

  test('5000 idle connections from a slice: capped per slice, idle ones closed, admin API answers meanwhile', async () => {
    const ids = userIds('sl-sbsock');
    const socketPath = `${daemon.runDir}/slices/sbsock.sock`;
    const baseline = fdsOfDaemon();

    const client = spawn(process.execPath, ['-e', CLIENT, socketPath, String(ATTEMPTS)], {
      uid: ids.uid,
      gid: ids.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let clientErr = '';
    client.stderr.on('data', (d: Buffer) => (clientErr += d.toString()));
    const lines = createInterface({ input: client.stdout })[Symbol.asyncIterator]();
    try {
      const nextLine = async <T>(what: string, timeoutMs: number): Promise<T> => {
        const result = await Promise.race([lines.next(), sleep(timeoutMs, null, { ref: false })]);
        if (!result || result.done) throw new Error(`the client did not report ${what} within ${timeoutMs} ms; stderr: ${clientErr}`);
        return JSON.parse(result.value) as T;
      };
      type Flood = { attempts: number; refused503: number; closedOther: number; errors: number; retries: number; held: number };
      const flood = nextLine<Flood>('its attempts', 120_000);

      // Meanwhile: the daemon's descriptors, and the admin API's latency.
      let maxFds = baseline;
      let flooding = true;
      const fdWatch = (async () => {
        while (flooding) {
          maxFds = Math.max(maxFds, fdsOfDaemon());
          await sleep(10);
        }
      })();
      const latencies: number[] = [];
      const adminWatch = (async () => {
        while (flooding) {
          const started = performance.now();
          await daemon.api.get('/v1/node');
          latencies.push(performance.now() - started);
          await sleep(20);
        }
      })();
      const figures = await flood;
      const heldFds = fdsOfDaemon();
      flooding = false;
      await Promise.all([fdWatch, adminWatch]);

      latencies.sort((a, b) => a - b);
      const median = latencies[Math.floor(latencies.length / 2)] ?? NaN;
      const max = latencies.at(-1) ?? NaN;
      process.stderr.write(
        `slice socket flood: ${JSON.stringify(figures)}; daemon fds ${baseline} before, max ${maxFds} during, ${heldFds} held; ` +
          `admin API ${latencies.length} requests, median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms\n`,
      );

      assert.equal(figures.attempts, ATTEMPTS);
      assert.equal(figures.held, PER_SLICE, 'the daemon keeps exactly its per-slice maximum open');
      assert.equal(figures.refused503 + figures.held + figures.closedOther, ATTEMPTS, 'every other attempt was answered and closed');
      assert.ok(figures.refused503 >= ATTEMPTS - PER_SLICE - 50, `most attempts got the 503 answer: ${figures.refused503}`);
      // The held connections, a little slack for refused ones being closed, and nothing else.
      assert.ok(
        heldFds <= baseline + PER_SLICE + 2,
        `daemon holds ${heldFds} fds with ${PER_SLICE} connections open (baseline ${baseline})`,
      );
      // Refused connections are held at most 250 ms, and at most 32 at once.
      assert.ok(maxFds <= baseline + PER_SLICE + 32 + 8, `daemon reached ${maxFds} fds during the flood (baseline ${baseline})`);
      assert.ok(latencies.length >= 3, 'the admin API was asked several times during the flood');
      assert.ok(max < 2000, `admin API answered within 2 s during the flood (max ${max.toFixed(1)} ms)`);

      // The slice's own user is told why while its socket is full.
      const refused = await daemon.cli(['slice', 'show', 'sbsock'], ids);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /already holds 16 connections to its socket, the most allowed \(sliceSocketMaxConnections\)/);

      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const refusedMetric = Number(/^sliced_slice_socket_refused_total\{slice="sbsock",limit="slice"\} (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(refusedMetric >= figures.refused503 + 1, `refusals counted in metrics: ${refusedMetric}`);
      assert.match(metrics, /^sliced_slice_socket_connections\{slice="sbsock"\} 16$/m);
      assert.match(daemon.log, /slice socket connections refused: the slice holds its maximum/);
      assert.equal(daemon.log.match(/slice socket connections refused/g)?.length, 1, 'refusals are logged once per minute, not once each');

      // Idle connections are closed by the daemon after the timeout.
      const closed = await nextLine<{ minHeldMs: number; maxHeldMs: number }>(
        'the server closing its idle connections',
        TIMEOUT_MS + 10_000,
      );
      // The client notes 'connect' late while it is busy launching the flood: up to a second.
      assert.ok(
        closed.minHeldMs >= TIMEOUT_MS - 1000 && closed.maxHeldMs <= TIMEOUT_MS + 2500,
        `idle connections closed after ${closed.minHeldMs} to ${closed.maxHeldMs} ms (timeout ${TIMEOUT_MS})`,
      );
      await sleep(100);
      // + the test's own keep-alive connections to the admin API and the metrics port.
      assert.ok(fdsOfDaemon() <= baseline + 3, `daemon back to ${fdsOfDaemon()} fds (baseline ${baseline})`);
      const afterMetrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(afterMetrics, /^sliced_slice_socket_timeouts_total\{slice="sbsock"\} 16$/m);
      process.stderr.write(`idle connections closed by the daemon after ${closed.minHeldMs} to ${closed.maxHeldMs} ms\n`);

      // The slice reads its view again.
      const again = await daemon.cli(['--json', 'slice', 'show', 'sbsock'], ids);
      assert.equal(again.code, 0, again.stderr);
    } finally {
      client.kill('SIGKILL');
    }
  });

  test('all slice sockets together hold at most sliceSocketMaxTotal connections', async () => {
    const small = await TestDaemon.start(['--slice-socket-max-connections', '4', '--slice-socket-max-total', '6']);
    const held: Socket[] = [];
    try {
      for (const name of ['sbtota', 'sbtotb']) assert.equal((await small.cli(['slice', 'create', name])).code, 0);
      // Root may connect to any slice socket; connections count against that socket's slice.
      const open = (slice: string): Promise<{ socket: Socket; answer: string }> =>
        new Promise((resolve, reject) => {
          const socket = connect(`${small.runDir}/slices/${slice}.sock`);
          let answer = '';
          socket.on('data', (d: Buffer) => (answer += d.toString()));
          socket.on('error', reject);
          socket.on('connect', () => setTimeout(() => resolve({ socket, answer }), 150));
        });
      for (let i = 0; i < 4; i++) held.push((await open('sbtota')).socket);
      const fifth = await open('sbtota');
      held.push(fifth.socket);
      assert.match(fifth.answer, /^HTTP\/1\.1 503 .*already holds 4 connections to its socket/s);
      for (let i = 0; i < 2; i++) held.push((await open('sbtotb')).socket);
      const third = await open('sbtotb');
      held.push(third.socket);
      assert.match(
        third.answer,
        /^HTTP\/1\.1 503 .*all slice sockets together hold 6 connections, the most allowed \(sliceSocketMaxTotal\)/s,
      );
      assert.match(small.log, /slice socket connections refused: all slice sockets hold their maximum/);
      await small.api.get('/v1/node'); // the admin socket is not one of them
    } finally {
      for (const socket of held) socket.destroy();
      await small.destroy();
    }
  });

  test('a connection that sends half a request is closed after the timeout', async () => {
    const ids = userIds('sl-sbsock');
    const socketPath = `${daemon.runDir}/slices/sbsock.sock`;
    const script = `
const s = require('node:net').connect(process.argv[1]);
const t0 = Date.now();
s.on('connect', () => s.write('GET /v1/self HTTP/1.1\\r\\nhost: x\\r\\n'));
s.on('close', () => { console.log(Date.now() - t0); process.exit(0); });
setTimeout(() => { console.log('still open'); process.exit(1); }, ${TIMEOUT_MS + 5000});
`;
    const child = spawn(process.execPath, ['-e', script, socketPath], { uid: ids.uid, gid: ids.gid, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, `connection not closed by the daemon: ${out}`);
    assert.ok(Number(out) >= TIMEOUT_MS - 100 && Number(out) <= TIMEOUT_MS + 2500, `closed after ${out.trim()} ms (timeout ${TIMEOUT_MS})`);
  });
});
