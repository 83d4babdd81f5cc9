/**
 * Hostile input (issue 16, part 3), pure targets: every parser that takes outside input gets
 * generated input, HOSTILE_RUNS cases per target (100,000 by default; fast-check, seeded,
 * shrinking kept: a failure prints the seed and the smallest input that breaks it). The
 * invariants: nothing throws except a SlicedError with a known code and a sentence; what is
 * accepted is what the product promises (a whole, safe, non-negative figure; a name that
 * cannot escape a directory). The files an operator or a slice writes (ACLs, the config
 * file, tree documents) are in test/unit/hostile-input-files.test.ts, a file of its own so
 * that the two run side by side; the HTTP entry points on the real daemon in
 * test/e2e/hostile-api.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseCpu, parseIops, parseMemory, parseRate, formatCpu } from '../../src/core/units.js';
import { parseRate as parseNetRate } from '../../src/core/net-rate.js';
import { assertValidName, nameProblem, NAME_MAX_LENGTH } from '../../src/core/names.js';
import { domainCreateSchema, domainUpdateSchema, parseInput, sliceCreateSchema, sliceUpdateSchema } from '../../src/core/model.js';
import { parsePort, parseProtocol } from '../../src/core/net.js';
import { parsePidText, pidProblem } from '../../src/core/pids.js';
import { parseIoMaxArgument } from '../../src/core/io.js';
import { hostileValue, params, quantityText, refusedCleanly } from './hostile-fixtures.js';

const anyQuantity = fc.oneof(quantityText, fc.double(), fc.integer(), fc.anything());

describe('hostile input: quantities', () => {
  for (const [name, parse] of [
    ['cpu', parseCpu],
    ['memory', parseMemory],
    ['disk rate', parseRate],
    ['iops', parseIops],
    ['network rate', parseNetRate],
  ] as const) {
    test(`${name}: a whole, safe, non-negative figure or a reason, never a throw`, () => {
      fc.assert(
        fc.property(anyQuantity, (input) => {
          const result = parse(input);
          if (result.ok)
            assert.ok(Number.isSafeInteger(result.value) && result.value >= 0, `accepted ${fc.stringify(input)} as ${result.value}`);
          else assert.ok(result.reason.length >= 5, `a reason without words for ${fc.stringify(input)}`);
        }),
        params(`${name} quantities`),
      );
    });
  }

  test('cpu: what is accepted prints back to the same figure', () => {
    fc.assert(
      fc.property(quantityText, (input) => {
        const result = parseCpu(input);
        if (result.ok) assert.deepEqual(parseCpu(formatCpu(result.value)), result);
      }),
      params('cpu round trip'),
    );
  });
});

describe('hostile input: names, ports, protocols, pids, device specs', () => {
  test('a name is accepted only if it cannot escape a directory or pass for an option', () => {
    const hostile = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.constantFrom('..', '.', '-rf', 'a/b', 'a\0b', '.hidden', 'x'.repeat(65), 'cgroup.procs', 'CON', 'a..b'),
      fc.anything(),
    );
    fc.assert(
      fc.property(hostile, (name) => {
        const outcome = refusedCleanly(() => assertValidName('slice', name));
        assert.equal(outcome.ok, nameProblem(name) === null);
        if (outcome.ok) {
          const text = name as string;
          assert.ok(text.length >= 1 && text.length <= NAME_MAX_LENGTH);
          assert.ok(!text.includes('/') && !text.includes('..') && !text.includes('\0') && !/^[.-]/.test(text), JSON.stringify(text));
        }
      }),
      params('names'),
    );
  });

  test('ports, protocols, pids and io.max arguments: a value or a clear EINVAL', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.integer(), fc.double(), fc.anything()), (input) => {
        const port = refusedCleanly(() => parsePort(input));
        if (port.ok) assert.ok(Number.isInteger(port.value) && (port.value as number) >= 1 && (port.value as number) <= 65535);
        const protocol = refusedCleanly(() => parseProtocol(input));
        if (protocol.ok) assert.ok(['tcp', 'udp'].includes(protocol.value as string));
        const problem = pidProblem(input);
        assert.ok(problem === null || problem.length > 5);
        if (typeof input === 'string') {
          const pid = parsePidText(input);
          assert.ok(pid === null || (Number.isSafeInteger(pid) && pid > 0));
          refusedCleanly(() => parseIoMaxArgument(input));
        }
      }),
      params('ports, protocols, pids, io.max'),
    );
  });
});

const section = fc.dictionary(
  fc.constantFrom('reservation', 'limit', 'shares', 'high', 'swap', 'weight', 'max', 'egress', 'minRate', 'maxRate', 'tun', 'x'),
  hostileValue,
  {
    maxKeys: 4,
  },
);
const body = fc.oneof(
  fc.record(
    {
      name: fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom('web', '..', 'a/b'), fc.anything()),
      user: hostileValue,
      cpu: section,
      memory: section,
      io: fc.oneof(section, fc.record({ max: fc.dictionary(fc.string(), fc.oneof(section, fc.constant('none'))) })),
      pids: fc.record({ max: hostileValue }),
      domain: fc.oneof(fc.string(), fc.anything()),
      parent: fc.string(),
      net: fc.oneof(fc.boolean(), section, fc.constant(null)),
      extra: hostileValue,
    },
    { requiredKeys: [] },
  ),
  fc.anything(),
  fc.jsonValue(),
);

describe('hostile input: API bodies (the schemas every socket parses)', () => {
  for (const [what, schema] of [
    ['slice create', sliceCreateSchema],
    ['slice update', sliceUpdateSchema],
    ['domain create', domainCreateSchema],
    ['domain update', domainUpdateSchema],
  ] as const) {
    test(`${what}: parsed, or refused with EINVAL naming the field`, () => {
      fc.assert(
        fc.property(body, (input) => {
          const outcome = refusedCleanly(() => parseInput(schema, input, 'slice'));
          if (!outcome.ok) assert.equal(outcome.code, 'EINVAL');
          else {
            const parsed = outcome.value as { name?: unknown; cpu?: { reservation?: unknown } };
            if ('name' in parsed) assert.equal(nameProblem(parsed.name), null);
            const reservation = parsed.cpu?.reservation;
            if (reservation !== undefined) assert.ok(Number.isSafeInteger(reservation) && (reservation as number) >= 0);
          }
        }),
        params(`${what} bodies`),
      );
    });
  }
});
