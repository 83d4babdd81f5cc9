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
 * An attribute is small: a write or truncate past MAX_ATTRIBUTE_BYTES is EFBIG.
 *
 * Every handler is guarded: a thrown error becomes an errno reply (EIO when unexpected) and
 * a log line, never an exception that would end the daemon. A mount left by a daemon that
 * was killed (dead: ENOTCONN on every access) is removed at start before the mount point is
 * touched, and by `sliced --cleanup`.
 */
import { mkdirSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { SlicedError, isSlicedError, type ErrorCode } from '../core/errors.js';
import { ADMIN, type TreeService } from '../framework/service.js';
import { readMounts } from '../kernel/procfs.js';
import { lookupGroupId } from '../kernel/users.js';
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
  EACCES: -13,
  EEXIST: -17,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  ENOSPC: -28,
  EBUSY: -16,
  ENOTEMPTY: -39,
  ELOOP: -40,
};
const EBADF = -9;
const EFBIG = -27;

/** The largest attribute a write may produce on the mount (one page, as configfs allows). */
export const MAX_ATTRIBUTE_BYTES = 4096;
/** fusermount and getent are quick; a hung one is killed rather than holding up the start. */
const HELPER_TIMEOUT_MS = 5000;

type FuseCallback = (err: number, ...rest: unknown[]) => void;

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

interface FuseModule {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
}

export async function mountTree(
  service: TreeService,
  config: SlicedConfig,
  log: Logger,
  sliceUid: (slice: string) => number | null = () => null,
): Promise<TreeMount | null> {
  const mnt = resolve(config.mount!);
  let Fuse: FuseModule;
  try {
    Fuse = ((await import('@cocalc/fuse-native')) as unknown as { default: FuseModule }).default;
  } catch (err) {
    log.warn(
      { mount: mnt, err: (err as Error).message.split('\n')[0] },
      'the FUSE mount needs the optional package @cocalc/fuse-native (with fuse3 and libfuse-dev); running without the mount',
    );
    return null;
  }
  // A dead mount fails every stat with ENOTCONN, mkdir included: remove it first.
  await removeStaleMount(mnt, log);
  mkdirSync(mnt, { recursive: true, mode: 0o755 });
  const adminGid = config.adminGroup ? await groupId(config.adminGroup) : 0;
  const ops = guardOperations(fuseOperations(service, mnt, adminGid, sliceUid, log), log);
  const fuse = new Fuse(mnt, ops, {
    allowOther: true,
    defaultPermissions: true,
    fsname: 'sliced',
    subtype: 'sliced',
    attrTimeout: 0,
    entryTimeout: 0,
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) => (err ? reject(new SlicedError('EIO', `cannot mount the config tree on ${mnt}: ${err.message}`)) : resolve())),
  );
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

/** Whether a sliced FUSE mount sits at exactly `mnt` (read from mountinfo; the path itself is not touched). */
export function slicedMountAt(mnt: string): boolean {
  const path = resolve(mnt);
  return readMounts().some((m) => m.mountPoint === path && m.fsType === 'fuse.sliced' && m.source === 'sliced');
}

/**
 * Unmount a sliced mount left at `mnt` by a daemon that was killed (the mount is dead until
 * unmounted). Never anything else: only a fuse.sliced mount at exactly that path. A plain
 * unmount first, a lazy one if something still holds it open; throws if it stays mounted.
 */
export async function removeStaleMount(mnt: string, log: Logger): Promise<void> {
  const path = resolve(mnt);
  // Several may be stacked there (daemons killed one after another before this check existed).
  for (let round = 0; round < 8 && slicedMountAt(path); round++) {
    const plain = await fusermount(['-u', path]);
    const lazy = plain === null ? null : await fusermount(['-uz', path]);
    if (plain !== null && lazy !== null) {
      throw new SlicedError(
        'EBUSY',
        `a stale sliced mount on ${path} (left by a daemon that was killed) cannot be removed: fusermount -u: ${plain}; fusermount ` +
          `-uz: ${lazy}`,
      );
    }
    log.warn({ mount: path, fusermount: plain === null ? '-u' : '-uz' }, 'removed a stale sliced mount left by an earlier daemon');
  }
  if (slicedMountAt(path))
    throw new SlicedError('EBUSY', `stale sliced mounts on ${path} (left by daemons that were killed) remain after 8 unmounts`);
}

/** Run fusermount asynchronously, killed after HELPER_TIMEOUT_MS; null on success, else what went wrong. */
async function fusermount(args: string[]): Promise<string | null> {
  const result = await runHelper('fusermount', args, 'fuse3');
  return result.ok ? null : result.problem;
}

/** A quick helper program, asynchronously (never blocking the event loop), killed after HELPER_TIMEOUT_MS. */
function runHelper(file: string, args: string[], pkg: string): Promise<{ ok: true; stdout: string } | { ok: false; problem: string }> {
  return new Promise((done) => {
    execFile(file, args, { timeout: HELPER_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return done({ ok: true, stdout });
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === 'ENOENT') return done({ ok: false, problem: `${file} is not installed (Debian package ${pkg})` });
      if (e.killed) return done({ ok: false, problem: `${file} gave no answer within ${HELPER_TIMEOUT_MS} ms and was killed` });
      done({ ok: false, problem: stderr.trim().split('\n')[0] || e.message });
    });
  });
}

/**
 * Wrap every FUSE operation so that nothing it throws reaches the native caller (where it
 * would end the daemon): the error is logged and answered with its errno (EIO when it is
 * not a SlicedError), and the callback is answered at most once.
 */
export function guardOperations(ops: Record<string, unknown>, log: Pick<Logger, 'error'>): Record<string, unknown> {
  const guarded: Record<string, unknown> = {};
  for (const [name, op] of Object.entries(ops)) {
    if (typeof op !== 'function') continue;
    guarded[name] = (...args: unknown[]): void => {
      const cb = args[args.length - 1] as (...reply: unknown[]) => void;
      let answered = false;
      const once = (...reply: unknown[]): void => {
        if (answered) return;
        answered = true;
        cb(...reply);
      };
      args[args.length - 1] = once;
      try {
        (op as (...a: unknown[]) => void)(...args);
      } catch (err) {
        const code = isSlicedError(err) ? (ERRNO[err.code] ?? -5) : -5;
        log.error(
          { op: name, path: args[0], err: (err as Error)?.message ?? String(err) },
          'config tree mount: an operation failed; answered with an error',
        );
        once(code);
      }
    };
  }
  return guarded;
}

/**
 * The content after writing `len` bytes of `buf` at `pos` into `previous`, or EFBIG when the
 * result would be larger than MAX_ATTRIBUTE_BYTES (checked before anything is allocated).
 */
export function spliceWrite(previous: Buffer, buf: Buffer, len: number, pos: number): Buffer | number {
  if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(len) || pos < 0 || len < 0 || len > buf.length) return ERRNO.EINVAL;
  if (pos + len > MAX_ATTRIBUTE_BYTES) return EFBIG;
  const next = Buffer.alloc(Math.max(previous.length, pos + len));
  previous.copy(next);
  buf.copy(next, pos, 0, len);
  return next;
}

async function groupId(group: string): Promise<number> {
  const gid = await lookupGroupId(group);
  if (gid === null) throw new SlicedError('ENOENT', `admin group ${group} does not exist`);
  return gid;
}

function fuseOperations(
  service: TreeService,
  mnt: string,
  adminGid: number,
  sliceUid: (slice: string) => number | null,
  log: Logger,
): Record<string, unknown> {
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
      if (result instanceof Promise)
        result.then(
          (v) => cb(0, v),
          (err) => cb(errno(err)),
        );
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
    const from = (dir: string[]): string => {
      const parts = [...dir];
      for (const part of target.split('/')) {
        if (part === '..') parts.pop();
        else if (part !== '.' && part !== '') parts.push(part);
      }
      return `/${parts.filter(Boolean).join('/')}`;
    };
    const fromLinkFolder = from(linkPath.split('/').slice(0, -1));
    if (exists(fromLinkFolder)) return fromLinkFolder;
    // configfs reads a relative target from the caller's working folder, which FUSE does not
    // pass on; Kerrighed's setup scripts work from the root of the tree (cd /config/krg_scheduler).
    const fromRoot = from([]);
    return exists(fromRoot) ? fromRoot : fromLinkFolder;
  };
  const exists = (path: string): boolean => {
    try {
      service.stat(ADMIN, path);
      return true;
    } catch {
      return false;
    }
  };
  const truncateReply = (path: string, size: number): number => {
    if (Number.isSafeInteger(size) && size >= 0 && size <= MAX_ATTRIBUTE_BYTES) return 0;
    log.info(
      { path, size, max: MAX_ATTRIBUTE_BYTES },
      `config tree mount: truncate refused: an attribute holds at most ${MAX_ATTRIBUTE_BYTES} bytes`,
    );
    return EFBIG;
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
      if (!file) return cb(EBADF);
      // The size the kernel saw (getattr) may exceed the snapshot taken at open: read what there is.
      if (!Number.isSafeInteger(pos) || pos < 0 || pos >= file.content.length) return cb(0);
      const n = Math.max(0, Math.min(len, buf.length, file.content.length - pos));
      file.content.copy(buf, 0, pos, pos + n);
      cb(n);
    },
    write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      const file = open.get(fd);
      if (!file) return cb(EBADF);
      const next = spliceWrite(file.written ?? Buffer.alloc(0), buf, len, pos);
      if (typeof next === 'number') {
        log.info(
          { path, offset: pos, length: len, max: MAX_ATTRIBUTE_BYTES },
          `config tree mount: write refused: an attribute holds at most ${MAX_ATTRIBUTE_BYTES} bytes`,
        );
        return cb(next);
      }
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
    truncate(path: string, size: number, cb: FuseCallback) {
      cb(truncateReply(path, size)); // see the header: validation happens on write, never by emptying the value
    },
    ftruncate(path: string, _fd: number, size: number, cb: FuseCallback) {
      cb(truncateReply(path, size));
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
