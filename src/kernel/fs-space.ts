/** Space left on the filesystem that holds a path (statfs), for the state directory's figures. */
import { statfsSync } from 'node:fs';

export interface FsSpace {
  /** Bytes root (the daemon) may still write, blocks reserved for root (ext4's -m) included. */
  freeBytes: number;
  /** Bytes unprivileged users, slices among them, may still write. */
  availableBytes: number;
  totalBytes: number;
  /** Files that may still be created (0 on a filesystem out of inodes: no new file, no snapshot). */
  freeInodes: number;
}

/** The figures of the filesystem holding `path`, or null when it cannot be read (path gone). */
export function fsSpace(path: string): FsSpace | null {
  try {
    const s = statfsSync(path);
    return { freeBytes: s.bfree * s.bsize, availableBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize, freeInodes: s.ffree };
  } catch {
    return null;
  }
}
