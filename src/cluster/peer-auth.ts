/**
 * Credentials of the node-to-node channel, read once at start: a shared token (test set-ups)
 * or mutual TLS with the cluster CA. Either file must be root's and private to it: a slice
 * that could read it could call any agent.
 */
import { readFileSync, statSync } from 'node:fs';
import { SlicedError } from '../core/errors.js';

export type PeerCredentials = { kind: 'token'; token: string } | { kind: 'tls'; ca: Buffer; cert: Buffer; key: Buffer };

export interface PeerCredentialFiles {
  tokenFile?: string | undefined;
  tls?: { ca: string; cert: string; key: string } | undefined;
}

export function readPeerCredentials(files: PeerCredentialFiles): PeerCredentials {
  if (files.tokenFile !== undefined) {
    const token = readPrivate('tokenFile', files.tokenFile).toString('utf8').trim();
    if (token.length < 16) {
      throw new SlicedError(
        'EINVAL',
        `cluster.peer.tokenFile ${files.tokenFile}: the token is ${token.length} characters long; at least 16 are needed`,
      );
    }
    return { kind: 'token', token };
  }
  if (files.tls !== undefined) {
    return {
      kind: 'tls',
      ca: readPrivate('tls.ca', files.tls.ca, false),
      cert: readPrivate('tls.cert', files.tls.cert, false),
      key: readPrivate('tls.key', files.tls.key),
    };
  }
  throw new SlicedError('EINVAL', 'cluster.peer needs tokenFile or tls');
}

function readPrivate(what: string, file: string, secret = true): Buffer {
  let mode: number;
  let uid: number;
  try {
    ({ mode, uid } = statSync(file));
  } catch (err) {
    throw new SlicedError(
      'EINVAL',
      `cluster.peer.${what} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  if (secret && (uid !== 0 || (mode & 0o077) !== 0)) {
    throw new SlicedError(
      'EPERM',
      `cluster.peer.${what} ${file} is mode ${(mode & 0o777).toString(8)} owned by uid ${uid}; it must be root's and private to it (chown root ${file}; chmod 600 ${file})`,
    );
  }
  return readFileSync(file);
}
