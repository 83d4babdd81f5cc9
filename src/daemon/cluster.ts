/**
 * This node in its cluster: the cluster store (etcd with `--cluster`; otherwise this node's
 * own store behind the same interface, so a single node lists itself the same way) and its
 * membership (src/cluster/membership.ts). A node that cannot reach etcd at start refuses to
 * start, naming the endpoints and the cause.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname, networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { SlicedError } from '../core/errors.js';
import type { NodeCapacity } from '../core/admission.js';
import { EtcdStore } from '../cluster/etcd-store.js';
import { LocalClusterStore } from '../cluster/local-cluster-store.js';
import { Membership, type AgentRecord } from '../cluster/membership.js';
import type { ClusterStore, Store } from '../cluster/store.js';
import type { SlicedConfig } from './config.js';
import { isWildcardHost, parseListen } from '../core/net-address.js';
import { VERSION } from './version.js';
import { MEMBER_MARKER } from './sliver-sync.js';

export interface NodeCluster {
  /** "etcd" when joined to a cluster, "single" when this node is alone on its embedded store. */
  readonly mode: 'etcd' | 'single';
  readonly endpoints: readonly string[];
  readonly membership: Membership;
  /** The store the cluster's shared keys live in. */
  readonly store: ClusterStore;
  close(): Promise<void>;
}

/** The lease of a node alone: nobody else watches it, but its record looks like a member's. */
const SINGLE_NODE_TTL_MS = 5000;

export async function joinCluster(config: SlicedConfig, node: NodeCapacity, localStore: Store, log: Logger): Promise<NodeCluster> {
  const name = config.nodeName ?? hostname();
  const record = (): AgentRecord => ({
    capacity: { cpuMillicores: node.cpuMillicores, cpus: availableParallelism(), memoryBytes: node.memoryBytes },
    addresses: hostAddresses(),
    version: VERSION,
    since: Date.now(),
    // One installation of the agent: its restart takes back its own registration.
    instance: `${hostname()}:${config.stateDir}`,
    peer: peerUrl(config),
  });
  const cluster = config.cluster;
  if (cluster === null) {
    // Earlier builds wrote remote values into the state log; now they live under a lease only.
    // A node that runs alone now owns its state: joining again brings it in or names its conflicts (sliver-sync.ts).
    const stale = [...(await localStore.range('values/')).keys(), ...(await localStore.range(MEMBER_MARKER)).keys()];
    if (stale.length > 0) await localStore.txn(stale.map((key) => ({ type: 'delete', key })));
    // The embedded store is the daemon's; closing this view of it must not close it.
    const store: ClusterStore = new LocalClusterStore(localStore);
    const membership = await Membership.join(store, { name, ttlMs: SINGLE_NODE_TTL_MS, record, log });
    return { mode: 'single', endpoints: [], membership, store, close: () => membership.close() };
  }
  const store = await EtcdStore.open({ endpoints: cluster.endpoints, prefix: cluster.prefix, tls: cluster.tls && readTls(cluster.tls) });
  try {
    await store.revision();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw new SlicedError('EIO', `cannot reach the cluster's etcd at ${cluster.endpoints.join(', ')}: ${(err as Error).message}`);
  }
  let membership: Membership;
  try {
    membership = await Membership.join(store, { name, ttlMs: cluster.leaseTtlMs, record, labels: cluster.labels, log });
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  log.info({ node: name, endpoints: cluster.endpoints, prefix: cluster.prefix, leaseTtlMs: cluster.leaseTtlMs }, 'joined the cluster');
  return {
    mode: 'etcd',
    endpoints: cluster.endpoints,
    membership,
    store,
    async close() {
      await membership.close();
      await store.close();
    },
  };
}

function readTls(tls: { ca: string; cert?: string | undefined; key?: string | undefined }): { ca: Buffer; cert?: Buffer; key?: Buffer } {
  const read = (what: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new SlicedError(
        'EINVAL',
        `cluster.tls.${what} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
  };
  return {
    ca: read('ca', tls.ca),
    ...(tls.cert !== undefined ? { cert: read('cert', tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: read('key', tls.key) } : {}),
  };
}

/** Where other agents reach this one's node-to-node channel, or null without one. */
export function peerUrl(config: SlicedConfig): string | null {
  const peer = config.cluster?.peer;
  if (!peer) return null;
  const listen = parseListen(peer.listen)!;
  const host = peer.advertise ?? (isWildcardHost(listen.host) ? (hostAddresses()[0] ?? '127.0.0.1') : listen.host);
  return `${peer.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${listen.port}`;
}

/** The host's own addresses: not loopback, and not the bridges and veths sliced makes for slices. */
function hostAddresses(): string[] {
  const out: string[] = [];
  for (const [ifname, addresses] of Object.entries(networkInterfaces())) {
    if (/^(slbr|slv|slifb)/.test(ifname)) continue;
    for (const a of addresses ?? []) if (!a.internal && !a.address.startsWith('fe80:')) out.push(a.address);
  }
  return out.sort();
}
