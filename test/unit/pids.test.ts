import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { z } from 'zod';
import { PID_MAX, isPid, parsePidText } from '../../src/core/pids.js';
import { pidSchema, pidTextSchema } from '../../src/core/model.js';
import { parseInput } from '../../src/core/model.js';

const body = z.object({ pid: pidSchema }).strict();
const query = z.object({ pid: pidTextSchema }).strict();
const refusal = (input: unknown, schema: z.ZodType = body): string => {
  try {
    parseInput(schema, input, 'attach');
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail(`accepted ${JSON.stringify(input)}`);
};

describe('pids from outside', () => {
  test('1e400 in a body (Infinity once parsed) is named as it is, with the allowed range', () => {
    assert.equal(
      refusal(JSON.parse('{"pid":1e400}')),
      `attach: pid Infinity is not a valid pid: it must be a whole number from 1 to ${PID_MAX}`,
    );
    assert.equal(refusal({ pid: -Infinity }), `attach: pid -Infinity is not a valid pid: it must be a whole number from 1 to ${PID_MAX}`);
    assert.equal(refusal({ pid: NaN }), `attach: pid NaN is not a valid pid: it must be a whole number from 1 to ${PID_MAX}`);
  });

  test('every other wrong value gets the same sentence; a missing pid is required', () => {
    for (const pid of [0, -1, 1.5, PID_MAX + 1, '12', null, true, [3]]) {
      assert.match(
        refusal({ pid }),
        /^attach: pid .+ is not a valid pid: it must be a whole number from 1 to 4194304$/,
        JSON.stringify(pid),
      );
    }
    assert.equal(refusal({}), 'attach: pid is required');
  });

  test('property: a body accepts exactly the whole numbers 1..PID_MAX', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -10, max: PID_MAX + 10 }), fc.double()), (pid) => {
        const ok = Number.isInteger(pid) && pid >= 1 && pid <= PID_MAX;
        assert.equal(isPid(pid), ok);
        if (ok) assert.equal(parseInput(body, { pid }, 'attach').pid, pid);
        else assert.throws(() => parseInput(body, { pid }, 'attach'), /is not a valid pid/);
      }),
      { numRuns: 500 },
    );
  });

  test('text (argv, query): digits only, no sign, exponent, fraction or leading zero', () => {
    for (const text of ['1', '42', String(PID_MAX)]) assert.equal(parsePidText(text), Number(text));
    for (const text of ['', '0', '01', '-1', '+1', '1e3', '1e400', '1.0', ' 1', '0x10', String(PID_MAX + 1), '99999999999']) {
      assert.equal(parsePidText(text), null, text);
    }
    assert.equal(
      refusal({ pid: '1e400' }, query),
      `attach: pid "1e400" is not a valid pid: it must be a whole number from 1 to ${PID_MAX}`,
    );
    assert.equal(parseInput(query, { pid: '4242' }, 'placement').pid, 4242);
  });
});
