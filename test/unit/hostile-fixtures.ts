/**
 * What the hostile-input tests share (issue 16, part 3; test/unit/hostile-input*.test.ts):
 * fast-check's parameters, the check that a refusal is a clean SlicedError, and generators
 * of text and values close to what the product parses.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isSlicedError } from '../../src/core/errors.js';
import { KNOWN_CODES } from './framework-fixtures.js';
import { fuzzSeed } from '../helpers/prng.js';

export const RUNS = Number(process.env.HOSTILE_RUNS ?? 100_000);

/** fast-check's parameters: the printed seed, RUNS cases, shrinking on (the default). */
export function params(what: string, runs = RUNS): fc.Parameters<unknown> {
  return { seed: fuzzSeed(`hostile input: ${what}`) | 0, numRuns: runs };
}

/** Runs `f`; anything thrown must be a SlicedError with a known code and a sentence. */
export function refusedCleanly(f: () => unknown): { ok: true; value: unknown } | { ok: false; code: string } {
  try {
    return { ok: true, value: f() };
  } catch (err) {
    assert.ok(isSlicedError(err), `threw something else than a SlicedError: ${String(err)}`);
    assert.ok(KNOWN_CODES.has(err.code), `unknown error code ${err.code}`);
    assert.ok(err.message.length >= 10, `an error without a sentence: ${JSON.stringify(err.message)}`);
    return { ok: false, code: err.code };
  }
}

/** Text that looks like a quantity more often than random text would. */
export const quantityText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc
    .tuple(
      fc.oneof(
        fc.nat().map(String),
        fc.double({ noNaN: false }).map(String),
        fc.bigInt().map(String),
        fc.constantFrom('', '.', '1e309', '-0', '0x10', '１'),
      ),
      fc.constantFrom('', 'm', 'M', 'Mi', 'K', 'Ki', 'G', 'T', 'P', 'B', 'iB', 'bit', 'kbit', 'mbit', 'gbit', '/s', 'M/s', ' ', '\0', '%'),
      fc.constantFrom('', ' ', '\n', 'x'),
    )
    .map(([n, u, tail]) => `${n}${u}${tail}`),
);

/** JSON bodies close to the API's: the right keys with hostile values, unknown keys, wrong shapes. */
export const hostileValue = fc.oneof(
  quantityText,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant('none'),
  fc.anything({ maxDepth: 2 }),
);
