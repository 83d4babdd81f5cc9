/**
 * Everything the start checks before it touches the kernel or the state directory, so that
 * a refused start leaves nothing behind (no group, state file, socket, bridge or nft table):
 * the whole configuration, the directories sliced will use or create (root-only), the admin
 * group, the API socket (not served by another daemon) and the default tree document. Each
 * refusal is one sentence naming the setting and the value.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { lookupGroupId } from '../kernel/users.js';
import { SlicedError } from '../core/errors.js';
import type { NodeCapacity } from '../core/admission.js';
import { detectLayout, type DetectedLayout } from '../kernel/cgroup/detect.js';
import { CgroupV2Backend } from '../kernel/cgroup/v2.js';
import { DELEGATION_RECORD } from '../core/delegation.js';
import { assertRootOnlyPaths, assertSocketPath } from '../kernel/root-only.js';
import { parseTreeYaml } from '../framework/document.js';
import { nodeCapacity, type SlicedConfig } from './config.js';
import { DEFAULT_TREE_FILE } from './framework.js';

export interface Checked {
  node: NodeCapacity;
  layout: DetectedLayout;
  /** gid of the admin group, or null without one. */
  adminGid: number | null;
  /** The default tree document (applied on the first start only). */
  defaultTree: string;
}

export async function preflight(config: SlicedConfig): Promise<Checked> {
  if (process.getuid?.() !== 0) {
    throw new SlicedError('EPERM', 'sliced must run as root: it creates cgroups, users and sockets for slices');
  }
  const node = nodeCapacity(config);
  const layout = detectLayout({
    rootName: config.cgroupRoot,
    prefer: config.cgroupVersion,
    recordFile: join(config.runDir, DELEGATION_RECORD),
  });
  // cgroup v2: a group holding processes sliced did not start cannot be taken over.
  if (layout.v2) new CgroupV2Backend(layout.v2).checkDelegation();
  // Anyone else able to change these could rewrite the desired state, offer vsys services
  // run as root, or stand in for the API socket.
  assertRootOnlyPaths([
    [config.stateDir, 'state directory (stateDir, --state-dir)'],
    [config.vsysDir, 'vsys services directory'],
    [config.vsysSliceRoot, 'vsys slice directory root'],
    [config.runDir, 'run directory (runDir, --run-dir)'],
    [dirname(config.socket), 'API socket directory (socket, --socket)'],
  ]);
  assertSocketPath(config.socket, 'API socket (socket, --socket)');
  if (await socketAnswers(config.socket)) throw new SlicedError('EBUSY', `another sliced is already serving ${config.socket}`);
  const adminGid = config.adminGroup === null ? null : await groupId(config.adminGroup);
  const treeFile = config.defaultTree ?? DEFAULT_TREE_FILE;
  let defaultTree: string;
  try {
    defaultTree = readFileSync(treeFile, 'utf8');
  } catch (err) {
    throw new SlicedError('ENOENT', `default tree (defaultTree, --default-tree) ${treeFile} cannot be read: ${(err as Error).message}`);
  }
  parseTreeYaml(defaultTree, `the default tree (defaultTree, --default-tree) ${treeFile}`);
  return { node, layout, adminGid, defaultTree };
}

async function groupId(group: string): Promise<number> {
  const gid = await lookupGroupId(group);
  if (gid === null) throw new SlicedError('ENOENT', `admin group (adminGroup, --admin-group) ${group} does not exist`);
  return gid;
}

/** Whether something accepts connections on the Unix socket `path` (a daemon already running). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
