/**
 * Dashboard benchmark: how soon a change in the kernel shows on the page, what the page
 * weighs, and what open dashboards cost the daemon.
 *
 *   npm run bench:web [-- --json] [-- --changes N] [-- --seconds S] [-- --slices N]
 *
 * - update latency: a shell inside slice `wb` writes 64 MiB to a tmpfs file, or removes it
 *   (page cache charged to the slice's memory group: a change the kernel shows at once); the
 *   time from the shell's "done" to the node page in Chromium showing the slice's memory over,
 *   or under, 32 MiB. N changes (default 50); p50 and p99, also in control periods (target
 *   <= 1.5: the next pass reads the change, then the frame travels).
 * - page weight: index.html, app.js and app.css as the server sends them to a browser that
 *   accepts brotli (target <= 300 KB).
 * - daemon CPU: the daemon's own CPU time over S seconds (default 20) with no page open, then
 *   with 5 pages open, 20 slices on the node (--slices); the difference in % of one core
 *   (target <= 2). Meanwhile the first page's main thread: the share of time it is busy
 *   (Chromium's TaskDuration), which says whether the page stays responsive at that size.
 *
 * - baseline: in the same run, a client polling the API once a control period (as a scraper
 *   at that interval would) sees the same changes; baseline_poll_ms_p50/p99.
 *
 * Last line of stdout: one JSON object with update_ms_p50, update_ms_p99, page_kb_compressed,
 * daemon_cpu_pct_5_clients, control_period_ms (and the parts they come from).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { freePort, SLICECTL, TestDaemon } from '../test/helpers/daemon.js';
import { browserSkipReason, launchBrowser } from '../test/helpers/browser.js';
import { argValue, finish, inParallel, loadAverage, machine, onInterrupt, percentile, round, say } from './lib.js';
import type { WebInfo } from '../src/wire/web.js';
import type { SliceView } from '../src/wire/slices.js';

const CHANGES = Number(argValue('--changes') ?? 50);
const SECONDS = Number(argValue('--seconds') ?? 20);
const SLICES = Number(argValue('--slices') ?? 20);
const PAGES = 5;
const SIZE_MB = 64;
const THRESHOLD = 32 * 1024 * 1024;
const SHM = `/dev/shm/sliced-bench-web-${process.pid}`;

/** What the page function below uses of the browser's globals (this file is typed for Node). */
interface BrowserGlobals {
  document: { querySelector(selector: string): { getAttribute(name: string): string | null } | null };
}

function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

async function daemonCpuPct(pid: number, seconds: number): Promise<number> {
  const before = cpuSecondsOf(pid);
  const started = performance.now();
  await sleep(seconds * 1000);
  return ((cpuSecondsOf(pid) - before) / ((performance.now() - started) / 1000)) * 100;
}

async function memoryOnPage(page: Page): Promise<number> {
  return Number(await page.getAttribute('#slice-table [data-slice="wb"] [data-memory]', 'data-memory'));
}

const reason = await browserSkipReason();
if (reason) {
  say(`bench:web cannot run: ${reason}`);
  process.exit(77);
}
const port = await freePort();
const daemon = await TestDaemon.start(['--web', `127.0.0.1:${port}`, '--log-level', 'warn']);
const browser = await launchBrowser();
const deregister = onInterrupt(async () => {
  rmSync(SHM, { force: true });
  await browser.close();
  await daemon.destroy();
});
try {
  // An existing user for all (useradd would dominate the set-up of a thousand).
  await inParallel(
    Array.from({ length: SLICES }, (_, i) => (i === 0 ? 'wb' : `w${i}`)),
    (name) => daemon.api.post('/v1/slices', { name, user: 'nobody' }),
    8,
  );
  const info = await daemon.cliJson<WebInfo>(['web']);
  const periodMs = (await daemon.api.get<{ controlPeriodMs: number }>('/v1/node')).controlPeriodMs;

  // Page weight, as a browser that accepts brotli gets it.
  let bytes = 0;
  for (const path of ['/', '/app.js', '/app.css']) {
    const res = await fetch(new URL(path, info.url), { headers: { 'accept-encoding': 'br' } });
    // fetch hands over the body decompressed: the bytes sent are in content-length.
    const sent = Number(res.headers.get('content-length'));
    await res.arrayBuffer();
    if (!(sent > 0)) throw new Error(`${path}: no content-length in the answer`);
    bytes += sent;
    say(`${path}: ${sent} bytes, ${res.headers.get('content-encoding') ?? 'identity'}`);
  }
  const pageKb = bytes / 1024;

  // Daemon CPU: no page, then 5 pages on the node page.
  const pid = daemon.pid!;
  await sleep(3000);
  const idlePct = await daemonCpuPct(pid, SECONDS);
  const contexts = [];
  for (let i = 0; i < PAGES; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    const page = await context.newPage();
    await page.goto(info.signInUrl);
    // Among a thousand slices, the row drawn is the one asked for.
    await page.fill('#slice-filter', 'wb');
    await page.waitForSelector('#slice-table [data-slice="wb"]');
    contexts.push({ context, page });
  }
  await sleep(3000);
  // The first page's main thread meanwhile (Chromium's own accounting): how busy the frames keep it.
  const cdp = await contexts[0]!.context.newCDPSession(contexts[0]!.page);
  await cdp.send('Performance.enable');
  const busy = async (): Promise<number> =>
    (await cdp.send('Performance.getMetrics')).metrics.find((m: { name: string }) => m.name === 'TaskDuration')!.value;
  const busyBefore = await busy();
  const busyStarted = performance.now();
  const withPagesPct = await daemonCpuPct(pid, SECONDS);
  const pageBusyPct = (((await busy()) - busyBefore) / ((performance.now() - busyStarted) / 1000)) * 100;
  say(`the page's main thread was busy ${round(pageBusyPct)}% of the time with ${SLICES} slices`);
  say(`daemon CPU: ${round(idlePct)}% of a core with no page open, ${round(withPagesPct)}% with ${PAGES}`);

  // Update latency, on the first page (the others stay open).
  const page = contexts[0]!.page;
  const shell = spawn(
    process.execPath,
    [
      SLICECTL,
      '--socket',
      daemon.socket,
      'exec',
      '--slice',
      'wb',
      '--',
      '/bin/sh',
      '-c',
      'while read -r cmd; do eval "$cmd"; echo done; done',
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: shell.stdout! })[Symbol.asyncIterator]();
  const run = async (cmd: string): Promise<number> => {
    shell.stdin!.write(`${cmd}\n`);
    await lines.next();
    return performance.now();
  };
  // The baseline: what a client that polls the API once a period (a Prometheus-style scrape
  // at the control period) sees of the same changes.
  const polled: Array<{ at: number; memory: number }> = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      // A failed poll (the daemon gone after a failure elsewhere) ends the polling quietly.
      const view = await daemon.api.get<SliceView>('/v1/slices/wb').catch(() => null);
      if (!view) break;
      polled.push({ at: performance.now(), memory: view.live?.memoryBytes ?? 0 });
      await sleep(periodMs);
    }
  })();
  // Past 100 groups the feed reads memory and counters every ceil(groups / 100) passes.
  const waitMs = (2 * Math.ceil(SLICES / 100) + 5) * periodMs;
  const latencies: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const up = i % 2 === 0;
    // Changes land at random points of the control period, as they do in life.
    await sleep(Math.random() * periodMs);
    const done = await run(up ? `dd if=/dev/zero of=${SHM} bs=1M count=${SIZE_MB} 2>/dev/null` : `rm -f ${SHM}`);
    await page.waitForFunction(
      ([above, threshold]) => {
        const value = Number(
          (globalThis as unknown as BrowserGlobals).document
            .querySelector('#slice-table [data-slice="wb"] [data-memory]')
            ?.getAttribute('data-memory'),
        );
        return above ? value > threshold : value < threshold;
      },
      [up, THRESHOLD] as const,
      { polling: 5, timeout: waitMs },
    );
    latencies.push(performance.now() - done);
    const seen = (): { at: number } | undefined => polled.find((p) => p.at > done && (up ? p.memory > THRESHOLD : p.memory < THRESHOLD));
    for (const deadline = performance.now() + waitMs; !seen(); await sleep(20)) {
      if (performance.now() > deadline) throw new Error(`the polling client did not see change ${i} within ${waitMs} ms`);
    }
    baseline.push(seen()!.at - done);
    if (i === 0) say(`first change seen after ${Math.round(latencies[0]!)} ms (page shows ${await memoryOnPage(page)} bytes)`);
  }
  polling = false;
  await poller;
  shell.stdin!.end();
  shell.kill();
  rmSync(SHM, { force: true });
  for (const { context } of contexts) await context.close();

  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  say(`update latency over ${CHANGES} changes: p50 ${Math.round(p50)} ms, p99 ${Math.round(p99)} ms (control period ${periodMs} ms)`);
  const b50 = percentile(baseline, 50);
  const b99 = percentile(baseline, 99);
  say(`baseline, polling the API once a period: p50 ${Math.round(b50)} ms, p99 ${Math.round(b99)} ms`);
  finish({
    bench: 'web',
    update_ms_p50: round(p50, 1),
    update_ms_p99: round(p99, 1),
    update_periods_p50: round(p50 / periodMs, 2),
    update_periods_p99: round(p99 / periodMs, 2),
    baseline_poll_ms_p50: round(b50, 1),
    baseline_poll_ms_p99: round(b99, 1),
    page_kb_compressed: round(pageKb, 1),
    daemon_cpu_pct_idle: round(idlePct, 2),
    daemon_cpu_pct_with_pages: round(withPagesPct, 2),
    daemon_cpu_pct_5_clients: round(withPagesPct - idlePct, 2),
    page_main_thread_pct: round(pageBusyPct, 2),
    control_period_ms: periodMs,
    changes: CHANGES,
    slices: SLICES,
    seconds: SECONDS,
    machine: machine(),
    load: loadAverage(),
  });
} finally {
  deregister();
  rmSync(SHM, { force: true });
  await browser.close();
  await daemon.destroy();
}
