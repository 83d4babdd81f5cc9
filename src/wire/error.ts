/** The body of every refusal the API sends (admin socket and slice sockets alike). */
import type { ErrorCode } from '../core/errors.js';

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}
