/**
 * The config tree mounted as a filesystem (`sliced --mount DIR`), so that plain mkdir,
 * echo >, ln -s, cat, rm, rmdir and `find ... | tac | xargs rmdir` work as on the Kerrighed
 * slides. Needs the optional dependency @cocalc/fuse-native; without it the daemon logs why
 * and runs without the mount.
 *
 * Who may do what is enforced by the kernel (the mount uses default_permissions): the tree
 * belongs to root and the admin group (directories 0770/0750, attributes 0660/0440), except
 * /slices/<name>, which its slice's user may read. Writes are validated when written (as
 * configfs stores on write): `echo 5 > threshold` with a bad value fails in echo itself and
 * leaves the old value; the O_TRUNC of the redirection does not empty the attribute.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Logger } from 'pino';
import { SlicedError, isSlicedError, type ErrorCode } from '../core/errors.js';
import { ADMIN, type TreeService } from '../framework/service.js';
import type { SlicedConfig } from './config.js';

export interface TreeMount {
  readonly path: string;
  unmount(): Promise<void>;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

const ERRNO: Record<ErrorCode, number> = {
  EPERM: -1,
  ENOENT: -2,
  ESRCH: -3,
  EIO: -5,
  EEXIST: -17,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  ENOSPC: -28,
  EBUSY: -16,
  ENOTEMPTY: -39,
  ELOOP: -40,
};

type FuseCallback = (err: number, ...rest: unknown[]) => void;

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

interface FuseModule {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
}

export async function mountTree(service: TreeService, config: SlicedConfig, log: Logger, sliceUid: (slice: string) => number | null = () => null): Promise<TreeMount | null> {
  const mnt = config.mount!;
  let Fuse: FuseModule;
  try {
    Fuse = ((await import('@cocalc/fuse-native')) as unknown as { default: FuseModule }).default;
  } catch (err) {
    log.warn({ mount: mnt, err: (err as Error).message.split('\n')[0] }, 'the FUSE mount needs the optional package @cocalc/fuse-native (with fuse3 and libfuse-dev); running without the mount');
    return null;
  }
  mkdirSync(mnt, { recursive: true, mode: 0o755 });
  removeStaleMount(mnt, log);
  const adminGid = config.adminGroup ? groupId(config.adminGroup) : 0;
  const ops = fuseOperations(service, mnt, adminGid, sliceUid, log);
  const fuse = new Fuse(mnt, ops, { allowOther: true, defaultPermissions: true, fsname: 'sliced', subtype: 'sliced', attrTimeout: 0, entryTimeout: 0 });
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(new SlicedError('EIO', `cannot mount the config tree on ${mnt}: ${err.message}`)) : resolve())));
  log.info({ mount: mnt }, 'config tree mounted');
  return {
    path: mnt,
    unmount: () =>
      new Promise<void>((resolve) =>
        fuse.unmount((err) => {
          if (err) log.warn({ mount: mnt, err: err.message }, 'cannot unmount the config tree');
          resolve();
        }),
      ),
  };
}

/** A sliced mount left by a daemon that was killed (the mount is dead until unmounted). Never anything else. */
export function removeStaleMount(mnt: string, log: Logger): void {
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === mnt && / - fuse\.sliced sliced /.test(line));
  if (!mounted) return;
  const result = spawnSync('fusermount', ['-uz', mnt], { encoding: 'utf8' });
  log.warn({ mount: mnt, ok: result.status === 0 }, 'removed a stale sliced mount left by an earlier daemon');
}

function groupId(group: string): number {
  const result = spawnSync('getent', ['group', group], { encoding: 'utf8' });
  const gid = result.status === 0 ? Number(result.stdout.split(':')[2]) : NaN;
  if (!Number.isInteger(gid)) throw new SlicedError('ENOENT', `admin group ${group} does not exist`);
  return gid;
}

function fuseOperations(service: TreeService, mnt: string, adminGid: number, sliceUid: (slice: string) => number | null, log: Logger): Record<string, unknown> {
  const started = new Date();
  const open = new Map<number, { path: string; content: Buffer; written: Buffer | null }>();
  let nextFd = 10;

  const errno = (err: unknown): number => {
    if (isSlicedError(err)) return ERRNO[err.code] ?? -5;
    log.error({ err: (err as Error).message }, 'config tree mount: unexpected error');
    return -5;
  };
  const guard = (cb: FuseCallback, work: () => unknown): void => {
    try {
      const result = work();
      if (result instanceof Promise) result.then((v) => cb(0, v), (err) => cb(errno(err)));
      else cb(0, result);
    } catch (err) {
      cb(errno(err));
    }
  };
  /** The slice a path under /slices/<name> belongs to (its user reads it). */
  const ownerOf = (path: string): number => {
    const m = /^\/slices\/([^/]+)/.exec(path);
    return m ? (sliceUid(m[1]!) ?? 0) : 0;
  };
  const toTree = (target: string, linkPath: string): string => {
    if (target.startsWith(`${mnt}/`)) return target.slice(mnt.length);
    if (target.startsWith('/')) throw new SlicedError('EINVAL', `link target ${target} is outside the config tree mounted on ${mnt}`);
    const parts = linkPath.split('/').slice(0, -1);
    for (const part of target.split('/')) {
      if (part === '..') parts.pop();
      else if (part !== '.' && part !== '') parts.push(part);
    }
    return `/${parts.filter(Boolean).join('/')}`;
  };

  return {
    getattr(path: string, cb: FuseCallback) {
      guard(cb, () => {
        const entry = service.stat(ADMIN, path);
        const uid = ownerOf(path);
        const inSlice = uid !== 0;
        const base = { uid, gid: adminGid, nlink: 1, atime: started, mtime: new Date(), ctime: started, blksize: 4096 };
        if (entry.kind === 'dir') {
          const public_ = path === '/' || path === '/slices';
          const mode = public_ ? 0o755 : inSlice ? 0o550 : entry.writable ? 0o770 : 0o750;
          return { ...base, mode: S_IFDIR | mode, size: 4096, nlink: 2 };
        }
        if (entry.kind === 'link') return { ...base, mode: S_IFLNK | 0o777, size: mnt.length + service.readlink(ADMIN, path).length };
        const size = Buffer.byteLength(service.read(ADMIN, path));
        return { ...base, mode: S_IFREG | (entry.writable ? 0o660 : 0o440), size };
      });
    },
    readdir(path: string, cb: FuseCallback) {
      guard(cb, () => ['.', '..', ...service.readdir(ADMIN, path).map((e) => e.name)]);
    },
    open(path: string, _flags: number, cb: FuseCallback) {
      guard(cb, () => {
        const fd = nextFd++;
        open.set(fd, { path, content: Buffer.from(service.read(ADMIN, path)), written: null });
        return fd;
      });
    },
    read(_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      const file = open.get(fd);
      if (!file) return cb(-9);
      const n = Math.max(0, Math.min(len, file.content.length - pos));
      file.content.copy(buf, 0, pos, pos + n);
      cb(n);
    },
    write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      const file = open.get(fd);
      if (!file) return cb(-9);
      const previous = file.written ?? Buffer.alloc(0);
      const next = Buffer.alloc(Math.max(previous.length, pos + len));
      previous.copy(next);
      buf.copy(next, pos, 0, len);
      // Applied on every write so the writer gets the error; the old value stays on refusal.
      service.write(ADMIN, path, next.toString('utf8')).then(
        () => {
          file.written = next;
          cb(len);
        },
        (err) => {
          log.info({ path, err: (err as Error).message }, 'config tree mount: write refused');
          cb(errno(err));
        },
      );
    },
    truncate(_path: string, _size: number, cb: FuseCallback) {
      cb(0); // see the header: validation happens on write, never by emptying the value
    },
    ftruncate(_path: string, _fd: number, _size: number, cb: FuseCallback) {
      cb(0);
    },
    release(_path: string, fd: number, cb: FuseCallback) {
      open.delete(fd);
      cb(0);
    },
    create(_path: string, _mode: number, cb: FuseCallback) {
      cb(ERRNO.EPERM);
    },
    mkdir(path: string, _mode: number, cb: FuseCallback) {
      guard(cb, () => service.mkdir(ADMIN, path));
    },
    rmdir(path: string, cb: FuseCallback) {
      guard(cb, () => service.rmdir(ADMIN, path));
    },
    symlink(target: string, path: string, cb: FuseCallback) {
      guard(cb, () => service.symlink(ADMIN, toTree(target, path), path));
    },
    unlink(path: string, cb: FuseCallback) {
      guard(cb, () => service.unlink(ADMIN, path));
    },
    readlink(path: string, cb: FuseCallback) {
      guard(cb, () => `${mnt}${service.readlink(ADMIN, path)}`);
    },
    rename(_src: string, _dest: string, cb: FuseCallback) {
      cb(ERRNO.EPERM);
    },
    chmod(_path: string, _mode: number, cb: FuseCallback) {
      cb(ERRNO.EPERM);
    },
    chown(_path: string, _uid: number, _gid: number, cb: FuseCallback) {
      cb(ERRNO.EPERM);
    },
    utimens(_path: string, _atime: Date, _mtime: Date, cb: FuseCallback) {
      cb(0);
    },
    access(_path: string, _mode: number, cb: FuseCallback) {
      cb(0); // default_permissions: the kernel already checked the modes
    },
    statfs(_path: string, cb: FuseCallback) {
      cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 });
    },
  };
}

