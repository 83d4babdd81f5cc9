/** Secrets on disk (tokens, keys): read only from a file that is root's and private to it. */
import { readFileSync, statSync } from 'node:fs';
import { SlicedError } from '../core/errors.js';

/**
 * The file's content; `setting` names it in errors (e.g. "web.tokenFile"). With `secret`
 * false (a certificate) it need not be private, only readable.
 */
export function readPrivateFile(setting: string, file: string, secret = true): Buffer {
  let mode: number;
  let uid: number;
  try {
    ({ mode, uid } = statSync(file));
  } catch (err) {
    throw new SlicedError(
      'EINVAL',
      `${setting} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  if (secret && (uid !== 0 || (mode & 0o077) !== 0)) {
    throw new SlicedError(
      'EPERM',
      `${setting} ${file} is mode ${(mode & 0o777).toString(8)} owned by uid ${uid}; it must be root's and private to it (chown root ${file}; chmod 600 ${file})`,
    );
  }
  return readFileSync(file);
}
