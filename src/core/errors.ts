/**
 * One error type for everything sliced refuses. The code is a POSIX-style name so the
 * config tree (configfs semantics) and the HTTP API can share it; the message is one
 * sentence naming what was wrong, the value given and what is allowed.
 */
export type ErrorCode =
  | 'EINVAL' // bad value or bad request shape
  | 'ENOENT' // unknown slice, domain, pid, type
  | 'EEXIST' // duplicate name
  | 'ENOSPC' // admission control: over-commit
  | 'ENOTEMPTY' // domain still has members
  | 'EBUSY' // object in use
  | 'EPERM' // not allowed for this caller
  | 'EACCES' // not signed in (the dashboard)
  | 'ESRCH' // process vanished
  | 'ELOOP' // domain cycle
  | 'ENOTDIR' // config tree: a path component is not a directory
  | 'EISDIR' // config tree: a file operation on a directory
  | 'EIO'; // kernel refused or failed

export class SlicedError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'SlicedError';
    this.code = code;
    this.details = details;
  }
}

export function isSlicedError(err: unknown): err is SlicedError {
  return err instanceof SlicedError;
}

/** HTTP status for each code, used by the API server and understood by the CLI client. */
export const httpStatusOf: Record<ErrorCode, number> = {
  EINVAL: 400,
  ENOENT: 404,
  EEXIST: 409,
  ENOSPC: 409,
  ENOTEMPTY: 409,
  EBUSY: 409,
  EPERM: 403,
  EACCES: 401,
  ESRCH: 404,
  ELOOP: 400,
  ENOTDIR: 400,
  EISDIR: 400,
  EIO: 500,
};
