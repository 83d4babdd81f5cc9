/**
 * Hostile input (issue 16, part 3), pure targets: every parser that takes outside input gets
 * generated input, HOSTILE_RUNS cases per target (100,000 by default; fast-check, seeded,
 * shrinking kept: a failure prints the seed and the smallest input that breaks it). The
 * invariants: nothing throws except a SlicedError with a known code and a sentence; what is
 * accepted is what the product promises (a whole, safe, non-negative figure; a name that
 * cannot escape a directory); a refused YAML document leaves the tree as it was, an
 * accepted one keeps its invariants. The HTTP entry points on the real daemon are in
 * test/e2e/hostile-api.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { isSlicedError } from '../../src/core/errors.js';
import { parseCpu, parseIops, parseMemory, parseRate, formatCpu } from '../../src/core/units.js';
import { parseRate as parseNetRate } from '../../src/core/net-rate.js';
import { assertValidName, nameProblem, NAME_MAX_LENGTH } from '../../src/core/names.js';
import { domainCreateSchema, domainUpdateSchema, parseInput, sliceCreateSchema, sliceUpdateSchema } from '../../src/core/model.js';
import { parsePort, parseProtocol } from '../../src/core/net.js';
import { parsePidText, pidProblem } from '../../src/core/pids.js';
import { parseIoMaxArgument } from '../../src/core/io.js';
import { parseAcl } from '../../src/vsys/acl.js';
import { configFromText } from '../../src/daemon/config.js';
import { parseYamlText } from '../../src/core/yaml-text.js';
import { dumpTree, executePlan, parseTreeYaml, planApply } from '../../src/framework/document.js';
import { KNOWN_CODES, makeTree } from './framework-fixtures.js';
import { fuzzSeed } from '../helpers/prng.js';

const RUNS = Number(process.env.HOSTILE_RUNS ?? 100_000);

/** fast-check's parameters: the printed seed, RUNS cases, shrinking on (the default). */
function params(what: string, runs = RUNS): fc.Parameters<unknown> {
  return { seed: fuzzSeed(`hostile input: ${what}`) | 0, numRuns: runs };
}

/** Runs `f`; anything thrown must be a SlicedError with a known code and a sentence. */
function refusedCleanly(f: () => unknown): { ok: true; value: unknown } | { ok: false; code: string } {
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
const quantityText = fc.oneof(
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

/** JSON bodies close to the API's: the right keys with hostile values, unknown keys, wrong shapes. */
const hostileValue = fc.oneof(
  quantityText,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant('none'),
  fc.anything({ maxDepth: 2 }),
);
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

describe('hostile input: files an operator or a slice writes', () => {
  const aclLine = fc.oneof(
    fc.string(),
    fc
      .tuple(
        fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom('web', '..', '#!', '#! stateful', '-x')),
        fc.constantFrom('', ' r', ' w', ' rw', ' x', ' r w', '\t#c'),
      )
      .map(([a, b]) => a + b),
  );
  test('vsys ACL files: only valid slice names are granted, with a known mode; bad lines are reported', () => {
    fc.assert(
      fc.property(fc.array(aclLine, { maxLength: 12 }), (lines) => {
        const acl = parseAcl(lines.join('\n'));
        for (const [name, mode] of acl.entries) {
          assert.equal(nameProblem(name), null, `granted ${JSON.stringify(name)}`);
          assert.ok(['r', 'w', 'rw'].includes(mode));
        }
        for (const p of acl.problems) assert.ok(p.line >= 1 && p.line <= lines.length && p.message.length > 5);
      }),
      params('vsys ACL files'),
    );
  });

  const configDoc = fc.dictionary(
    fc.constantFrom(
      'stateDir',
      'runDir',
      'cgroupRoot',
      'cpuCapacity',
      'systemReserve',
      'controlPeriodMs',
      'netPool4',
      'netTag',
      'userPrefix',
      'vsysTimeoutMs',
      'cluster',
      'admin',
      'x',
    ),
    fc.oneof(hostileValue, fc.dictionary(fc.string({ maxLength: 8 }), hostileValue, { maxKeys: 3 })),
    { maxKeys: 5 },
  );
  test('the config file: settings, or EINVAL that names the file', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          configDoc.map((d) => toYaml(d)),
          fc.constantFrom('a: [', '- 1', ': :', '{', '"', '&a *a', '!!binary x'),
        ),
        (text) => {
          const outcome = refusedCleanly(() => configFromText(text, '/etc/sliced/config.yaml', {}));
          if (!outcome.ok) assert.equal(outcome.code, 'EINVAL');
        },
      ),
      params('config files'),
    );
  });

  test('apply: a refused YAML tree document changes nothing; an accepted one keeps the tree whole', async () => {
    const { tree, registry } = makeTree();
    const names = fc.constantFrom(
      'cpu',
      'threshold',
      'round_robin',
      'least_loaded',
      'x0',
      '..',
      '',
      'a/b',
      'probes',
      'schedulers',
      'ports',
      'process_set',
    );
    const node: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, hostileValue, fc.dictionary(names, tie('node'), { maxKeys: 3 })),
    })).node;
    const document = fc.oneof(
      fc.string(),
      fc.record({ probes: node, schedulers: node }, { requiredKeys: [] }).map((d) => toYaml(d)),
    );
    await fc.assert(
      fc.asyncProperty(document, async (text) => {
        const before = JSON.stringify(dumpTree(tree));
        let steps;
        try {
          steps = await planApply(tree, registry, parseTreeYaml(text, 'the document'));
        } catch (err) {
          refusedCleanly(() => {
            throw err;
          });
          assert.equal(JSON.stringify(dumpTree(tree)), before, 'a refused document changed the tree');
          return;
        }
        try {
          await executePlan(tree, steps);
        } catch (err) {
          refusedCleanly(() => {
            throw err;
          });
        }
        assert.deepEqual(tree.checkInvariants(), []);
      }),
      params('tree documents'),
    );
  });
});

describe('hostile input: YAML from outside', () => {
  test('an alias bomb, an unknown tag or directive and broken syntax are refused with EINVAL', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      ...Array.from(
        { length: 8 },
        (_, i) =>
          `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
            .fill(`*${String.fromCharCode(97 + i)}`)
            .join(', ')}]`,
      ),
    ].join('\n');
    for (const [text, pattern] of [
      [bomb, /Excessive alias count/],
      ['value: !evil 1', /Unresolved tag/],
      ['%FOO bar\n---\na: 1', /Unknown directive/],
      ['a: [', /not valid YAML/],
    ] as const) {
      const outcome = (() => {
        try {
          parseYamlText(text, 'the document');
          return null;
        } catch (err) {
          return err;
        }
      })();
      assert.ok(isSlicedError(outcome) && outcome.code === 'EINVAL', `${text.slice(0, 30)} was not refused: ${String(outcome)}`);
      assert.match(outcome.message, /^the document is not valid YAML: /);
      assert.match(outcome.message, pattern);
    }
    assert.deepEqual(parseYamlText('a: &x [1]\nb: *x', 'the document'), { a: [1], b: [1] });
  });
});
