import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NAME_MAX_LENGTH, assertValidName, nameProblem } from '../../src/core/names.js';
import { SlicedError, isSlicedError } from '../../src/core/errors.js';

function refusal(kind: string, name: unknown): SlicedError {
  try {
    assertValidName(kind, name);
  } catch (err) {
    assert.ok(isSlicedError(err), `expected a SlicedError, got ${String(err)}`);
    return err;
  }
  assert.fail(`name ${JSON.stringify(name)} was accepted`);
}

describe('nameProblem', () => {
  test('accepts ordinary names', () => {
    for (const name of ['web', 'a', 'A', '0', 'web-1', 'db_primary', 'build.cache', 'Batch-Jobs_2', 'a.b.c', 'x-', 'x.', '9lives']) {
      assert.equal(nameProblem(name), null, name);
    }
  });

  test('accepts a name of exactly the maximum length', () => {
    assert.equal(NAME_MAX_LENGTH, 64);
    assert.equal(nameProblem('a'.repeat(64)), null);
  });

  test('refuses names longer than the maximum, saying how long they are', () => {
    const problem = nameProblem('a'.repeat(65));
    assert.ok(problem);
    assert.match(problem, /65 characters/);
    assert.match(problem, /at most 64/);
  });

  test('refuses the empty name', () => {
    assert.match(nameProblem('') ?? '', /empty/);
  });

  test('refuses "/" anywhere', () => {
    for (const name of ['/', 'a/b', '/etc', 'a/', '../x']) {
      assert.ok(nameProblem(name), name);
    }
    assert.match(nameProblem('a/b') ?? '', /"\/"/);
  });

  test('refuses ".." anywhere', () => {
    for (const name of ['..', 'a..b', 'a..', '...']) {
      assert.ok(nameProblem(name), name);
    }
    assert.match(nameProblem('a..b') ?? '', /"\.\."/);
  });

  test('refuses NUL', () => {
    assert.match(nameProblem('a\0b') ?? '', /NUL/);
    assert.match(nameProblem('\0') ?? '', /NUL/);
  });

  test('refuses a leading "-" or "." (options and hidden files)', () => {
    for (const name of ['-rf', '-', '.hidden', '.', '_x']) {
      assert.ok(nameProblem(name), name);
    }
  });

  test('refuses white space, control characters, other punctuation and non-ASCII', () => {
    for (const name of ['a b', ' a', 'a\n', 'a\t', 'a:b', 'a*', 'a$b', 'naïve', 'ünïcode', 'a\\b', 'a@b', 'a,b', "a'b"]) {
      assert.ok(nameProblem(name), JSON.stringify(name));
    }
  });

  test('refuses values that are not strings', () => {
    for (const value of [undefined, null, 5, true, {}, ['a']]) {
      assert.match(nameProblem(value) ?? '', /must be a string/);
    }
  });

  test('property: every accepted name is safe as a single directory name', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (name) => {
        if (nameProblem(name) !== null) return true;
        return (
          name.length >= 1 &&
          name.length <= NAME_MAX_LENGTH &&
          !name.includes('/') &&
          !name.includes('..') &&
          !name.includes('\0') &&
          !name.startsWith('-') &&
          !name.startsWith('.') &&
          /^[\x21-\x7e]+$/.test(name)
        );
      }),
      { numRuns: 2000 },
    );
  });

  test('property: names built from the allowed alphabet are accepted', () => {
    const first = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split(''));
    const rest = fc.constantFrom(...'abcxyzABCXYZ0189_-'.split(''));
    fc.assert(
      fc.property(first, fc.array(rest, { maxLength: NAME_MAX_LENGTH - 1 }), (head, tail) => {
        return nameProblem(head + tail.join('')) === null;
      }),
    );
  });
});

describe('assertValidName', () => {
  test('returns a valid name unchanged', () => {
    assert.equal(assertValidName('slice', 'web'), 'web');
    assert.equal(assertValidName('domain', 'Team.A-1'), 'Team.A-1');
  });

  test('throws EINVAL naming the kind and the value given', () => {
    const cases: [string, unknown, RegExp][] = [
      ['slice', 'a/b', /must not contain "\/"/],
      ['slice', '..', /must not contain "\.\."/],
      ['domain', '', /must not be empty/],
      ['slice', '-x', /must start with a letter or digit/],
      ['slice', '.x', /must start with a letter or digit/],
      ['slice', 'x'.repeat(65), /65 characters long/],
      ['slice', 'a\0b', /NUL/],
      ['domain', 42, /must be a string/],
    ];
    for (const [kind, value, reason] of cases) {
      const err = refusal(kind, value);
      assert.ok(err instanceof SlicedError);
      assert.equal(err.code, 'EINVAL');
      assert.ok(err.message.startsWith(`${kind} name `), err.message);
      assert.ok(err.message.includes(JSON.stringify(value)), `message ${err.message} should show ${JSON.stringify(value)}`);
      assert.match(err.message, reason);
    }
  });

  test('the message shows the value even when it contains NUL', () => {
    const err = refusal('slice', 'bad\0name');
    assert.ok(err.message.includes('"bad\\u0000name"'), err.message);
  });

  test('property: assertValidName throws exactly when nameProblem reports a problem', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 70 }), fc.integer(), fc.constant(null)), (name) => {
        const problem = nameProblem(name);
        try {
          assertValidName('slice', name);
          return problem === null;
        } catch (err) {
          return problem !== null && isSlicedError(err) && err.code === 'EINVAL' && err.message.includes(problem);
        }
      }),
    );
  });
});
