/**
 * Keep slices away from the node's services that are not theirs, in the guard table
 * (src/kernel/net/nft-guard.ts): etcd's client URLs and the agents' node-to-node channel in a
 * cluster, and the metrics port, whose figures describe every slice (a host-network slice
 * shares the host's loopback, where it listens). TCP from a slice to them is rejected with a
 * reset: namespaced slices matched by the bridge, host-network slices by their sockets'
 * cgroup. A node with none of these removes a guard an earlier configuration left. Names in
 * endpoints are resolved now, to every address.
 */
import { lookup } from 'node:dns/promises';
import { relative } from 'node:path';
import type { Logger } from 'pino';
import { SlicedError } from '../core/errors.js';
import { netNames } from '../core/net.js';
import { parseListen } from '../core/net-address.js';
import type { CgroupBackend } from '../kernel/cgroup/backend.js';
import { applyGuard, removeGuard, type GuardTarget } from '../kernel/net/nft-guard.js';
import { readMounts } from '../kernel/procfs.js';
import type { SlicedConfig } from './config.js';

export async function guardServices(config: SlicedConfig, backend: CgroupBackend, log: Logger): Promise<void> {
  const table = netNames(config.netTag).guardTable;
  const targets: GuardTarget[] = [];
  const ports: number[] = [];
  if (config.cluster !== null) {
    for (const endpoint of config.cluster.endpoints) {
      const url = new URL(endpoint);
      const port = Number(url.port);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      for (const { address, family } of await lookup(host, { all: true })) targets.push({ family: family === 6 ? 6 : 4, address, port });
    }
    if (config.cluster.peer) ports.push(parseListen(config.cluster.peer.listen)!.port);
  }
  // Served on 127.0.0.1 only (metrics.ts): namespaced slices have a loopback of their own.
  const metrics = config.metricsPort === null ? [] : [{ family: 4, address: '127.0.0.1', port: config.metricsPort } as const];
  if (targets.length + ports.length + metrics.length === 0) return removeGuard(table);

  const unified = backend.rootDirectories().unified;
  const mount = readMounts().find((m) => m.fsType === 'cgroup2')?.mountPoint;
  const sliceRoot =
    unified && mount ? { path: relative('/sys/fs/cgroup', unified), level: relative(mount, unified).split('/').length } : null;
  const bridge = config.net ? netNames(config.netTag).bridge : null;
  // A cluster node that cannot guard etcd refuses to start; a node that cannot guard its metrics port alone says so.
  const clustered = config.cluster !== null;
  if (sliceRoot === null) {
    if (clustered)
      throw new SlicedError(
        'EIO',
        'cannot keep slices away from etcd: there is no cgroup2 hierarchy to match the sockets of host-network slices by ' +
          '(mount one, e.g. at /sys/fs/cgroup/unified, or run this node without --cluster)',
      );
    log.warn(
      { port: config.metricsPort },
      'host-network slices can read the metrics port: there is no cgroup2 hierarchy to match their sockets by',
    );
    return removeGuard(table);
  }
  try {
    await applyGuard(table, { bridge, sliceRoot }, [...targets, ...metrics], ports);
  } catch (err) {
    if (clustered) throw err;
    log.warn({ port: config.metricsPort, err: (err as Error).message }, 'host-network slices can read the metrics port: no guard table');
    return;
  }
  log.info(
    { table, targets, peerPort: ports[0] ?? null, metricsPort: config.metricsPort, bridge, sliceRoot },
    "slices cannot reach etcd, the agents' channel or the metrics port: rejected for them",
  );
}
