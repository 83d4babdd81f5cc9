/**
 * Prometheus metrics on an opt-in TCP port bound to 127.0.0.1. Values are collected at
 * scrape time from the controller's last pass and the kernel's counters.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Views } from './views.js';
import type { SliceAgent } from './agent.js';
import { readAccounts } from './http/net.js';
import type { SliceSocketStats } from './slice-sockets.js';
import { SlicedError } from '../core/errors.js';

export function buildRegistry(views: Views, agent?: SliceAgent, sockets?: { stats(): Map<string, SliceSocketStats> }): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sliced_process_' });
  const labels = ['slice', 'domain'] as const;
  // One scrape reads every gauge; read the kernel once per scrape, not once per gauge.
  let cached: { at: number; slices: ReturnType<Views['slices']> } | null = null;
  const slices = (): ReturnType<Views['slices']> => {
    if (!cached || Date.now() - cached.at > 250) cached = { at: Date.now(), slices: views.slices(true) };
    return cached.slices;
  };
  type Figure = (s: ReturnType<Views['slices']>[number]) => number | null | undefined;
  /** One series per slice, read at scrape time; a figure that is null or undefined is left out. */
  const each = (apply: (labels: { slice: string; domain: string }, v: number) => void, value: Figure): void => {
    for (const slice of slices()) {
      const v = value(slice);
      if (v !== null && v !== undefined) apply({ slice: slice.name, domain: slice.domain ?? '' }, v);
    }
  };
  const gauge = (name: string, help: string, value: Figure) =>
    new Gauge({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        each((l, v) => this.set(l, v), value);
      },
    });
  const counter = (name: string, help: string, value: Figure) =>
    new Counter({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        each((l, v) => this.inc(l, v), value);
      },
    });
  gauge('sliced_slice_cpu_usage_millicores', 'CPU used by the slice over the last control period', (s) => s.live?.usage ?? 0);
  gauge('sliced_slice_cpu_demand_millicores', 'Estimated CPU demand (running plus runnable-waiting)', (s) => s.live?.demand ?? 0);
  gauge('sliced_slice_cpu_entitlement_millicores', 'CPU the slice is entitled to now', (s) => s.live?.entitlement ?? 0);
  gauge('sliced_slice_cpu_reservation_millicores', 'Configured CPU reservation', (s) => s.cpu.reservation);
  gauge('sliced_slice_cpu_limit_millicores', 'Effective CPU limit (absent when unlimited)', (s) => s.cpu.effectiveLimit);
  gauge('sliced_slice_cpu_shares', 'Configured CPU shares', (s) => s.cpu.shares);
  gauge('sliced_slice_cpu_weight', 'cgroup weight written by the controller (v2 units)', (s) => s.live?.weight ?? 0);
  gauge('sliced_slice_processes', 'Processes in the slice', (s) => s.live?.procs ?? 0);
  gauge('sliced_slice_memory_bytes', 'Memory charged to the slice', (s) => s.live?.memoryBytes ?? 0);
  gauge('sliced_slice_memory_limit_bytes', 'Memory limit (absent when unlimited)', (s) => s.memory.limit);
  gauge('sliced_slice_memory_high_bytes', 'Soft memory limit (absent when none)', (s) => s.memory.high);
  gauge('sliced_slice_memory_swap_limit_bytes', 'Swap limit (absent when none)', (s) => s.memory.swap);
  gauge('sliced_slice_io_weight', 'Configured I/O weight (1..10000)', (s) => s.io.weight);
  gauge('sliced_slice_pids', 'Tasks (processes and threads) in the slice, from pids.current', (s) => s.live?.pids?.current);
  gauge('sliced_slice_pids_max', 'Task limit of the slice, pids.max (absent when none or not enforced)', (s) =>
    s.pids.unavailable ? null : s.pids.effectiveMax,
  );
  gauge('sliced_slice_memory_pressure_some', 'avg10 memory pressure of the slice, percent', (s) => s.live?.pressure.memory?.some ?? null);
  gauge('sliced_slice_io_pressure_some', 'avg10 I/O pressure of the slice, percent', (s) => s.live?.pressure.io?.some ?? null);

  counter('sliced_slice_io_read_bytes_total', 'Bytes the slice read from block devices', (s) => s.live?.io?.readBytes);
  counter('sliced_slice_io_write_bytes_total', 'Bytes the slice wrote to block devices', (s) => s.live?.io?.writeBytes);
  counter('sliced_slice_io_read_ops_total', 'Read operations of the slice on block devices', (s) => s.live?.io?.readOps);
  counter('sliced_slice_io_write_ops_total', 'Write operations of the slice on block devices', (s) => s.live?.io?.writeOps);
  counter(
    'sliced_slice_cpu_seconds_total',
    'CPU time the slice used since it was made (its moves between domains included)',
    (s) => s.live?.cpuSeconds ?? 0,
  );
  counter(
    'sliced_slice_cpu_throttled_seconds_total',
    'Time the slice spent throttled by its CPU limit',
    (s) => s.live?.throttledSeconds ?? 0,
  );
  counter('sliced_slice_pids_refused_total', 'Forks refused in the slice because a pids limit was reached', (s) => s.live?.pids?.refused);
  counter('sliced_slice_oom_kills_total', 'Processes of the slice killed by the OOM killer', (s) => s.live?.oomKills ?? 0);

  if (agent?.net) {
    // Both counters of one scrape share one reading of the kernel.
    let accounts: { at: number; doc: ReturnType<typeof readAccounts> } | null = null;
    const read = (): ReturnType<typeof readAccounts> => {
      if (!accounts || Date.now() - accounts.at > 250) accounts = { at: Date.now(), doc: readAccounts(agent) };
      return accounts.doc;
    };
    const columns = [
      ['sent', 'sent'],
      ['received', 'received'],
      ['loopbackSent', 'loopback_sent'],
      ['loopbackReceived', 'loopback_received'],
    ] as const;
    for (const unit of ['packets', 'bytes'] as const) {
      new Counter({
        name: `sliced_slice_net_${unit}_total`,
        help: `${unit === 'packets' ? 'Packets' : 'IP bytes'} of the slice by direction; loopback traffic only in the loopback directions`,
        labelNames: ['slice', 'direction'],
        registers: [registry],
        async collect() {
          const doc = await read();
          this.reset();
          for (const row of doc.slices)
            for (const [field, direction] of columns) this.inc({ slice: row.slice, direction }, row[field][unit]);
        },
      });
    }
    new Counter({
      name: 'sliced_slice_net_conntrack_dropped_packets_total',
      help: 'Packets of new connections of the slice dropped because its conntrack entries reached netConntrackMax',
      labelNames: ['slice'],
      registers: [registry],
      async collect() {
        const doc = await read();
        this.reset();
        for (const row of doc.slices) this.inc({ slice: row.slice }, row.conntrackDropped.packets);
      },
    });
  }
  if (sockets) {
    new Gauge({
      name: 'sliced_slice_socket_connections',
      help: "Connections open on the slice's read-only socket",
      labelNames: ['slice'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [slice, s] of sockets.stats()) this.set({ slice }, s.open);
      },
    });
    new Counter({
      name: 'sliced_slice_socket_refused_total',
      help: "Connections to the slice's socket refused: limit slice (the slice held its maximum) or total (all slice sockets held theirs)",
      labelNames: ['slice', 'limit'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [slice, s] of sockets.stats()) {
          this.inc({ slice, limit: 'slice' }, s.refusedSlice);
          this.inc({ slice, limit: 'total' }, s.refusedTotal);
        }
      },
    });
    new Counter({
      name: 'sliced_slice_socket_timeouts_total',
      help: "Connections to the slice's socket closed for being idle or too slow",
      labelNames: ['slice'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [slice, s] of sockets.stats()) this.inc({ slice }, s.timedOut);
      },
    });
  }
  // The state directory's filesystem: a slice that fills it (shared with /tmp) stops changes.
  const stateGauges: Array<[string, string, (s: NonNullable<ReturnType<Views['state']>>) => number | null]> = [
    ['sliced_state_filesystem_free_bytes', "Bytes sliced (root) may still write on the state directory's filesystem", (s) => s.freeBytes],
    [
      'sliced_state_filesystem_avail_bytes',
      "Bytes unprivileged users (slices) may still write on the state directory's filesystem",
      (s) => s.availableBytes,
    ],
    ['sliced_state_filesystem_size_bytes', "Size of the state directory's filesystem", (s) => s.totalBytes],
    ['sliced_state_filesystem_files_free', "Free inodes on the state directory's filesystem", (s) => s.freeInodes],
    [
      'sliced_state_store_writable',
      '1 while the desired state can be stored, 0 while writes fail (changes are refused)',
      (s) => (s.writable ? 1 : 0),
    ],
  ];
  for (const [name, help, figure] of stateGauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const state = views.state();
        const value = state ? figure(state) : null;
        if (value !== null) this.set(value);
      },
    });
  }
  new Gauge({
    name: 'sliced_control_loop_seconds',
    help: 'Duration of control-loop passes (quantiles over the last passes)',
    labelNames: ['quantile'],
    registers: [registry],
    collect() {
      const loop = views.node().loop as { p50Ms: number; p99Ms: number };
      this.set({ quantile: '0.5' }, loop.p50Ms / 1000);
      this.set({ quantile: '0.99' }, loop.p99Ms / 1000);
    },
  });
  return registry;
}

/**
 * Serve /metrics on 127.0.0.1 only: the figures describe tenants and are not for the network.
 * The port is taken at the start of the daemon (so one in use refuses it before anything is
 * made); until `registry()` has one, a scrape gets 503.
 */
export function serveMetrics(registry: () => Registry | null, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end('only /metrics is served here\n');
      return;
    }
    const ready = registry();
    if (!ready) {
      response.writeHead(503).end('sliced is starting\n');
      return;
    }
    ready
      .metrics()
      .then((text) => response.writeHead(200, { 'content-type': ready.contentType }).end(text))
      .catch((err: Error) => response.writeHead(500).end(`${err.message}\n`));
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new SlicedError('EBUSY', `metrics port (metricsPort, --metrics-port) ${port} is already in use on 127.0.0.1`)
          : err,
      ),
    );
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
