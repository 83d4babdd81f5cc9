/** Unix users for slices, through the system's own tools (useradd/userdel, getent for NSS). */
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { SlicedError } from '../core/errors.js';

export interface UnixUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  /** The GECOS field (sliced writes what made the user there). */
  comment: string;
}

let passwdCache: { mtimeMs: number; users: Map<string, UnixUser> } | null = null;

/** Local users from /etc/passwd, re-read only when the file changes. */
function localUsers(): Map<string, UnixUser> {
  try {
    const mtimeMs = statSync(PASSWD).mtimeMs;
    if (passwdCache?.mtimeMs !== mtimeMs) {
      const users = new Map<string, UnixUser>();
      for (const line of readFileSync(PASSWD, 'utf8').split('\n')) {
        const user = parsePasswdLine(line);
        if (user) users.set(user.name, user);
      }
      passwdCache = { mtimeMs, users };
    }
    return passwdCache.users;
  } catch {
    return new Map();
  }
}

const PASSWD = '/etc/passwd';

/** Every user of /etc/passwd (sliced's own users live there, never in a directory). */
export function listLocalUsers(): UnixUser[] {
  return [...localUsers().values()];
}

/** A group's id through NSS (getent, killed after 10 s), or null when there is no such group. */
export function lookupGroupId(group: string): Promise<number | null> {
  return new Promise((resolve) => {
    execFile('getent', ['group', group], { encoding: 'utf8', timeout: 10_000, killSignal: 'SIGKILL' }, (err, stdout) => {
      const gid = err ? NaN : Number(stdout.split(':')[2]);
      resolve(Number.isInteger(gid) ? gid : null);
    });
  });
}

/**
 * Look a user up: /etc/passwd first (cheap, and where sliced's own users live), then NSS
 * through getent for directory users.
 */
export function lookupUser(name: string): UnixUser | null {
  const local = localUsers().get(name);
  if (local) return local;
  const result = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  if (result.status !== 0) return null;
  return parsePasswdLine(result.stdout.trim().split('\n')[0] ?? '');
}

export function parsePasswdLine(line: string): UnixUser | null {
  const fields = line.split(':');
  if (fields.length < 7) return null;
  return {
    name: fields[0]!,
    uid: Number(fields[2]),
    gid: Number(fields[3]),
    home: fields[5]!,
    shell: fields[6]!,
    comment: fields[4]!,
  };
}

/** Create an unprivileged system user with its own group and no home or login shell. */
export function createUser(name: string, comment: string): UnixUser {
  const result = spawnSync(
    'useradd',
    [
      '--system',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      '--user-group',
      '--comment',
      comment,
      name,
    ],
    { encoding: 'utf8' },
  );
  if (result.error) throw new SlicedError('EIO', `cannot run useradd: ${result.error.message}`);
  if (result.status !== 0) {
    throw new SlicedError('EIO', `useradd ${name} failed: ${result.stderr.trim() || `exit status ${result.status}`}`);
  }
  const user = lookupUser(name);
  if (!user) throw new SlicedError('EIO', `useradd ${name} succeeded but the user cannot be looked up`);
  return user;
}

export function deleteUser(name: string): void {
  const result = spawnSync('userdel', [name], { encoding: 'utf8' });
  if (result.error) throw new SlicedError('EIO', `cannot run userdel: ${result.error.message}`);
  // Exit status 6: the user does not exist any more, which is what we wanted.
  if (result.status !== 0 && result.status !== 6) {
    throw new SlicedError('EIO', `userdel ${name} failed: ${result.stderr.trim() || `exit status ${result.status}`}`);
  }
}
