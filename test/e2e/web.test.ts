/**
 * The dashboard (sliced --web) on a real daemon: the token file is root's; nothing but the
 * sign-in answers without a session; an action needs the session's CSRF token and this
 * server's Origin; only the views and actions the dashboard offers pass; the page comes
 * compressed with headers that forbid framing. Then in headless Chromium: every page loads
 * without console errors (screenshots in test-artifacts/), the node page follows a slice's
 * burner as it starts and stops (the figures read from the page are the API's of the same
 * period), the framework graph shows a directory and a link made with slicectl, and a
 * simulation saved with slicectl simulate --save shows with its charts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import fc from 'fast-check';
import { fuzzSeed } from '../helpers/prng.js';
import { freePort, SLICECTL, TestDaemon } from '../helpers/daemon.js';
import { until } from '../helpers/cluster.js';
import { rawCall } from '../helpers/raw-api.js';
import { commandSkipReason, kernelSkipReason, skipWith, SLOW } from '../helpers/env.js';
import { ARTIFACTS, browserSkipReason, collectErrors, launchBrowser, screenshot } from '../helpers/browser.js';
import { Firefox, firefoxSkipReason } from '../helpers/firefox.js';
import type { SliceView } from '../../src/wire/slices.js';
import type { WebInfo } from '../../src/wire/web.js';
import type { LiveFrame } from '../../src/wire/dashboard.js';
import type { SimulationEntry } from '../../src/wire/simulations.js';

const RUNS = Number(process.env.HOSTILE_WEB_RUNS ?? 1000);

/** How long a page or a terminal is given to show something (the page's CSP forbids waitForFunction's evaluated strings: tests poll). */
const SHOWN_MS = 15_000 * SLOW;

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/web: ${skip}\n`);

describe('the dashboard', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let base: string;
  let info: WebInfo;
  let token: string;
  const burners: ChildProcess[] = [];

  before(async () => {
    const port = await freePort();
    daemon = await TestDaemon.start(['--web', `127.0.0.1:${port}`]);
    base = `http://127.0.0.1:${port}`;
    for (const args of [
      ['domain', 'create', 'wd', '--cpu-reservation', '400m'],
      ['slice', 'create', 'wa', '--cpu-reservation', '200m'],
      ['slice', 'create', 'wb', '--cpu-reservation', '200m', '--domain', 'wd', '--memory', '256M'],
      ['slice', 'create', 'wc', '--cpu-reservation', '100m', '--domain', 'wd', '--cpu-limit', '500m'],
    ])
      assert.equal((await daemon.cli(args)).code, 0, args.join(' '));
    info = await daemon.cliJson<WebInfo>(['web']);
    token = decodeURIComponent(info.signInUrl.split('#token=')[1]!);
  });

  after(async () => {
    for (const b of burners) b.kill('SIGKILL');
    await daemon?.destroy();
  });

  /** A CPU-bound loop in `slice` until the returned function is called (killing slicectl would leave the loop running in the slice). */
  function burn(slice: string): () => void {
    const flag = join(daemon.stateDir, '..', `burn-${slice}`);
    writeFileSync(flag, '', { mode: 0o644 });
    burners.push(
      spawn(
        process.execPath,
        [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', slice, '--', '/bin/sh', '-c', `while [ -e ${flag} ]; do :; done`],
        {
          stdio: 'ignore',
        },
      ),
    );
    return () => rmSync(flag, { force: true });
  }

  async function signIn(): Promise<{ cookie: string; csrf: string }> {
    const res = await fetch(`${base}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    assert.equal(res.status, 200);
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    return { cookie, csrf: ((await res.json()) as { csrf: string }).csrf };
  }

  test('slicectl web names the address and a root-only token file; the page comes compressed, with headers that forbid framing', async () => {
    assert.equal(info.url, `${base}/`);
    assert.equal(info.tokenFile, join(daemon.stateDir, 'web-token'));
    const { mode, uid } = statSync(info.tokenFile);
    assert.equal(mode & 0o777, 0o600);
    assert.equal(uid, 0);
    assert.ok(token.length >= 32);
    const page = await fetch(`${base}/`, { headers: { 'accept-encoding': 'br' } });
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-encoding'), 'br');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.match(await page.text(), /app\.js/);
  });

  test('without a session only the sign-in answers; a wrong token is refused; an action needs the CSRF token and this Origin', async () => {
    const anonymous = await fetch(`${base}/api/v1/slices`);
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'EACCES');
    assert.equal((await fetch(`${base}/api/live`)).status, 401);
    const create = (headers: Record<string, string>): Promise<Response> =>
      fetch(`${base}/api/v1/slices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ name: 'wz' }),
      });
    assert.equal((await create({})).status, 401, 'an unauthenticated action is refused');
    const wrong = await fetch(`${base}/api/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'x'.repeat(43) }),
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('set-cookie'), null);

    const { cookie, csrf } = await signIn();
    const noCsrf = await create({ cookie });
    assert.equal(noCsrf.status, 403);
    assert.match(((await noCsrf.json()) as { error: { message: string } }).error.message, /CSRF/);
    assert.equal((await create({ cookie, 'x-sliced-csrf': 'not-it' })).status, 403);
    assert.equal((await create({ cookie, 'x-sliced-csrf': csrf, origin: 'http://evil.example' })).status, 403);
    assert.equal((await daemon.cli(['slice', 'show', 'wz'])).code, 3, 'nothing was created by the refused requests');

    // What the dashboard does not offer stays on the admin socket.
    const mkdir = await fetch(`${base}/api/v1/tree/mkdir`, {
      method: 'POST',
      headers: { cookie, 'x-sliced-csrf': csrf, 'content-type': 'application/json' },
      body: JSON.stringify({ path: '/schedulers/wx' }),
    });
    assert.equal(mkdir.status, 403);
    assert.equal((await fetch(`${base}/api/v1/tasks/000000000000/logs`, { headers: { cookie } })).status, 403);

    const created = await create({ cookie, 'x-sliced-csrf': csrf, origin: base });
    assert.equal(created.status, 201, await created.clone().text());
    const refused = await create({ cookie, 'x-sliced-csrf': csrf });
    assert.equal(refused.status, 409, "the API's refusal comes back as it is");
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /wz/);
    const removed = await fetch(`${base}/api/v1/slices/wz`, { method: 'DELETE', headers: { cookie, 'x-sliced-csrf': csrf } });
    assert.equal(removed.status, 200);

    const out = await fetch(`${base}/api/session`, { method: 'DELETE', headers: { cookie } });
    assert.equal(out.status, 200);
    assert.equal((await fetch(`${base}/api/v1/slices`, { headers: { cookie } })).status, 401, 'signed out');
  });

  test('hostile requests on the web port: always an answer, never a 5xx, a refusal in the one error format, nothing changed', async () => {
    const { cookie, csrf } = await signIn();
    const seed = fuzzSeed('hostile input, the web port');
    const before = JSON.stringify(await daemon.api.get('/v1/slices'));
    const segment = fc.oneof(
      fc.constantFrom(
        'v1',
        'slices',
        'wa',
        'nodes',
        'tasks',
        'tree',
        'vsys',
        'simulations',
        'live',
        'session',
        '..',
        '%2e%2e',
        '%2F',
        '%ff',
        'a%00b',
        '',
      ),
      fc.string({ maxLength: 16 }).map(encodeURIComponent),
    );
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS'),
      path: fc
        .tuple(fc.constantFrom('/api', '/api/v1'), fc.array(segment, { minLength: 1, maxLength: 5 }))
        .map(([prefix, parts]) => `${prefix}/${parts.join('/')}`),
      query: fc.option(fc.string({ maxLength: 20 }).map(encodeURIComponent), { nil: undefined }),
      body: fc.option(fc.oneof(fc.json(), fc.string({ maxLength: 40 })), { nil: undefined }),
      // With the session but a wrong (or no) CSRF token: no action may pass.
      auth: fc.constantFrom('none', 'session', 'session+bad-csrf', 'bad-cookie'),
    });
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (r.auth !== 'none') headers.cookie = r.auth === 'bad-cookie' ? 'sliced_session=forged' : cookie;
        if (r.auth === 'session+bad-csrf') headers['x-sliced-csrf'] = `${csrf}x`;
        const url = `${base}${r.path}${r.query ? `?${r.query}` : ''}`;
        const res = await fetch(url, {
          method: r.method,
          headers,
          ...(r.body !== undefined && r.method !== 'GET' ? { body: r.body } : {}),
          signal: AbortSignal.timeout(10_000),
        });
        if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
          // The live stream (a session's GET /api/live) never ends: its opening is the answer.
          assert.equal(res.status, 200);
          await res.body?.cancel();
          return;
        }
        const text = await res.text();
        assert.ok(res.status < 500, `${r.method} ${url}: ${res.status} ${text.slice(0, 200)}`);
        if (res.status >= 400)
          assert.match(text, /^\{"error":\{"code":"E[A-Z]+","message":".+"\}\}$/, `${r.method} ${url}: ${text.slice(0, 200)}`);
      }),
      { seed: seed | 0, numRuns: RUNS },
    );
    assert.equal(JSON.stringify(await daemon.api.get('/v1/slices')), before, 'nothing changed');
  });

  test('slicectl simulate --save keeps a run on the node: slicectl simulation list, show (--out: the charts simulate --out writes), delete; the web port serves it to a session only', async () => {
    const out = mkdtempSync(join(tmpdir(), 'sliced-test-sim-'));
    try {
      const run = (extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
        daemon.cli([
          'simulate',
          '--workload',
          'poisson:rate=7,duration=1,count=3000',
          '--nodes',
          '8',
          '--policy',
          'random',
          '--policy',
          'least_loaded',
          ...extra,
        ]);
      const saved = await run(['--out', join(out, 'run'), '--save', 'wsim']);
      assert.equal(saved.code, 0, saved.stderr);
      assert.match(saved.stdout, /saved as simulation wsim/);
      assert.equal((await run(['--save', '../x'])).code, 2, 'a name that cannot be saved is refused before the run');
      const list = await daemon.cliJson<{ simulations: SimulationEntry[] }>(['simulation', 'list']);
      assert.deepEqual(
        list.simulations.map((s) => [s.name, s.nodes, s.policies, s.charts]),
        [['wsim', 8, ['random', 'least_loaded'], ['utilisation.svg', 'slowdown-cdf.svg']]],
      );
      const shown = await daemon.cli(['simulation', 'show', 'wsim', '--out', join(out, 'shown')]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /^random +3000 /m);
      assert.match(shown.stdout, /^least_loaded +3000 /m);
      for (const file of ['results.json', 'utilisation.svg', 'slowdown-cdf.svg'])
        assert.equal(
          readFileSync(join(out, 'shown', file), 'utf8'),
          readFileSync(join(out, 'run', file), 'utf8'),
          `${file} as simulate wrote it`,
        );
      assert.equal(statSync(join(daemon.stateDir, 'simulations', 'wsim.json')).mode & 0o777, 0o600);

      // The web port: a session reads the list and the charts (as SVG); without one, nothing.
      const chart = `${base}/api/v1/simulations/wsim/utilisation.svg`;
      assert.equal((await fetch(chart)).status, 401);
      const { cookie } = await signIn();
      const svg = await fetch(chart, { headers: { cookie } });
      assert.equal(svg.status, 200);
      assert.match(svg.headers.get('content-type') ?? '', /^image\/svg\+xml/);
      assert.match(await svg.text(), /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      const missing = await fetch(`${base}/api/v1/simulations/wsim/other.svg`, { headers: { cookie } });
      assert.equal(missing.status, 404);

      // A document that is not the simulator's is refused, naming what is wrong; nothing is saved.
      const put = async (name: string, body: unknown): Promise<{ status: number; text: string }> => {
        const outcome = await rawCall(daemon.socket, { method: 'PUT', path: `/v1/simulations/${name}`, body });
        assert.equal(outcome.kind, 'answer');
        return outcome as { status: number; text: string };
      };
      const bad = await put('wbad', { workload: 'x', skipped: 0, seed: 1, loadPeriod: '1000', results: [], extra: 1 });
      assert.equal(bad.status, 400);
      assert.match(bad.text, /unknown field \\"extra\\"/);
      assert.equal((await daemon.cli(['simulation', 'show', 'wbad'])).code, 3);
      assert.equal((await daemon.cli(['simulation', 'delete', 'wbad'])).code, 3);

      // Saved twice: kept once, replaced.
      const again = await daemon.cli(['simulation', 'show', 'wsim', '--json']);
      assert.equal(again.code, 0);
      const keep = (JSON.parse(again.stdout) as { document: unknown }).document;
      assert.equal((await put('wsim2', keep)).status, 201);
      assert.equal((await put('wsim2', keep)).status, 200);
      assert.equal((await daemon.cli(['simulation', 'delete', 'wsim2'])).code, 0);
      assert.deepEqual(
        (await daemon.cliJson<{ simulations: SimulationEntry[] }>(['simulation', 'list'])).simulations.map((s) => s.name),
        ['wsim'],
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test('slicectl top: one reading without a terminal (text and JSON), and the full screen on a terminal with keys', async () => {
    const once = await daemon.cli(['top', '--once']);
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stdout, /^NAME +CPU +ENTITLED/m);
    assert.match(once.stdout, /▾ wd\//);
    const frame = await daemon.cliJson<LiveFrame>(['top']);
    assert.deepEqual(frame.rows.map((r) => `${r.kind}/${r.name}`).sort(), ['domain/wd', 'slice/wa', 'slice/wb', 'slice/wc']);
    assert.ok(
      frame.rows.every((r) => r.ioReadRate !== null),
      'rates from two readings',
    );
    assert.equal((await daemon.cli(['top', '--sort', 'bogus'])).code, 2);

    // On a terminal (script(1) gives it one): sort by memory, fold the domain, quit.
    const screen = spawn('script', ['-qfec', `${process.execPath} ${SLICECTL} --socket ${daemon.socket} top`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TERM: 'xterm', COLUMNS: '160', LINES: '40' },
    });
    let output = '';
    screen.stdout!.on('data', (d: Buffer) => (output += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => screen.once('exit', resolve));
    await until('the first screen', async () => output.includes('sort: cpu'), SHOWN_MS);
    screen.stdin!.write('m');
    await until('the sort by memory', async () => output.includes('sort: memory'), SHOWN_MS);
    screen.stdin!.write(' '); // the first line: domain wd
    await until('the domain folded', async () => output.includes('▸ wd/'), SHOWN_MS);
    screen.stdin!.write('q');
    assert.equal(await exited, 0);
    assert.ok(output.includes('\x1b[?1049l'), 'the terminal is given back');
  });

  /** Each page, and what shows it has loaded. */
  const PAGES = [
    ['node', '#slice-table [data-slice="wa"]'],
    ['slices', '#slice-tree [data-name="wb"]'],
    ['framework', '#tree-graph [data-path="/probes"]'],
    ['cluster', '#nodes tr[data-node]'],
    ['vsys', '#vsys-services'],
    ['simulations', '#simulations tr[data-simulation="wsim"]'],
  ] as const;

  test("in Firefox: every page loads without console errors, and the node page follows a slice's burner (screenshots in test-artifacts/)", async (t) => {
    const reason = firefoxSkipReason();
    if (reason) return skipWith(t, reason);
    const firefox = await Firefox.launch();
    try {
      await firefox.goto(info.signInUrl);
      await firefox.waitFor(`document.querySelector('${PAGES[0][1]}')`, SHOWN_MS);
      assert.equal(await firefox.evaluate<string>('location.hash'), '', 'the token is taken out of the address');
      const stop = burn('wa');
      try {
        await firefox.waitFor(
          `Number(document.querySelector('#slice-table [data-slice="wa"] [data-usage]')?.getAttribute('data-usage')) > 500`,
          SHOWN_MS,
        );
        assert.ok((await firefox.evaluate<number>("document.querySelectorAll('canvas').length")) > 0, 'the charts are drawn');
      } finally {
        stop();
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      for (const [name, ready] of PAGES) {
        await firefox.evaluate(`document.querySelector('nav a[href="#/${name}"]').click()`);
        await firefox.waitFor(`document.querySelector('${ready}')`, SHOWN_MS);
        await sleep(name === 'framework' ? 2500 : 500);
        await firefox.screenshot(join(ARTIFACTS, `firefox-dashboard-${name}.png`));
      }
      assert.deepEqual(firefox.errors, []);
    } finally {
      await firefox.close();
    }
  });

  describe('in Chromium', () => {
    let browser: Browser | null = null;
    let reason: string | null = null;

    before(async () => {
      reason = await browserSkipReason();
      if (reason === null) browser = await launchBrowser();
    });
    after(async () => {
      await browser?.close();
    });

    /** A page at 1280×800 in a context of its own, its console errors and failed requests collected, its confirmations accepted and kept. */
    async function openPage(): Promise<{ context: BrowserContext; page: Page; errors: string[]; asked: string[] }> {
      const context = await browser!.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      const asked: string[] = [];
      page.on('dialog', (dialog) => {
        asked.push(dialog.message());
        void dialog.accept();
      });
      return { context, page, errors: collectErrors(page), asked };
    }

    test('every page loads without console errors (screenshots in test-artifacts/)', async (t) => {
      if (reason) return skipWith(t, reason);
      const { context, page, errors } = await openPage();
      await page.goto(info.signInUrl);
      await page.waitForSelector('nav');
      assert.equal(new URL(page.url()).hash, '', 'the token is taken out of the address');
      // Two busy slices of the domain for a while, so the charts have something to show.
      const stops = [burn('wb'), burn('wc')];
      await sleep(6000);
      for (const [name, ready] of PAGES) {
        // Through the menu: the page stays loaded and keeps the live history.
        await page.click(`nav a[href="#/${name}"]`);
        await page.waitForSelector(ready, { timeout: 15_000 * SLOW });
        await sleep(name === 'framework' ? 2500 : 500);
        await screenshot(page, `dashboard-${name}`);
      }
      for (const stop of stops) stop();
      // wc is capped: its throttling is on the node page's timeline and in its events.
      await page.click('nav a[href="#/node"]');
      await until(
        'a throttling event of wc',
        async () => /slice\/wc: throttled in \d+ period/.test((await page.textContent('#events')) ?? ''),
        SHOWN_MS,
      );
      assert.deepEqual(errors, []);
      await context.close();
    });

    test("the node page follows a slice's burner; its figures are the API's of the same period", async (t) => {
      if (reason) return skipWith(t, reason);
      const { context, page, errors } = await openPage();
      await page.goto(info.signInUrl);
      await page.waitForSelector('#slice-table [data-slice="wa"]');
      const onPage = async (): Promise<number> =>
        Number(await page.getAttribute('#slice-table [data-slice="wa"] [data-usage]', 'data-usage'));
      const fromApi = async (): Promise<number> => (await daemon.cliJson<SliceView>(['slice', 'show', 'wa'])).live!.usage;
      const stop = burn('wa');
      await until('the burner on the page', async () => (await onPage()) > 500, SHOWN_MS);
      // The page shows the last pass; the API too: read around it, one of the two is the page's period.
      let matched = false;
      const seen: string[] = [];
      for (let i = 0; i < 5 && !matched; i++) {
        const [a, p, b] = [await fromApi(), await onPage(), await fromApi()];
        seen.push(`${a} ${p} ${b}`);
        matched = Math.abs(p - a) <= 0.1 || Math.abs(p - b) <= 0.1;
      }
      assert.ok(matched, `the page's CPU figure is not the API's of its period (API, page, API): ${seen.join('; ')}`);
      stop();
      await until('the page to show the burner gone', async () => (await onPage()) < 100, SHOWN_MS);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test('creating and deleting a slice from the page asks first; a refusal shows the API message', async (t) => {
      if (reason) return skipWith(t, reason);
      const { context, page, errors, asked } = await openPage();
      await page.goto(info.signInUrl);
      await page.click('nav a[href="#/slices"]');
      await page.waitForSelector('#slice-tree [data-name="wa"]');
      const create = async (name: string, reservation: string): Promise<void> => {
        await page.fill('#create-slice input[name="name"]', name);
        await page.fill('#create-slice input[name="reservation"]', reservation);
        await page.click('#create-slice button[type="submit"]');
      };
      await create('wn', '100m');
      await page.waitForSelector('#slice-tree [data-name="wn"]', { timeout: 10_000 * SLOW });
      assert.equal((await daemon.cliJson<SliceView>(['slice', 'show', 'wn'])).cpu.reservation, 100);
      await create('wo', '100000m');
      await until('the refusal on the page', async () => /refused: .*/.test((await page.textContent('#slices-message')) ?? ''), SHOWN_MS);
      assert.match((await page.textContent('#slices-message'))!, /100000m|reserv/i, "the API's own message");
      assert.equal((await daemon.cli(['slice', 'show', 'wo'])).code, 3);
      await page.click('#slice-tree [data-name="wn"] button.danger');
      await until('the slice to go', async () => (await daemon.cli(['slice', 'show', 'wn'])).code === 3, SHOWN_MS);
      assert.deepEqual(asked, ['Create slice wn?', 'Create slice wo?', 'Delete slice wn? Its processes are ended.']);
      assert.deepEqual(
        errors.filter((e) => !/HTTP 409|status of 409/.test(e)),
        [],
        'only the refusal failed',
      );
      await context.close();
    });

    test('the framework graph shows a directory and a link made with slicectl', async (t) => {
      if (reason) return skipWith(t, reason);
      const { context, page, errors } = await openPage();
      await page.goto(info.signInUrl);
      await page.goto(`${base}/#/framework`);
      await page.waitForSelector('#tree-graph [data-path="/probes/slice_usage"]');
      assert.equal((await daemon.cli(['mkdir', '/schedulers/webt'])).code, 0);
      await page.waitForSelector('#tree-graph [data-path="/schedulers/webt"]', { timeout: 10_000 * SLOW });
      const linked = await daemon.cli(['ln', '/probes/slice_usage/usage', '/schedulers/webt/process_set/usage']);
      if (linked.code === 0) {
        await page.waitForSelector('#tree-graph [data-link="/schedulers/webt/process_set/usage"]', { timeout: 10_000 * SLOW });
        assert.equal((await daemon.cli(['rm', '/schedulers/webt/process_set/usage'])).code, 0);
      } else {
        // Where the scheduler's process set takes no link, the default tree's own link is drawn.
        assert.ok(await page.$('#tree-graph [data-link]'), `no link drawn; slicectl ln said: ${linked.stderr}`);
      }
      // The stacking order: a scheduler that takes every task comes first once handle_all is on.
      assert.equal((await daemon.cli(['write', '/schedulers/webt/process_set/handle_all', '1'])).code, 0);
      await until(
        'webt first in the stacking order',
        async () => /^#\s*scheduler\s*holds\s*attach\s*1\s*webt\s*handle_all/.test((await page.textContent('#stacking-order')) ?? ''),
        SHOWN_MS,
      );
      assert.equal((await daemon.cli(['write', '/schedulers/webt/process_set/handle_all', '0'])).code, 0);
      await page.click('#tree-graph [data-path="/probes/slice_usage"]');
      await page.waitForSelector('#tree-details th');
      assert.match((await page.textContent('#tree-details')) ?? '', /probe_period/);
      assert.equal((await daemon.cli(['rmdir', '/schedulers/webt'])).code, 0);
      assert.deepEqual(errors, []);
      await context.close();
    });

    test("the Simulations page shows a saved run's table and charts, and deletes it after asking", async (t) => {
      if (reason) return skipWith(t, reason);
      const { context, page, errors, asked } = await openPage();
      await page.goto(info.signInUrl);
      await page.waitForSelector('nav');
      await page.goto(`${base}/#/simulations`);
      await page.click('#simulations tr[data-simulation="wsim"] a');
      await page.waitForSelector('#simulation-results td');
      const rows = await page.$$eval('#simulation-results tr', (trs) => trs.slice(1).map((tr) => tr.children[0]!.textContent));
      assert.deepEqual(rows, ['random', 'least_loaded']);
      // Both charts drawn: each image loaded from the daemon and decoded as SVG.
      await until(
        'the charts',
        async () => {
          const sizes = await page.$$eval('#simulation img', (imgs) =>
            imgs.map((i) => (i as unknown as { naturalWidth: number }).naturalWidth),
          );
          return sizes.length === 2 && sizes.every((w) => w > 0);
        },
        SHOWN_MS,
      );
      assert.deepEqual(await page.$$eval('#simulation img', (imgs) => imgs.map((i) => i.getAttribute('data-chart'))), [
        'utilisation.svg',
        'slowdown-cdf.svg',
      ]);
      await screenshot(page, 'dashboard-simulation');
      await page.click('#simulations tr[data-simulation="wsim"] button.danger');
      await until('the run to go', async () => (await daemon.cli(['simulation', 'show', 'wsim'])).code === 3, SHOWN_MS);
      await page.waitForSelector('#simulations tr[data-simulation="wsim"]', { state: 'detached', timeout: SHOWN_MS });
      assert.deepEqual(asked, ['Delete simulation wsim?']);
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
});

describe('the dashboard over HTTPS with a client CA', { skip: skip ?? false }, () => {
  test("a certificate the CA signed signs in without the token; none, or another CA's, does not; an action still needs the session's CSRF token", async (t) => {
    const noOpenssl = commandSkipReason('openssl', 'openssl');
    if (noOpenssl !== null) return skipWith(t, noOpenssl);
    const pki = mkdtempSync(join(tmpdir(), 'sliced-webpki-'));
    const [mine, other] = [join(pki, 'ca'), join(pki, 'other')];
    let daemon: TestDaemon | null = null;
    try {
      for (const args of [
        ['cluster', 'init-ca', '--dir', mine],
        ['cluster', 'issue-cert', 'web', '--dir', mine, '--ip', '127.0.0.1'],
        ['cluster', 'issue-cert', 'alice', '--dir', mine],
        ['cluster', 'init-ca', '--dir', other],
        ['cluster', 'issue-cert', 'stranger', '--dir', other],
      ]) {
        const made = spawnSync(process.execPath, [SLICECTL, ...args], { encoding: 'utf8' });
        assert.equal(made.status, 0, `${args.join(' ')}: ${made.stderr}`);
      }
      const port = await freePort();
      const config = join(pki, 'sliced.yaml');
      writeFileSync(
        config,
        `web:\n  listen: 127.0.0.1:${port}\n  tls:\n    cert: ${mine}/web.pem\n    key: ${mine}/web-key.pem\n    ca: ${mine}/ca.pem\n`,
      );
      daemon = await TestDaemon.start(['--config', config]);
      const shown = await daemon.cli(['web']);
      assert.match(shown.stdout, new RegExp(`Client certificates signed by ${mine}/ca.pem sign in without the token`), shown.stdout);

      const call = (
        path: string,
        options: { as?: string; method?: string; headers?: Record<string, string>; body?: unknown } = {},
      ): Promise<{ status: number; body: string; cookie: string | null }> =>
        new Promise((resolve, reject) => {
          const identity = options.as ? { cert: readFileSync(`${options.as}.pem`), key: readFileSync(`${options.as}-key.pem`) } : {};
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port,
              path,
              method: options.method ?? 'GET',
              ca: readFileSync(join(mine, 'ca.pem')),
              headers: { ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
              ...identity,
            },
            (res) => {
              let body = '';
              res.on('data', (chunk: Buffer) => (body += chunk.toString()));
              res.on('end', () =>
                resolve({ status: res.statusCode ?? 0, body, cookie: res.headers['set-cookie']?.[0]?.split(';')[0] ?? null }),
              );
            },
          );
          req.on('error', reject);
          req.end(options.body !== undefined ? JSON.stringify(options.body) : undefined);
        });
      const alice = join(mine, 'alice');
      assert.equal((await call('/api/v1/slices')).status, 401, 'no certificate, no session');
      assert.equal((await call('/api/session', { as: join(other, 'stranger') })).status, 401, "another CA's certificate");
      assert.equal((await call('/api/v1/slices', { as: join(other, 'stranger') })).status, 401);
      assert.equal((await call('/api/v1/slices', { as: alice })).status, 200, 'a certificate of the CA reads');
      // An action with the certificate alone is refused: a browser would send it to any site's requests.
      const bare = await call('/api/v1/slices', { as: alice, method: 'POST', body: { name: 'wcert' } });
      assert.equal(bare.status, 403, bare.body);
      const session = await call('/api/session', { as: alice });
      assert.equal(session.status, 200, session.body);
      assert.ok(session.cookie, 'the certificate opened a session');
      const { csrf } = JSON.parse(session.body) as { csrf: string };
      const made = await call('/api/v1/slices', {
        as: alice,
        method: 'POST',
        headers: { cookie: session.cookie, 'x-sliced-csrf': csrf },
        body: { name: 'wcert' },
      });
      assert.equal(made.status, 201, made.body);
      assert.equal((await daemon.cli(['slice', 'show', 'wcert'])).code, 0);
      assert.match(daemon.log, /"certificate":"alice".*signed in by client certificate/);
      assert.equal((await daemon.cli(['slice', 'delete', 'wcert'])).code, 0);
    } finally {
      await daemon?.destroy();
      rmSync(pki, { recursive: true, force: true });
    }
  });
});
