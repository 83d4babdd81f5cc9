/**
 * Who may use the dashboard: whoever shows the token of a root-only file gets a session (a
 * random id in an HttpOnly, SameSite=Strict cookie) and, with it, a CSRF token that every
 * change must carry in a header (the synchronizer-token pattern: a page of another site can
 * make the browser send the cookie, never read the token). Under HTTPS with a client CA, a
 * certificate that CA signed opens a session without the token. Sessions live in memory: a
 * restart of sliced signs everyone out. Failed sign-ins are limited per client address.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { SlicedError } from '../../core/errors.js';
import { readPrivateFile } from '../../kernel/private-file.js';

export const SESSION_COOKIE = 'sliced_session';
export const CSRF_HEADER = 'x-sliced-csrf';
/** A session unused this long ends. */
export const SESSION_IDLE_MS = 12 * 3600_000;
const MAX_SESSIONS = 1000;
/** Failed sign-ins one address may make per window before it is refused for the rest of it. */
const FAILURES_PER_WINDOW = 10;
const FAILURE_WINDOW_MS = 60_000;
const TOKEN_MIN_LENGTH = 16;

interface Session {
  csrf: string;
  lastUsed: number;
}

/**
 * The token: read from `file`, which must be root's and private to it; made (32 random bytes,
 * base64url, mode 0600) when missing and `create` is set (the default file in the state directory).
 */
export function readWebToken(file: string, create: boolean): string {
  if (!existsSync(file)) {
    if (!create)
      throw new SlicedError(
        'EINVAL',
        `web.tokenFile ${file} does not exist; write a token of at least ${TOKEN_MIN_LENGTH} characters to it (mode 0600)`,
      );
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
  }
  const token = readPrivateFile('web.tokenFile', file).toString('utf8').trim();
  if (token.length < TOKEN_MIN_LENGTH) {
    throw new SlicedError(
      'EINVAL',
      `web.tokenFile ${file}: the token is ${token.length} characters long; at least ${TOKEN_MIN_LENGTH} are needed`,
    );
  }
  return token;
}

export class WebSessions {
  private readonly sessions = new Map<string, Session>();
  private readonly failures = new Map<string, { count: number; since: number }>();
  private readonly tokenDigest: Buffer;

  constructor(
    token: string,
    private readonly now: () => number = Date.now,
  ) {
    this.tokenDigest = digest(token);
  }

  /** A new session for the right token: its id (for the cookie) and CSRF token. */
  signIn(token: unknown, client: string): { id: string; csrf: string } {
    const at = this.now();
    const failed = this.failures.get(client);
    if (failed && at - failed.since < FAILURE_WINDOW_MS && failed.count >= FAILURES_PER_WINDOW) {
      throw new SlicedError('EBUSY', `too many failed sign-ins from ${client}; try again in a minute`);
    }
    // Compared as digests: equal lengths, and no early exit on the first differing byte.
    if (typeof token !== 'string' || !timingSafeEqual(digest(token.trim()), this.tokenDigest)) {
      const current = failed && at - failed.since < FAILURE_WINDOW_MS ? failed : { count: 0, since: at };
      this.failures.set(client, { count: current.count + 1, since: current.since });
      throw new SlicedError('EACCES', 'wrong token: it is the content of the web token file (slicectl web prints the sign-in link)');
    }
    this.failures.delete(client);
    return this.open();
  }

  /** A new session for a client proven otherwise (a client certificate the configured CA signed). */
  open(): { id: string; csrf: string } {
    const at = this.now();
    this.expire(at);
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = [...this.sessions].sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0]!;
      this.sessions.delete(oldest[0]);
    }
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    this.sessions.set(id, { csrf, lastUsed: at });
    return { id, csrf };
  }

  /** The session of a cookie value, refreshed; null when there is none (or it ended). */
  session(id: string | undefined): { csrf: string } | null {
    if (!id) return null;
    const session = this.sessions.get(id);
    const at = this.now();
    if (!session || at - session.lastUsed > SESSION_IDLE_MS) {
      if (session) this.sessions.delete(id);
      return null;
    }
    session.lastUsed = at;
    return { csrf: session.csrf };
  }

  /** Whether `given` is the session's CSRF token. */
  csrfMatches(id: string | undefined, given: unknown): boolean {
    const session = this.session(id);
    return session !== null && typeof given === 'string' && timingSafeEqual(digest(given), digest(session.csrf));
  }

  signOut(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  private expire(at: number): void {
    for (const [id, s] of this.sessions) if (at - s.lastUsed > SESSION_IDLE_MS) this.sessions.delete(id);
    for (const [client, f] of this.failures) if (at - f.since >= FAILURE_WINDOW_MS) this.failures.delete(client);
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
