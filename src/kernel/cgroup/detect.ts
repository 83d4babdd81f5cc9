/**
 * Pick the cgroup backend at start: v2 when the unified hierarchy carries the cpu controller,
 * v1 when the cpu controller is bound to a v1 hierarchy (the cgroup2 mount, if any, is then
 * used only for freeze/kill/pressure). Every root group lies beneath the daemon's own group;
 * on v2, beside the supervisor leaf the daemon moves into (src/core/delegation.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMounts, readProcCgroups, type MountEntry, type ProcCgroupLine } from '../procfs.js';
import type { CgroupBackend } from './backend.js';
import { CgroupV1Backend, type V1Layout } from './v1.js';
import { CgroupV2Backend, type V2Layout } from './v2.js';
import { SlicedError } from '../../core/errors.js';
import { SUPERVISOR_GROUP, delegatedGroups } from '../../core/delegation.js';
import { readRecord } from './v2-delegation.js';

export interface DetectOptions {
  /** Name of sliced's root group inside the daemon's own group, e.g. "sliced". */
  rootName: string;
  /** Force a backend instead of detecting. */
  prefer?: 'auto' | 'v1' | 'v2';
  procRoot?: string;
  /** v2: where the daemon keeps its delegation record (<runDir>/cgroup.json). */
  recordFile?: string;
  /**
   * v2, for `sliced --cleanup`: manage the group the record names (the daemon's, wherever
   * the cleanup itself runs) when that group still exists.
   */
  useRecord?: boolean;
}

export interface DetectedLayout {
  kind: 'v1' | 'v2';
  v1?: V1Layout;
  v2?: V2Layout;
}

const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'freezer'] as const;

export function detectLayout(options: DetectOptions): DetectedLayout {
  const mounts = readMounts(options.procRoot);
  const own = readProcCgroups('self', options.procRoot);
  const unifiedMount = mounts.find((m) => m.fsType === 'cgroup2')?.mountPoint ?? null;
  const unified = unifiedDir(mounts, own);
  const prefer = options.prefer ?? 'auto';

  const v2HasCpu = unified !== null && controllersOf(unified).includes('cpu');
  if (prefer === 'v2' || (prefer === 'auto' && v2HasCpu)) {
    if (unified === null) throw new SlicedError('EIO', 'cgroup v2 requested but no cgroup2 hierarchy is mounted');
    const mount = unifiedMount!;
    const ownPath = own.find((l) => l.hierarchyId === 0)!.path;
    // The real root has no cgroup.type; the root of a cgroup namespace (a container) has one
    // and, unlike the real root, may not hold processes and enable controllers at once.
    const groups = delegatedGroups(ownPath, ownPath === '/' && !existsSync(join(mount, 'cgroup.type')));
    let managed = join(mount, groups.managed);
    let supervisor = groups.supervisor === null ? null : join(mount, groups.supervisor);
    const recorded = options.useRecord && options.recordFile ? readRecord(options.recordFile) : null;
    if (recorded && recorded.managed !== managed && isBelow(recorded.managed, mount) && existsSync(recorded.managed)) {
      managed = recorded.managed;
      supervisor = managed === mount ? null : join(managed, SUPERVISOR_GROUP);
    }
    const recordFile = options.recordFile ? { recordFile: options.recordFile } : {};
    return { kind: 'v2', v2: { mount, own: managed, root: join(managed, options.rootName), supervisor, ...recordFile } };
  }

  const dirs: Partial<Record<(typeof V1_CONTROLLERS)[number], string>> = {};
  let memoryMount = '';
  for (const controller of V1_CONTROLLERS) {
    const mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes(controller));
    const line = own.find((l) => l.controllers.includes(controller));
    if (!mount || !line) {
      throw new SlicedError(
        'EIO',
        `no usable cgroup hierarchy: the ${controller} controller is neither in cgroup v2 nor mounted as cgroup v1`,
      );
    }
    dirs[controller] = join(mount.mountPoint, line.path, options.rootName);
    if (controller === 'memory') memoryMount = mount.mountPoint;
  }
  // blkio is optional: without it slices have no I/O allocation (non-default values are refused).
  const blkioMount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes('blkio'));
  const blkioLine = own.find((l) => l.controllers.includes('blkio'));
  const blkio = blkioMount && blkioLine ? { blkio: join(blkioMount.mountPoint, blkioLine.path, options.rootName) } : {};
  // pids is optional too: without it slices have no task limit (reported in status and the log).
  const pidsMount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes('pids'));
  const pidsLine = own.find((l) => l.controllers.includes('pids'));
  const pids = pidsMount && pidsLine ? { pids: join(pidsMount.mountPoint, pidsLine.path, options.rootName) } : {};
  return {
    kind: 'v1',
    v1: {
      ...blkio,
      ...pids,
      cpu: dirs.cpu!,
      cpuacct: dirs.cpuacct!,
      memory: dirs.memory!,
      freezer: dirs.freezer!,
      memoryMount,
      ...(unified !== null ? { unified: join(unified, options.rootName) } : {}),
    },
  };
}

export function createBackend(layout: DetectedLayout): CgroupBackend {
  if (layout.kind === 'v2') return new CgroupV2Backend(layout.v2!);
  return new CgroupV1Backend(layout.v1!);
}

export function detectBackend(options: DetectOptions): CgroupBackend {
  return createBackend(detectLayout(options));
}

/** The daemon's own group directory in the cgroup2 hierarchy, or null when none is mounted. */
function unifiedDir(mounts: MountEntry[], own: ProcCgroupLine[]): string | null {
  const mount = mounts.find((m) => m.fsType === 'cgroup2');
  const line = own.find((l) => l.hierarchyId === 0);
  if (!mount || !line) return null;
  const dir = join(mount.mountPoint, line.path);
  return existsSync(dir) ? dir : null;
}

function controllersOf(dir: string): string[] {
  try {
    return readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}

/** `path` is `mount` or a directory below it, without ".." steps. */
function isBelow(path: string, mount: string): boolean {
  return !path.split('/').includes('..') && (path === mount || path.startsWith(`${mount}/`));
}
