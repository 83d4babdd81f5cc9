/** HTTP client for the daemon's Unix socket, with errors turned into exit codes scripts can use. */
import { request as httpRequest } from 'node:http';
import type { ErrorCode } from '../core/errors.js';

export const EXIT = {
  ok: 0,
  /** The daemon refused the request (invalid value, over-commit, conflict, kernel refusal). */
  refused: 1,
  /** Bad command line. */
  usage: 2,
  /** Unknown slice, domain or process. */
  notFound: 3,
  /** Not allowed for this user. */
  permission: 4,
  /** The daemon is not running or not reachable. */
  unavailable: 5,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly code: string,
  ) {
    super(message);
  }
}

export function exitCodeFor(code: string): number {
  switch (code as ErrorCode) {
    case 'ENOENT':
    case 'ESRCH':
      return EXIT.notFound;
    case 'EPERM':
      return EXIT.permission;
    default:
      return EXIT.refused;
  }
}

export class ApiClient {
  constructor(readonly socketPath: string) {}

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /**
   * GET an NDJSON stream: `onLine` gets each parsed line as it arrives; resolves at its end.
   * A refusal comes back as the usual error. `signal` ends the stream early.
   */
  stream<T>(path: string, onLine: (line: T) => void, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req = httpRequest({ socketPath: this.socketPath, path, method: 'GET', ...(signal ? { signal } : {}) }, (res) => {
        const status = res.statusCode ?? 500;
        if (status >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => reject(answerError(status, Buffer.concat(chunks).toString('utf8'))));
          return;
        }
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (line.trim()) onLine(JSON.parse(line) as T);
          }
        });
        res.on('end', () => resolve());
        res.on('error', (err) => reject(new CliError(`the stream from sliced broke off: ${err.message}`, EXIT.refused, 'EIO')));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (signal?.aborted) resolve();
        else reject(connectionError(this.socketPath, err));
      });
      req.end();
    });
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await this.exchange(method, path, body);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      throw new CliError(`unexpected answer from sliced: ${text.slice(0, 200)}`, EXIT.refused, 'EIO');
    }
    if (status >= 400) throw errorOf(status, parsed);
    return parsed as T;
  }

  /** GET an answer that is not JSON (an SVG chart); a refusal is the usual error. */
  async text(path: string): Promise<string> {
    const { status, text } = await this.exchange('GET', path);
    if (status >= 400) throw answerError(status, text);
    return text;
  }

  private exchange(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 500, text: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(connectionError(this.socketPath, err)));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }
}

function errorOf(status: number, parsed: unknown): CliError {
  const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
  const code = error?.code ?? 'EIO';
  return new CliError(error?.message ?? `request failed with HTTP ${status}`, exitCodeFor(code), code);
}

function answerError(status: number, text: string): CliError {
  try {
    return errorOf(status, JSON.parse(text));
  } catch {
    return new CliError(`unexpected answer from sliced (HTTP ${status}): ${text.slice(0, 200)}`, EXIT.refused, 'EIO');
  }
}

function connectionError(socket: string, err: NodeJS.ErrnoException): CliError {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
    return new CliError(`sliced is not running (nothing answers on ${socket})`, EXIT.unavailable, 'EUNAVAILABLE');
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new CliError(
      `permission denied on ${socket}: only root or the configured admin group may use the API; slices can read their own view`,
      EXIT.permission,
      'EPERM',
    );
  }
  return new CliError(`cannot reach sliced on ${socket}: ${err.message}`, EXIT.unavailable, 'EUNAVAILABLE');
}
