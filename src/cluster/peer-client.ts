/**
 * Calls to another agent's node-to-node channel (daemon/peer/server.ts), with this agent's
 * credentials: the token in a header, or this agent's certificate, and the peer's verified
 * against the cluster CA (any certificate the CA signed is a member: the peer is reached by
 * address, which its certificate need not name).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SlicedError, isSlicedError, type ErrorCode } from '../core/errors.js';
import type { PeerCredentials } from './peer-auth.js';

const CONNECT_TIMEOUT_MS = 5000;

export class PeerClient {
  constructor(private readonly credentials: PeerCredentials) {}

  /** The response of `method path` at `base` (the peer's URL); refuses any status but 2xx, with the peer's message. */
  async call(node: string, base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<IncomingMessage> {
    const url = new URL(path, base);
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {};
    const c = this.credentials;
    if (c.kind === 'token') headers.authorization = `Bearer ${c.token}`;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const options = { method, headers, timeout: CONNECT_TIMEOUT_MS };
      const req =
        url.protocol === 'https:'
          ? httpsRequest(url, {
              ...options,
              ...(c.kind === 'tls' ? { ca: c.ca, cert: c.cert, key: c.key } : {}),
              checkServerIdentity: () => undefined,
            })
          : httpRequest(url, options);
      req.once('response', (res) => {
        req.setTimeout(0);
        resolve(res);
      });
      req.once('timeout', () => req.destroy(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)));
      req.once('error', (err) => reject(new SlicedError('EIO', `cannot reach node ${node}'s agent at ${base}: ${err.message}`)));
      req.end(payload ?? undefined);
    });
    if ((response.statusCode ?? 500) >= 300) throw await peerError(node, response);
    return response;
  }

  async json<T>(node: string, base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const response = await this.call(node, base, method, path, body);
    return JSON.parse((await readAll(response)).toString('utf8')) as T;
  }
}

async function readAll(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function peerError(node: string, response: IncomingMessage): Promise<SlicedError> {
  const text = (await readAll(response).catch(() => Buffer.alloc(0))).toString('utf8');
  try {
    const { error } = JSON.parse(text) as { error: { code: ErrorCode; message: string } };
    const err = new SlicedError(error.code, error.message);
    if (isSlicedError(err) && response.statusCode !== 401) return err;
    return new SlicedError('EIO', `node ${node}'s agent refused this agent's credentials: ${error.message}`);
  } catch {
    return new SlicedError('EIO', `node ${node}'s agent answered ${response.statusCode}: ${text.slice(0, 200)}`);
  }
}
