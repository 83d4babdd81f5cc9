/**
 * Helpers for the networking tests: processes started in a slice with `slicectl exec`
 * (streamed, not awaited), iperf3 runs, small UDP servers/clients written to a temp dir the
 * slices' users can read, kernel counters of a veth, and the list of kernel objects a test
 * daemon's tag still has (which must be empty after cleanup).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLICECTL, type TestDaemon } from './daemon.js';
import { commandSkipReason, SLOW } from './env.js';

export function netSkipReason(): string | null {
  return (
    commandSkipReason('ip', 'iproute2') ??
    commandSkipReason('nft', 'nftables') ??
    commandSkipReason('tc', 'iproute2') ??
    commandSkipReason('iperf3', 'iperf3') ??
    commandSkipReason('nsenter', 'util-linux')
  );
}

export interface SliceProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves once the output matches (or rejects after the timeout). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit status. */
  exited: Promise<number>;
  stop(): Promise<void>;
}

/** Start a command in a slice through `slicectl exec` and keep it running. */
export function startInSlice(daemon: TestDaemon, slice: string, command: string[]): SliceProcess {
  const child = spawn(process.execPath, [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', slice, '--', ...command], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  return {
    child,
    output: () => out,
    async waitFor(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs * SLOW;
      while (!pattern.test(out)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in output of ${command.join(' ')}:\n${out}`);
        if (child.exitCode !== null) throw new Error(`${command.join(' ')} exited (${child.exitCode}) before ${pattern}:\n${out}`);
        await sleep(50);
      }
    },
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface IperfResult {
  /** Payload bytes the sender wrote. */
  sentBytes: number;
  /** Payload bytes the receiver got. */
  bytes: number;
  /** Receiver's rate. */
  bitsPerSecond: number;
}

/** Parse iperf3 -J output (client side). */
export function parseIperf(json: string): IperfResult {
  const doc = JSON.parse(json) as {
    end: { sum_sent: { bytes: number }; sum_received: { bytes: number; bits_per_second: number } };
    error?: string;
  };
  if (doc.error) throw new Error(`iperf3: ${doc.error}`);
  return { sentBytes: doc.end.sum_sent.bytes, bytes: doc.end.sum_received.bytes, bitsPerSecond: doc.end.sum_received.bits_per_second };
}

/** Run an iperf3 client in a slice and return the receiver's figures. */
export async function iperfClient(daemon: TestDaemon, slice: string, args: string[]): Promise<IperfResult> {
  const result = await daemon.cli(['exec', '--slice', slice, '--', 'iperf3', '-J', ...args]);
  if (result.code !== 0)
    throw new Error(`iperf3 ${args.join(' ')} in ${slice} failed (${result.code}): ${result.stdout.slice(-800)} ${result.stderr}`);
  return parseIperf(result.stdout);
}

/** An iperf3 server in a slice, ready when it listens. */
export async function iperfServer(daemon: TestDaemon, slice: string, bind: string, port: number): Promise<SliceProcess> {
  const server = startInSlice(daemon, slice, ['iperf3', '-s', '--forceflush', '-B', bind, '-p', String(port)]);
  await server.waitFor(/Server listening/);
  return server;
}

export function vethCounters(veth: string): { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number; txDropped: number } {
  const read = (name: string): number => Number(readFileSync(`/sys/class/net/${veth}/statistics/${name}`, 'utf8'));
  return {
    rxPackets: read('rx_packets'),
    rxBytes: read('rx_bytes'),
    txPackets: read('tx_packets'),
    txBytes: read('tx_bytes'),
    // A veth drops what its peer's backlog has no room for (a loaded machine): counted here.
    txDropped: read('tx_dropped'),
  };
}

/** Kernel objects with the daemon's tag that still exist (must be none after cleanup). */
export function leftovers(tag: string): string[] {
  const found: string[] = [];
  let netns: string[] = [];
  try {
    netns = readdirSync('/run/netns');
  } catch {
    // No namespaces at all.
  }
  found.push(...netns.filter((n) => n.startsWith(`sliced${tag}-`)).map((n) => `netns ${n}`));
  found.push(
    ...readdirSync('/sys/class/net')
      .filter((l) => [`slbr${tag}`, `slifb${tag}`].includes(l) || l.startsWith(`slv${tag}-`))
      .map((l) => `link ${l}`),
  );
  const tables = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout;
  found.push(
    ...tables
      .split('\n')
      .filter((l) => l.trim().endsWith(` sliced${tag}`))
      .map((l) => l.trim()),
  );
  return found;
}

export function readSysctl(key: string): string {
  return readFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8').trim();
}

/** Small node scripts the slices' users can run (the test's repository may not be readable to them). */
export class Scripts {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'sliced-net-'));
    chmodSync(this.dir, 0o755);
    this.write(
      'udp-server.mjs',
      `import dgram from 'node:dgram';
const [family, address, port, name] = process.argv.slice(2);
// IPv6 only, so that a v4 and a v6 server can share the port number.
const socket = dgram.createSocket(family === '6' ? { type: 'udp6', ipv6Only: true } : 'udp4');
socket.on('error', (err) => { process.stdout.write('error ' + err.message + '\\n'); process.exit(1); });
socket.on('message', (msg, from) => {
  process.stdout.write('got ' + msg.toString() + ' from ' + from.address + '\\n');
  socket.send(name + ':' + msg.toString(), from.port, from.address);
});
socket.bind(Number(port), address, () => process.stdout.write('listening\\n'));
`,
    );
    this.write(
      'udp-ask.mjs',
      `import dgram from 'node:dgram';
const [family, address, port, message] = process.argv.slice(2);
const socket = dgram.createSocket(family === '6' ? 'udp6' : 'udp4');
const timer = setTimeout(() => { process.stdout.write('timeout\\n'); process.exit(2); }, 3000);
socket.on('message', (msg) => { process.stdout.write('answer ' + msg.toString() + '\\n'); clearTimeout(timer); socket.close(); });
socket.send(message, Number(port), address);
`,
    );
  }

  private write(name: string, text: string): void {
    writeFileSync(join(this.dir, name), text, { mode: 0o644 });
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
