/**
 * Scale benchmark: create 1,000 slices through the API, let the control loop run over all
 * of them, then delete them.
 *
 *   npm run bench:scale [-- --json] [-- --slices N]
 *
 * Slices are created with an existing user ("nobody"), so the figure measures sliced's own
 * path (validation, durable state, cgroups in every hierarchy, per-slice socket). Creating a
 * Unix user per slice is measured separately on a sample, because useradd itself dominates
 * it. Last line of stdout: one JSON object with create_per_s, loop_ms_p99, rss_mb and more.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../test/helpers/daemon.js';
import { finish, inParallel, machine, round, say } from './lib.js';

const countIndex = process.argv.indexOf('--slices');
const SLICES = countIndex > 0 ? Number(process.argv[countIndex + 1]) : 1000;
const USER_SAMPLE = 50;
const CONCURRENCY = 16;
const PERIOD_MS = 100;

function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}

const daemon = await TestDaemon.start(['--period', String(PERIOD_MS), '--log-level', 'warn']);
try {
  const names = Array.from({ length: SLICES }, (_, i) => `s${String(i).padStart(4, '0')}`);
  say(`creating ${SLICES} slices (user nobody, ${CONCURRENCY} requests in flight)...`);
  const createS = await inParallel(
    names,
    (name) => daemon.api.post('/v1/slices', { name, user: 'nobody', cpu: { shares: 100 + (Number(name.slice(1)) % 50) } }),
    CONCURRENCY,
  );
  say(`  ${round(SLICES / createS)} creates/s`);

  say(`control loop over ${SLICES} slices, period ${PERIOD_MS} ms...`);
  await sleep(PERIOD_MS * 110); // the loop statistics cover the last 100 passes
  const node = await daemon.api.get<{ loop: { window: number; p50Ms: number; p99Ms: number; maxMs: number }; slices: number }>('/v1/node');
  if (node.slices !== SLICES) throw new Error(`expected ${SLICES} slices, the daemon has ${node.slices}`);
  const rss = rssMb(daemon.pid!);
  say(`  loop p50 ${node.loop.p50Ms} ms, p99 ${node.loop.p99Ms} ms over ${node.loop.window} passes; daemon RSS ${round(rss)} MB`);

  say(`deleting ${SLICES} slices...`);
  const deleteS = await inParallel(names, (name) => daemon.api.delete(`/v1/slices/${name}`), CONCURRENCY);
  say(`  ${round(SLICES / deleteS)} deletes/s`);

  say(`creating and deleting ${USER_SAMPLE} slices with their own Unix users (useradd/userdel)...`);
  const withUsers = Array.from({ length: USER_SAMPLE }, (_, i) => `u${i}`);
  const createUsersS = await inParallel(withUsers, (name) => daemon.api.post('/v1/slices', { name }), CONCURRENCY);
  const deleteUsersS = await inParallel(withUsers, (name) => daemon.api.delete(`/v1/slices/${name}`), CONCURRENCY);
  say(`  ${round(USER_SAMPLE / createUsersS)} creates/s, ${round(USER_SAMPLE / deleteUsersS)} deletes/s`);

  finish({
    bench: 'scale',
    slices: SLICES,
    create_per_s: round(SLICES / createS),
    delete_per_s: round(SLICES / deleteS),
    loop_ms_p50: node.loop.p50Ms,
    loop_ms_p99: node.loop.p99Ms,
    loop_ms_max: node.loop.maxMs,
    loop_passes_measured: node.loop.window,
    rss_mb: round(rss),
    create_with_user_per_s: round(USER_SAMPLE / createUsersS),
    delete_with_user_per_s: round(USER_SAMPLE / deleteUsersS),
    machine: machine(),
  });
} finally {
  await daemon.destroy();
}
