/**
 * Headless Firefox for the dashboard's tests: Debian's firefox-esr driven over WebDriver BiDi,
 * its own remote protocol (playwright-core drives only its patched Firefox, a download, and
 * its BiDi channel needs commands this ESR lacks). A small client: navigate, evaluate a
 * script in the page, take a screenshot, and collect console errors and failed responses.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const FIREFOX = process.env.SLICED_FIREFOX ?? '/usr/bin/firefox-esr';
const START_MS = 60_000;
const COMMAND_MS = 60_000;

/** Why Firefox cannot be driven here, or null. */
export function firefoxSkipReason(): string | null {
  return existsSync(FIREFOX) ? null : `needs Firefox at ${FIREFOX} (Debian package firefox-esr; or set SLICED_FIREFOX)`;
}

interface Pending {
  resolve: (value: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class Firefox {
  /** Console errors, uncaught exceptions and responses of 400 and more, as they come. */
  readonly errors: string[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private context = '';

  private constructor(
    private readonly process: ChildProcess,
    private readonly socket: WebSocket,
    private readonly profile: string,
  ) {
    socket.on('message', (data: Buffer) => this.receive(JSON.parse(data.toString()) as Record<string, unknown>));
  }

  /** Start a headless Firefox with a fresh profile, its one tab at `width`×`height`. */
  static async launch(width = 1280, height = 800): Promise<Firefox> {
    const profile = mkdtempSync(join(tmpdir(), 'sliced-firefox-'));
    // No first-run pages, updates or telemetry: nothing may reach the network.
    writeFileSync(
      join(profile, 'user.js'),
      [
        'user_pref("browser.shell.checkDefaultBrowser", false);',
        'user_pref("browser.startup.homepage_override.mstone", "ignore");',
        'user_pref("app.update.enabled", false);',
        'user_pref("datareporting.policy.dataSubmissionEnabled", false);',
        'user_pref("toolkit.telemetry.enabled", false);',
        'user_pref("network.captive-portal-service.enabled", false);',
        'user_pref("browser.safebrowsing.malware.enabled", false);',
        'user_pref("browser.safebrowsing.phishing.enabled", false);',
        'user_pref("extensions.update.enabled", false);',
        '',
      ].join('\n'),
    );
    const child = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', profile, '--remote-debugging-port', '0', 'about:blank'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, HOME: profile, MOZ_CRASHREPORTER_DISABLE: '1' },
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let seen = '';
        const timer = setTimeout(() => reject(new Error(`Firefox did not offer WebDriver BiDi within ${START_MS} ms: ${seen}`)), START_MS);
        child.stderr!.on('data', (chunk: Buffer) => {
          seen += chunk.toString();
          const found = /WebDriver BiDi listening on (ws:\/\/\S+)/.exec(seen);
          if (found) {
            clearTimeout(timer);
            resolve(found[1]!);
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`Firefox exited (${code}) before offering WebDriver BiDi: ${seen}`));
        });
      });
      const socket = new WebSocket(`${url}/session`);
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      const firefox = new Firefox(child, socket, profile);
      await firefox.send('session.new', { capabilities: { alwaysMatch: { acceptInsecureCerts: false } } });
      await firefox.send('session.subscribe', { events: ['log.entryAdded', 'network.responseCompleted'] });
      const tree = (await firefox.send('browsingContext.getTree', {})) as { contexts: Array<{ context: string }> };
      firefox.context = tree.contexts[0]!.context;
      await firefox.send('browsingContext.setViewport', { context: firefox.context, viewport: { width, height } });
      return firefox;
    } catch (err) {
      child.kill('SIGKILL');
      rmSync(profile, { recursive: true, force: true });
      throw err;
    }
  }

  /** Go to `url` and wait for its load event. */
  async goto(url: string): Promise<void> {
    await this.send('browsingContext.navigate', { context: this.context, url, wait: 'complete' });
  }

  /** The value of `expression` (awaited) in the page, as JSON would carry it. */
  async evaluate<T>(expression: string): Promise<T> {
    const answer = (await this.send('script.evaluate', {
      expression: `(async () => JSON.stringify(await (${expression})))()`,
      target: { context: this.context },
      awaitPromise: true,
    })) as { type: string; result?: { value?: string }; exceptionDetails?: { text?: string } };
    if (answer.type !== 'success') throw new Error(`in Firefox, ${expression} threw: ${answer.exceptionDetails?.text ?? 'an exception'}`);
    return (answer.result?.value === undefined ? undefined : JSON.parse(answer.result.value)) as T;
  }

  /** Wait until `expression` is true in the page. */
  async waitFor(expression: string, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (await this.evaluate<boolean>(`Boolean(${expression})`)) return;
      if (Date.now() > until) throw new Error(`in Firefox, ${expression} was not true within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async screenshot(path: string): Promise<void> {
    const { data } = (await this.send('browsingContext.captureScreenshot', { context: this.context })) as { data: string };
    writeFileSync(path, Buffer.from(data, 'base64'));
  }

  async close(): Promise<void> {
    await this.send('session.end', {}).catch(() => undefined);
    this.socket.close();
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((r) => this.process.once('exit', r));
      this.process.kill('SIGTERM');
      const timer = setTimeout(() => this.process.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.profile, { recursive: true, force: true });
  }

  private send(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`Firefox did not answer ${method} within ${COMMAND_MS} ms`));
      }, COMMAND_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  private receive(message: Record<string, unknown>): void {
    if (typeof message.id === 'number') {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.type === 'error') waiting.reject(new Error(`Firefox: ${String(message.error)}: ${String(message.message)}`));
      else waiting.resolve(message.result as Record<string, unknown>);
      return;
    }
    const params = message.params as Record<string, unknown> | undefined;
    if (message.method === 'log.entryAdded' && params?.level === 'error') this.errors.push(`console: ${String(params.text)}`);
    if (message.method === 'network.responseCompleted') {
      const response = params?.response as { status?: number; url?: string } | undefined;
      const request = params?.request as { method?: string } | undefined;
      if ((response?.status ?? 0) >= 400) this.errors.push(`HTTP ${response!.status}: ${request?.method ?? ''} ${response!.url ?? ''}`);
    }
  }
}
