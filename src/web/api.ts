/**
 * The dashboard's calls: the admin API's views under /api/v1 (the session cookie goes along),
 * actions with the session's CSRF token, sign-in. A refusal throws the API's own message.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf: string | null = null;

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-sliced-csrf'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), credentials: 'same-origin' });
  const text = await res.text();
  const json = text ? (JSON.parse(text) as unknown) : null;
  if (!res.ok) {
    const error = (json as { error?: { code: string; message: string } } | null)?.error;
    throw new ApiError(res.status, error?.code ?? 'EIO', error?.message ?? `${method} ${path}: HTTP ${res.status}`);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string): Promise<T> => call<T>('GET', `/api${path}`),
  post: <T>(path: string, body?: unknown): Promise<T> => call<T>('POST', `/api${path}`, body ?? {}),
  patch: <T>(path: string, body: unknown): Promise<T> => call<T>('PATCH', `/api${path}`, body),
  delete: <T>(path: string): Promise<T> => call<T>('DELETE', `/api${path}`),
};

/** Whether this browser has a session; keeps its CSRF token. */
export async function checkSession(): Promise<boolean> {
  try {
    csrf = (await call<{ csrf: string }>('GET', '/api/session')).csrf;
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return false;
    throw err;
  }
}

export async function signIn(token: string): Promise<void> {
  csrf = (await call<{ csrf: string }>('POST', '/api/session', { token })).csrf;
}

export async function signOut(): Promise<void> {
  await call('DELETE', '/api/session');
  csrf = null;
}
