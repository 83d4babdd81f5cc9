/**
 * The dashboard's wiring (sliced --web, `web:` in the config): the token, the live feed from
 * the control loop and the views, and the server (web/server.ts) in front of the admin API.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { SlicedError } from '../core/errors.js';
import { isWildcardHost, parseListen } from '../core/net-address.js';
import type { FrameInput } from '../wire/dashboard.js';
import type { SliceAgent } from './agent.js';
import type { SlicedConfig } from './config.js';
import type { CpuController } from './controller.js';
import { readAccounts } from './http/net.js';
import type { Views } from './views.js';
import type { WebInfo } from '../wire/web.js';
import type { DomainView, SliceView } from '../wire/slices.js';
import type { AccountsDocument } from '../wire/net.js';
import { domainKey, sliceKey } from '../core/layout.js';
import { readWebToken, WebSessions } from './web/auth.js';
import { readPrivateFile } from '../kernel/private-file.js';
import { LiveFeed } from './web/live.js';
import { startWebServer } from './web/server.js';

/** Groups whose counters a pass of the live feed reads, at most (about; see read below). */
const ROWS_PER_PASS = 100;

/** The built page: dist/web beside dist/daemon (and dist/bundle). */
export const WEB_ASSETS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'web');

export interface Dashboard {
  info: WebInfo;
  feed: LiveFeed;
  close(): Promise<void>;
}

export async function startDashboard(
  config: SlicedConfig,
  deps: { api: FastifyInstance; views: Views; controller: CpuController; agent: SliceAgent; log: Logger },
): Promise<Dashboard | null> {
  const web = config.web;
  if (web === null) return null;
  if (!existsSync(join(WEB_ASSETS, 'index.html'))) {
    throw new SlicedError('EIO', `the dashboard's page is not built in ${WEB_ASSETS} (npm run build makes it)`);
  }
  const tokenFile = web.tokenFile ?? join(config.stateDir, 'web-token');
  const token = readWebToken(tokenFile, web.tokenFile === undefined);
  // Client certificates (HTTPS only): those the configured CA signed, by default the cluster's (peer.tls.ca).
  const clientCa = web.tls ? (web.tls.ca ?? config.cluster?.peer?.tls?.ca ?? null) : null;
  const tls = web.tls
    ? {
        cert: readFileSync(web.tls.cert),
        key: readPrivateFile('web.tls.key', web.tls.key),
        ca: clientCa === null ? null : readFileSync(clientCa),
      }
    : null;
  const { views, controller, agent, log } = deps;
  // Every group's counters and memory cost a dozen file reads: on a large node they are read
  // every few passes (about ROWS_PER_PASS groups' worth per pass); CPU figures come from the
  // control loop's own sample at every pass.
  let full: { at: number; state: unknown; slices: SliceView[]; domains: DomainView[]; accounts: AccountsDocument | null } | null = null;
  let passes = 0;
  const read = async (): Promise<FrameInput> => {
    const node = views.node() as {
      cpu: { capacity: number; systemReserve: number; reserved: number };
      memoryBytes: number;
      backend: string;
    };
    const groups = agent.state.slices.size + agent.state.domains.size;
    if (!full || full.state !== agent.state || passes++ % Math.max(1, Math.ceil(groups / ROWS_PER_PASS)) === 0) {
      full = {
        at: Date.now(),
        state: agent.state,
        slices: views.slices(true),
        domains: views.domains(true),
        accounts: agent.net ? await readAccounts(agent) : null,
      };
    }
    const sample = controller.snapshot();
    const withCpu = <T extends SliceView | DomainView>(view: T, key: string): T => {
      const cpu = sample?.nodes.get(key);
      return cpu && view.live
        ? { ...view, live: { ...view.live, usage: cpu.usage, demand: cpu.demand, entitlement: cpu.entitlement } }
        : view;
    };
    return {
      at: Date.now(),
      countersAt: full.at,
      periodMs: controller.periodMs,
      node: {
        capacity: node.cpu.capacity,
        systemReserve: node.cpu.systemReserve,
        reserved: node.cpu.reserved,
        systemUsage: sample?.systemUsage ?? null,
        memoryBytes: node.memoryBytes,
        backend: node.backend,
      },
      slices: full.slices.map((v) => withCpu(v, sliceKey(v.name))),
      domains: full.domains.map((v) => withCpu(v, domainKey(v.name))),
      accounts: full.accounts,
    };
  };
  const feed = new LiveFeed(read, (listener) => controller.onPass(listener), log);
  const listen = parseListen(web.listen)!;
  let app: FastifyInstance;
  try {
    app = await startWebServer({
      host: listen.host,
      port: listen.port,
      tls,
      sessions: new WebSessions(token),
      admin: deps.api,
      feed,
      assets: WEB_ASSETS,
      log,
    });
  } catch (err) {
    feed.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new SlicedError('EBUSY', `web.listen (--web) ${web.listen}: the port is already in use`);
    if (code === 'EADDRNOTAVAIL') throw new SlicedError('EINVAL', `web.listen (--web) ${web.listen}: this machine has no such address`);
    throw err;
  }
  const host = isWildcardHost(listen.host) ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const url = `${tls ? 'https' : 'http'}://${host}:${listen.port}/`;
  log.info({ url, tokenFile, clientCa }, 'dashboard listening (slicectl web prints a sign-in link)');
  return {
    info: { url, tokenFile, signInUrl: `${url}#token=${encodeURIComponent(token)}`, clientCa },
    feed,
    async close() {
      feed.close();
      await app.close();
    },
  };
}
