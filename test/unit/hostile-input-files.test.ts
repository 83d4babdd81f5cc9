/**
 * Hostile input (issue 16, part 3), the files an operator or a slice writes: vsys ACL files,
 * the config file, YAML tree documents for apply (a refused one leaves the tree as it was, an
 * accepted one keeps its invariants), and YAML itself. HOSTILE_RUNS cases per target, as in
 * test/unit/hostile-input.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { isSlicedError } from '../../src/core/errors.js';
import { nameProblem } from '../../src/core/names.js';
import { parseAcl } from '../../src/vsys/acl.js';
import { configFromText } from '../../src/daemon/config.js';
import { parseYamlText } from '../../src/core/yaml-text.js';
import { dumpTree, executePlan, parseTreeYaml, planApply } from '../../src/framework/document.js';
import { makeTree } from './framework-fixtures.js';
import { hostileValue, params, refusedCleanly } from './hostile-fixtures.js';

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
