/**
 * Credentials of the node-to-node channel, read once at start: a shared token (test set-ups)
 * or mutual TLS with the cluster CA. Either file must be root's and private to it: a slice
 * that could read it could call any agent.
 */
import { SlicedError } from '../core/errors.js';
import { readPrivateFile } from '../kernel/private-file.js';

export type PeerCredentials = { kind: 'token'; token: string } | { kind: 'tls'; ca: Buffer; cert: Buffer; key: Buffer };

export interface PeerCredentialFiles {
  tokenFile?: string | undefined;
  tls?: { ca: string; cert: string; key: string } | undefined;
}

export function readPeerCredentials(files: PeerCredentialFiles): PeerCredentials {
  if (files.tokenFile !== undefined) {
    const token = readPrivateFile('cluster.peer.tokenFile', files.tokenFile).toString('utf8').trim();
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
      ca: readPrivateFile('cluster.peer.tls.ca', files.tls.ca, false),
      cert: readPrivateFile('cluster.peer.tls.cert', files.tls.cert, false),
      key: readPrivateFile('cluster.peer.tls.key', files.tls.key),
    };
  }
  throw new SlicedError('EINVAL', 'cluster.peer needs tokenFile or tls');
}
