/**
 * vsys benchmark: round trips of a 32-byte request through a stateful echo service and a
 * one-shot echo service, from processes running as the slices' users, and in the same run
 * the baseline of what vsys replaces: the slice's own user running the same script as root
 * with `sudo -n` per request (a sudoers rule the benchmark installs in
 * /etc/sudoers.d/sliced-bench-vsys-<pid> and removes, also on failure), from the same client
 * in the same slice with the same warm-up as the one-shot calls.
 *
 *   npm run bench:vsys [-- --json] [-- --requests N]
 *
 * Last line of stdout: one JSON object with stateful_p50_ms, stateful_p99_ms, stateful_rps,
 * oneshot_p50_ms, sudo_baseline_p50_ms, concurrent_p99_ms (50 slices calling at once).
 *
 * The clients run in their slices (`slicectl exec`), as a slice's processes do under
 * sliced, and so do the scripts. For comparison with the runs recorded before 2026-12-02's
 * second session, the concurrent phase runs a second time with the clients outside the
 * slices, as the slices' users in the benchmark's own cgroup: concurrent_outside_*.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { SLICECTL, TestDaemon, userIds } from '../test/helpers/daemon.js';
import { finish, machine, onInterrupt, percentile, round, say } from './lib.js';

const requestsIndex = process.argv.indexOf('--requests');
const REQUESTS = requestsIndex > 0 ? Number(process.argv[requestsIndex + 1]) : 5000;
const ONE_SHOT_REQUESTS = Math.max(50, Math.round(REQUESTS / 20));
const SLICES = 50;
const CONCURRENT_REQUESTS = Math.max(50, Math.round(REQUESTS / 25));
const CLIENT = resolve(import.meta.dirname, 'vsys-client.ts');
const ECHO = '#!/bin/sh\nexec cat\n';

interface ClientResult {
  latencies: number[];
  elapsedMs: number;
  /** CPU time the client itself used while measuring (user + system, microseconds). */
  cpuUs: number;
}

type Where = 'in slice' | 'outside';

/**
 * Start a client as the slice's user, in the slice (slicectl exec) or outside it; resolves
 * once it printed "ready" (with waitGo) or its result.
 */
function client(
  slice: string,
  where: Where,
  args: string[],
  waitGo: boolean,
): { ready: Promise<void>; go: () => void; result: Promise<ClientResult> } {
  const repo = resolve(import.meta.dirname, '..');
  const command = [process.execPath, '--import', 'tsx', CLIENT, ...args, ...(waitGo ? ['--wait-go'] : [])];
  const options = {
    cwd: repo,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp' },
    stdio: ['pipe', 'pipe', 'inherit'] as ['pipe', 'pipe', 'inherit'],
  };
  const child =
    where === 'in slice'
      ? spawn(process.execPath, [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', slice, '--chdir', repo, '--', ...command], options)
      : spawn(command[0]!, command.slice(1), { ...userIds(`sl-${slice}`), ...options });
  const lines = createInterface({ input: child.stdout });
  let readyResolve: () => void = () => undefined;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const result = new Promise<ClientResult>((resolvePromise, reject) => {
    lines.on('line', (line) => {
      if (line === 'ready') readyResolve();
      else resolvePromise(JSON.parse(line) as ClientResult);
    });
    child.on('exit', (code) => code !== 0 && reject(new Error(`client of ${slice} ${args.join(' ')} exited with ${code}`)));
  });
  if (!waitGo) readyResolve();
  return { ready, go: () => child.stdin.write('go\n'), result };
}

/**
 * The baseline's sudoers rule: the slice's user may run the echo script as root without a
 * password, nothing else. Checked with visudo before it is put in place (a broken file in
 * /etc/sudoers.d would break sudo for everyone); removed at the end, also on failure.
 */
function installSudoRule(user: string, script: string): { file: string; remove: () => void } {
  const file = `/etc/sudoers.d/sliced-bench-vsys-${process.pid}`;
  const draft = `${file}.draft`; // sudo skips names with a dot
  const remove = (): void => {
    rmSync(draft, { force: true });
    rmSync(file, { force: true });
  };
  try {
    writeFileSync(
      draft,
      `# bench/vsys.ts (pid ${process.pid}): the one-shot baseline; removed when the benchmark ends
${user} ALL=(root) NOPASSWD: ${script}
`,
      { mode: 0o440 },
    );
    const checked = spawnSync('visudo', ['-c', '-q', '-f', draft], { encoding: 'utf8' });
    if (checked.status !== 0) throw new Error(`visudo rejected the benchmark's sudoers rule: ${checked.stdout}${checked.stderr}`);
    renameSync(draft, file);
  } catch (err) {
    remove();
    throw err;
  }
  return { file, remove };
}

const loadBefore = loadavg().map((l) => round(l, 2));
const sudoMissing = spawnSync('sudo', ['-V'], { stdio: 'ignore' }).status !== 0;
if (sudoMissing) say('SKIP sudo baseline: sudo is not installed (Debian package sudo; scripts/setup installs it)');
const daemon = await TestDaemon.start(['--log-level', 'warn']);
let sudoRule: { file: string; remove: () => void } | null = null;
const undo = onInterrupt(async () => {
  sudoRule?.remove();
  await daemon.destroy();
});
try {
  const names = Array.from({ length: SLICES }, (_, i) => `v4n${String(i).padStart(2, '0')}`);
  say(`creating ${SLICES} slices with their own users...`);
  for (const name of names) await daemon.api.post('/v1/slices', { name });
  const services = join(daemon.stateDir, 'vsys');
  mkdirSync(services, { recursive: true, mode: 0o700 });
  writeFileSync(join(services, 'echo'), ECHO, { mode: 0o755 });
  writeFileSync(join(services, 'echo.acl'), names.join('\n') + '\n');
  writeFileSync(join(services, 'secho'), ECHO, { mode: 0o755 });
  writeFileSync(join(services, 'secho.acl'), `#! stateful\n${names.join('\n')}\n`);
  const dirOf = (slice: string): string => join(daemon.runDir, 'vsys', slice);
  for (let waited = 0; !existsSync(join(dirOf(names.at(-1)!), 'secho.out')); waited += 50) {
    if (waited > 5000) throw new Error('the vsys FIFOs did not appear within 5 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const first = names[0]!;

  /** 50 clients, one per slice, started together; latencies of all and the wall time. */
  const concurrent = async (where: Where): Promise<{ all: number[]; ms: number; load: number; clientCpuUs: number }> => {
    say(
      `${SLICES} slices at once (clients ${where === 'in slice' ? 'in their slices' : 'outside the slices'}), ${CONCURRENT_REQUESTS} stateful round trips each...`,
    );
    const clients = names.map((slice) => client(slice, where, ['stateful', dirOf(slice), 'secho', String(CONCURRENT_REQUESTS)], true));
    await Promise.all(clients.map((c) => c.ready));
    const load = loadavg()[0]!;
    const started = performance.now();
    for (const c of clients) c.go();
    const results = await Promise.all(clients.map((c) => c.result));
    const ms = performance.now() - started;
    const all = results.flatMap((r) => r.latencies);
    const clientCpuUs = results.reduce((sum, r) => sum + r.cpuUs, 0);
    say(
      `  p50 ${round(percentile(all, 50), 3)} ms, p99 ${round(percentile(all, 99), 3)} ms over ${all.length} round trips, ${round((all.length / ms) * 1000)} per second`,
    );
    return { all, ms, load, clientCpuUs };
  };

  say(`stateful echo: ${REQUESTS} sequential round trips from slice ${first}...`);
  const stateful = await client(first, 'in slice', ['stateful', dirOf(first), 'secho', String(REQUESTS)], false).result;
  const statefulRps = (stateful.latencies.length / stateful.elapsedMs) * 1000;
  say(
    `  p50 ${round(percentile(stateful.latencies, 50), 3)} ms, p99 ${round(percentile(stateful.latencies, 99), 3)} ms, ${round(statefulRps)} requests/s`,
  );

  say(`one-shot echo: ${ONE_SHOT_REQUESTS} calls...`);
  const oneShot = await client(first, 'in slice', ['oneshot', dirOf(first), 'echo', String(ONE_SHOT_REQUESTS)], false).result;
  say(`  p50 ${round(percentile(oneShot.latencies, 50), 3)} ms, p99 ${round(percentile(oneShot.latencies, 99), 3)} ms`);

  let baseline: number[] | null = null;
  if (!sudoMissing) {
    sudoRule = installSudoRule(`sl-${first}`, join(services, 'echo'));
    say(`sudo baseline: sudo -n + the same script from slice ${first}'s user (rule in ${sudoRule.file}), ${ONE_SHOT_REQUESTS} calls...`);
    baseline = (await client(first, 'in slice', ['sudo', join(services, 'echo'), first, String(ONE_SHOT_REQUESTS)], false).result)
      .latencies;
    sudoRule.remove();
    sudoRule = null;
    say(`  p50 ${round(percentile(baseline, 50), 3)} ms, p99 ${round(percentile(baseline, 99), 3)} ms`);
  }

  const inSlices = await concurrent('in slice');
  const outside = await concurrent('outside');
  const all = inSlices.all;

  finish({
    bench: 'vsys',
    request_bytes: 32,
    stateful_requests: stateful.latencies.length,
    stateful_p50_ms: round(percentile(stateful.latencies, 50), 3),
    stateful_p99_ms: round(percentile(stateful.latencies, 99), 3),
    stateful_rps: round(statefulRps),
    oneshot_requests: oneShot.latencies.length,
    oneshot_p50_ms: round(percentile(oneShot.latencies, 50), 3),
    oneshot_p99_ms: round(percentile(oneShot.latencies, 99), 3),
    sudo_baseline_p50_ms: baseline ? round(percentile(baseline, 50), 3) : null,
    sudo_baseline_p99_ms: baseline ? round(percentile(baseline, 99), 3) : null,
    concurrent_slices: SLICES,
    concurrent_requests: all.length,
    concurrent_p50_ms: round(percentile(all, 50), 3),
    concurrent_p90_ms: round(percentile(all, 90), 3),
    concurrent_p99_ms: round(percentile(all, 99), 3),
    concurrent_max_ms: round(Math.max(...all), 3),
    concurrent_rps: round((all.length / inSlices.ms) * 1000),
    // How much of the two CPUs the benchmark's own clients took: near 2 means the tail is
    // the clients queueing for CPU, not vsys.
    concurrent_client_cpus: round(inSlices.clientCpuUs / 1000 / inSlices.ms, 2),
    concurrent_client_cpu_us_per_request: round(inSlices.clientCpuUs / all.length, 1),
    concurrent_outside_p50_ms: round(percentile(outside.all, 50), 3),
    concurrent_outside_p99_ms: round(percentile(outside.all, 99), 3),
    concurrent_outside_rps: round((outside.all.length / outside.ms) * 1000),
    concurrent_outside_client_cpus: round(outside.clientCpuUs / 1000 / outside.ms, 2),
    load_before: loadBefore,
    load_during_concurrent: round(inSlices.load, 2),
    machine: machine(),
  });
} finally {
  sudoRule?.remove();
  await daemon.destroy();
  undo();
}
