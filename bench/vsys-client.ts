/**
 * The slice side of bench/vsys.ts: runs as a slice's user and talks to its vsys FIFOs the
 * way a program would (non-blocking opens wrapped in sockets). Prints one JSON line with
 * the round-trip latencies in milliseconds and the client's own CPU time (cpuUs).
 *
 *   vsys-client.ts stateful|oneshot DIR SERVICE COUNT [--wait-go]
 *   vsys-client.ts sudo SCRIPT ARG COUNT
 *
 * `sudo` is the baseline: what the slice would do without vsys, `sudo -n SCRIPT ARG` per
 * request (a sudoers rule lets its user run the script as root), the request on the
 * script's stdin and its answer read to EOF, with the same warm-up as the vsys calls.
 *
 * With --wait-go it opens the FIFOs, warms up, prints "ready" and waits for a line on stdin
 * before measuring, so that many clients can start together.
 */
import { spawn } from 'node:child_process';
import { constants as C, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';

const [mode, dir, service, countText] = process.argv.slice(2) as [string, string, string, string];
const count = Number(countText);
const waitGo = process.argv.includes('--wait-go');
const WARMUP = 50;
const REQUEST = 'ping 0123456789abcdef0123456789\n'; // 32 bytes

/**
 * Open for writing without blocking: ENXIO until the daemon reads the FIFO again (between
 * one-shot calls). Retried on the next turn of the loop, which is what a blocking open(2)
 * in a C client gets from the kernel for free.
 */
async function openWriter(path: string): Promise<Socket> {
  for (;;) {
    try {
      return new Socket({ fd: openSync(path, C.O_WRONLY | C.O_NONBLOCK), readable: false, writable: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

function openReader(path: string): Socket {
  return new Socket({ fd: openSync(path, C.O_RDONLY | C.O_NONBLOCK), readable: true, writable: false });
}

async function stateful(): Promise<number[]> {
  const input = await openWriter(join(dir, `${service}.in`));
  const output = openReader(join(dir, `${service}.out`));
  let buffered = '';
  let waiter: (() => void) | null = null;
  output.setEncoding('utf8');
  output.on('data', (text: string) => {
    buffered += text;
    if (buffered.length >= REQUEST.length && waiter) waiter();
  });
  const roundTrip = (): Promise<void> =>
    new Promise((resolve) => {
      waiter = () => {
        buffered = buffered.slice(REQUEST.length);
        waiter = null;
        resolve();
      };
      input.write(REQUEST);
    });
  return measure(roundTrip);
}

async function oneShot(): Promise<number[]> {
  const roundTrip = async (): Promise<void> => {
    const output = openReader(join(dir, `${service}.out`));
    const input = await openWriter(join(dir, `${service}.in`));
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      output.on('data', (chunk: Buffer) => (received += chunk.length));
      output.on('end', () => (received === REQUEST.length ? resolve() : reject(new Error(`got ${received} bytes back`))));
      output.on('error', reject);
    });
    input.end(REQUEST);
    await done;
    output.destroy();
  };
  return measure(roundTrip);
}

async function sudo(): Promise<number[]> {
  const [script, arg] = [dir, service];
  const roundTrip = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn('sudo', ['-n', script, arg], { stdio: ['pipe', 'pipe', 'inherit'] });
      let received = 0;
      child.stdout.on('data', (chunk: Buffer) => (received += chunk.length));
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 && received === REQUEST.length
          ? resolve()
          : reject(new Error(`sudo -n ${script}: exit ${code}, got ${received} bytes back`)),
      );
      child.stdin.end(REQUEST);
    });
  return measure(roundTrip);
}

async function measure(roundTrip: () => Promise<void>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await roundTrip();
  if (waitGo) {
    process.stdout.write('ready\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
  }
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await roundTrip();
    latencies.push(performance.now() - t0);
  }
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  process.stdout.write(`${JSON.stringify({ latencies, elapsedMs, cpuUs: cpu.user + cpu.system })}\n`);
  return latencies;
}

await (mode === 'stateful' ? stateful() : mode === 'sudo' ? sudo() : oneShot());
process.exit(0);
