/**
 * The one error mapping of the HTTP API, for the admin socket and the slice sockets alike:
 * a SlicedError's code gives the status (core/errors.ts httpStatusOf) and the body
 * {"error": {"code", "message"}}; fastify's own refusals of a request (a body too large, a
 * content type it cannot parse) are EINVAL; anything else is an internal error (EIO).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { httpStatusOf, isSlicedError, type ErrorCode } from '../../core/errors.js';
import type { ErrorBody } from '../../wire/error.js';

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** The status and body for anything a route throws. */
export function errorReply(err: unknown): { status: number; body: ErrorBody } {
  if (isSlicedError(err)) return { status: httpStatusOf[err.code], body: errorBody(err.code, err.message) };
  const fastifyError = err as { statusCode?: number; message?: string };
  if (fastifyError.statusCode && fastifyError.statusCode < 500) {
    return { status: 400, body: errorBody('EINVAL', `bad request: ${fastifyError.message}`) };
  }
  return { status: 500, body: errorBody('EIO', `internal error: ${(err as Error).message ?? String(err)}`) };
}

export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  const { status, body } = errorReply(err);
  return reply.code(status).send(body);
}

/**
 * For fastify's `frameworkErrors`: what its router refuses before any route runs (a URL with
 * a bad percent-encoding such as "%ff") is EINVAL in the one error format, not fastify's own.
 */
export function frameworkErrorHandler(err: Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(400).send(errorBody('EINVAL', `the request's URL ${JSON.stringify(request.url)} is not valid: ${err.message}`));
}

/** A fastify error handler (setErrorHandler) that answers with the mapping above. */
export function errorHandler(err: unknown, _request: unknown, reply: FastifyReply): FastifyReply {
  return sendError(reply, err);
}
