/**
 * JSON bodies: fastify's own parser (secure-json-parse, which refuses prototype-poisoning
 * keys), with two differences. An empty body is no body: `curl -X DELETE -H 'content-type:
 * application/json'` sends one, and routes that need a body say so themselves. A refusal
 * says why: the forbidden key, or where the syntax breaks, instead of "not valid JSON".
 */
import type { FastifyInstance } from 'fastify';
import { SlicedError } from '../../core/errors.js';

export function registerJsonParser(app: FastifyInstance): void {
  const secureParse = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    secureParse(request, text, (err, value) => (err ? done(jsonProblem(text), undefined) : done(null, value)));
  });
}

/** Why the secure parser refused `text`: a forbidden key (named) or a syntax error (with its position). */
function jsonProblem(text: string): SlicedError {
  try {
    JSON.parse(text, (key: string, value: unknown) => {
      // The same keys secure-json-parse refuses: either could change an object's prototype
      // when the body is later merged into another object.
      if (key === '__proto__') throw new ForbiddenKey('__proto__');
      if (key === 'constructor' && value !== null && typeof value === 'object' && Object.hasOwn(value, 'prototype')) {
        throw new ForbiddenKey('constructor.prototype');
      }
      return value;
    });
  } catch (err) {
    if (err instanceof ForbiddenKey) {
      return new SlicedError(
        'EINVAL',
        `the key "${err.key}" is not allowed in a request body (it could change object prototypes); remove it`,
      );
    }
    return new SlicedError('EINVAL', `the body is not valid JSON: ${(err as Error).message}`);
  }
  return new SlicedError('EINVAL', 'the body was refused by the JSON parser');
}

class ForbiddenKey extends Error {
  constructor(readonly key: string) {
    super(key);
  }
}
