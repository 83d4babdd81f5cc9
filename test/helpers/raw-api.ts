/**
 * One HTTP request on a daemon's Unix socket, with whatever method, path, headers and body
 * bytes the test wants (malformed ones too), and every way it can end: an answer (status,
 * parsed JSON or the raw text), or no answer (the connection failed or was cut, as when the
 * daemon is killed mid-request).
 */
import { request } from 'node:http';

export type Outcome = { kind: 'answer'; status: number; json: unknown; text: string } | { kind: 'lost'; error: string };

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** A value is sent as JSON; a string or Buffer as it is. */
  body?: unknown;
  raw?: string | Buffer;
  timeoutMs?: number;
}

export function rawCall(socket: string, req: RawRequest): Promise<Outcome> {
  const payload = req.raw ?? (req.body === undefined ? undefined : JSON.stringify(req.body));
  const headers: Record<string, string | number> = {
    ...(req.raw === undefined && req.body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...req.headers,
  };
  if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload);
  return new Promise((resolve) => {
    const r = request({ socketPath: socket, path: req.path, method: req.method, headers, timeout: req.timeoutMs ?? 0 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => resolve({ kind: 'lost', error: err.message }));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = undefined;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          // Not JSON: the caller decides whether that is acceptable.
        }
        resolve({ kind: 'answer', status: res.statusCode ?? 0, json, text });
      });
    });
    r.on('timeout', () => r.destroy(new Error(`no answer within ${req.timeoutMs} ms`)));
    r.on('error', (err) => resolve({ kind: 'lost', error: err.message }));
    if (payload !== undefined) r.write(payload);
    r.end();
  });
}

/** The error document of a refusal ({error: {code, message}}), or null when the answer has none. */
export function errorOf(outcome: Outcome): { code: string; message: string } | null {
  if (outcome.kind !== 'answer') return null;
  const error = (outcome.json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return typeof error?.code === 'string' && typeof error.message === 'string' ? { code: error.code, message: error.message } : null;
}
