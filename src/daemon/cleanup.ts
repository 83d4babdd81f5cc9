/**
 * `sliced --cleanup`: stop every slice's processes and remove every kernel object sliced
 * made (groups in each hierarchy, users it created, sockets, vsys FIFOs, a config-tree mount
 * left by a killed daemon). The desired state is kept,
 * so the next start rebuilds the slices; delete the state directory to forget them too.
 */
import { fenceFile } from './task-setup.js';
import { rmdirSync, rmSync } from 'node:fs';
import { removeDirectory } from '../kernel/fifo.js';
import { FIFO_AREA } from '../kernel/fifo-maker.js';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { EmbeddedStore } from '../cluster/embedded-store.js';
import { detectBackend } from '../kernel/cgroup/detect.js';
import { CgroupV2Backend } from '../kernel/cgroup/v2.js';
import { DELEGATION_RECORD } from '../core/delegation.js';
import { SliceAgent } from './agent.js';
import { createNetworks } from './net.js';
import { lookupUser } from '../kernel/users.js';
import { nodeCapacity, type SlicedConfig } from './config.js';
import { removeStaleMount } from './fuse-mount.js';
import { removeGuard } from '../kernel/net/nft-guard.js';
import { netNames } from '../core/net.js';

export async function cleanup(config: SlicedConfig, log: Logger): Promise<void> {
  // The record names the group the daemon managed, wherever this cleanup runs (cgroup v2).
  const backend = detectBackend({
    rootName: config.cgroupRoot,
    prefer: config.cgroupVersion,
    recordFile: join(config.runDir, DELEGATION_RECORD),
    useRecord: true,
  });
  const store = await EmbeddedStore.open(config.stateDir);
  const node = nodeCapacity(config);
  const net = createNetworks(config, node, { backend, store, log, userOf: (spec) => lookupUser(spec.user) });
  try {
    const agent = new SliceAgent({
      store,
      backend,
      node,
      log,
      stopGraceMs: config.stopGraceMs,
      rootWeight: 100,
      attachAnyMemoryCgroup: config.attachAnyMemoryCgroup,
      userPrefix: config.userPrefix,
      userOwner: resolve(config.stateDir),
      net,
    });
    await agent.load();
    await agent.teardown();
    rmSync(join(config.runDir, 'slices'), { recursive: true, force: true });
    // Slices' vsys directories (FIFOs only), one by one: the root is configurable and is
    // removed only if nothing else is in it. The services directory is configuration and stays.
    for (const name of agent.state.slices.keys()) removeDirectory(config.vsysSliceRoot, name);
    removeDirectory(config.vsysSliceRoot, FIFO_AREA); // the FIFOs sliced keeps ready and its records
    try {
      rmdirSync(config.vsysSliceRoot);
    } catch {
      // Missing, or holds something that is not ours.
    }
    if (backend instanceof CgroupV2Backend) {
      const left = backend.releaseDelegation();
      if (left.length > 0) log.warn({ left }, 'left in the delegated group');
    }
    await removeGuard(netNames(config.netTag).guardTable);
    // The fence's watchdog ends when its file goes (the tasks it guarded went with their slices).
    for (const file of [fenceFile(config), `${fenceFile(config)}.pid`, `${fenceFile(config)}.new`]) rmSync(file, { force: true });
    rmSync(config.socket, { force: true });
    if (config.mount !== null) await removeStaleMount(config.mount, log);
    log.info({ roots: backend.rootDirectories() }, 'cleanup done: no sliced groups, users or sockets are left');
  } finally {
    await store.close();
  }
}
