import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_CPU,
  DEFAULT_MEMORY,
  SHARES_DEFAULT,
  SHARES_MAX,
  SHARES_MIN,
  domainCreateSchema,
  domainUpdateSchema,
  emptyState,
  parseInput,
  sliceCreateSchema,
  sliceUpdateSchema,
} from '../../src/core/model.js';
import { isSlicedError, type SlicedError } from '../../src/core/errors.js';

const M = 1024 ** 2;
const G = 1024 ** 3;

function refusal(schema: Parameters<typeof parseInput>[0], input: unknown, what = 'slice'): SlicedError {
  try {
    parseInput(schema, input, what);
  } catch (err) {
    assert.ok(isSlicedError(err), `expected a SlicedError, got ${String(err)}`);
    assert.equal(err.code, 'EINVAL');
    assert.ok(err.message.startsWith(`${what}: `), `message should start with "${what}: ": ${err.message}`);
    return err;
  }
  assert.fail(`input ${JSON.stringify(input)} was accepted`);
}

/** The message names the field path, shows the value given and says what is allowed. */
function assertExplains(err: SlicedError, path: string, shownValue: string, allowed: RegExp): void {
  assert.ok(err.message.includes(`${path} ${shownValue} `), `message should name ${path} and show ${shownValue}: ${err.message}`);
  assert.match(err.message, allowed);
}

describe('constants and defaults', () => {
  test('shares range and default', () => {
    assert.equal(SHARES_MIN, 1);
    assert.equal(SHARES_MAX, 10000);
    assert.equal(SHARES_DEFAULT, 100);
    assert.deepEqual(DEFAULT_CPU, { reservation: 0, limit: null, shares: 100 });
    assert.deepEqual(DEFAULT_MEMORY, { limit: null, high: null, swap: null });
  });

  test('emptyState gives a fresh, empty state every time', () => {
    const a = emptyState();
    const b = emptyState();
    assert.deepEqual(a, { slices: new Map(), domains: new Map(), reservations: new Map() });
    assert.notEqual(a, b);
    assert.notEqual(a.slices, b.slices);
  });
});

describe('sliceCreateSchema: good input', () => {
  test('a bare name is enough', () => {
    assert.deepEqual(parseInput(sliceCreateSchema, { name: 'web' }, 'slice'), { name: 'web' });
  });

  test('quantities become canonical numbers', () => {
    const parsed = parseInput(
      sliceCreateSchema,
      {
        name: 'web',
        user: 'www-data',
        cpu: { reservation: '1500m', limit: '1.8', shares: 200 },
        memory: { limit: '512M' },
        domain: 'frontend',
      },
      'slice',
    );
    assert.deepEqual(parsed, {
      name: 'web',
      user: 'www-data',
      cpu: { reservation: 1500, limit: 1800, shares: 200 },
      memory: { limit: 512 * M },
      domain: 'frontend',
    });
  });

  test('numbers are cores and bytes', () => {
    const parsed = parseInput(
      sliceCreateSchema,
      { name: 'a', cpu: { reservation: 0.5, limit: 2 }, memory: { limit: 1073741824 } },
      'slice',
    );
    assert.deepEqual(parsed.cpu, { reservation: 500, limit: 2000 });
    assert.deepEqual(parsed.memory, { limit: G });
  });

  test('limit "none" or null clears the cap', () => {
    const parsed = parseInput(sliceCreateSchema, { name: 'a', cpu: { limit: 'none' }, memory: { limit: 'none' } }, 'slice');
    assert.equal(parsed.cpu?.limit, null);
    assert.equal(parsed.memory?.limit, null);
    const nulls = parseInput(sliceCreateSchema, { name: 'a', cpu: { limit: null }, memory: { limit: null } }, 'slice');
    assert.equal(nulls.cpu?.limit, null);
    assert.equal(nulls.memory?.limit, null);
  });

  test('shares may be given as a digit string', () => {
    assert.equal(parseInput(sliceCreateSchema, { name: 'a', cpu: { shares: '250' } }, 'slice').cpu?.shares, 250);
  });

  test('shares at both ends of the range are accepted', () => {
    assert.equal(parseInput(sliceCreateSchema, { name: 'a', cpu: { shares: 1 } }, 'slice').cpu?.shares, 1);
    assert.equal(parseInput(sliceCreateSchema, { name: 'a', cpu: { shares: 10000 } }, 'slice').cpu?.shares, 10000);
  });

  test('user names as useradd accepts them', () => {
    for (const user of ['alice', '_svc', 'www-data', 'a1', 'a'.repeat(32), 'sl-web']) {
      assert.equal(parseInput(sliceCreateSchema, { name: 'a', user }, 'slice').user, user);
    }
  });

  test('the input object is not modified', () => {
    const input = { name: 'a', cpu: { reservation: '1', limit: 'none' }, memory: { limit: '1G' } };
    const copy = structuredClone(input);
    parseInput(sliceCreateSchema, input, 'slice');
    assert.deepEqual(input, copy);
  });

  test('property: any millicore quantity round-trips through the schema', () => {
    fc.assert(
      fc.property(fc.nat({ max: 1_000_000 }), fc.nat({ max: 1_000_000 }), (reservation, limit) => {
        const parsed = parseInput(sliceCreateSchema, { name: 's', cpu: { reservation: `${reservation}m`, limit: limit / 1000 } }, 'slice');
        return parsed.cpu?.reservation === reservation && parsed.cpu?.limit === limit;
      }),
      { numRuns: 200 },
    );
  });
});

describe('sliceCreateSchema: refusals name the field, the value and what is allowed', () => {
  test('cpu.limit "abc"', () => {
    const err = refusal(sliceCreateSchema, { name: 'a', cpu: { limit: 'abc' } });
    assertExplains(err, 'cpu.limit', '"abc"', /millicores like "1500m" or cores like "1\.5"/);
  });

  test('cpu.reservation "abc"', () => {
    const err = refusal(sliceCreateSchema, { name: 'a', cpu: { reservation: 'abc' } });
    assertExplains(err, 'cpu.reservation', '"abc"', /millicores like "1500m"/);
  });

  test('cpu.reservation finer than 1m', () => {
    const err = refusal(sliceCreateSchema, { name: 'a', cpu: { reservation: '0.0005' } });
    assertExplains(err, 'cpu.reservation', '"0.0005"', /finer than 1m/);
  });

  test('cpu.limit with fractional millicores', () => {
    const err = refusal(sliceCreateSchema, { name: 'a', cpu: { limit: '1.5m' } });
    assertExplains(err, 'cpu.limit', '"1.5m"', /whole number/);
  });

  test('negative cpu.reservation', () => {
    const err = refusal(sliceCreateSchema, { name: 'a', cpu: { reservation: -1 } });
    assertExplains(err, 'cpu.reservation', '-1', /non-negative/);
  });

  test('cpu quantity of the wrong type says which types are allowed', () => {
    const limit = refusal(sliceCreateSchema, { name: 'a', cpu: { limit: true } });
    assertExplains(limit, 'cpu.limit', 'true', /allowed is "none" or null or a string or a number/);
    const reservation = refusal(sliceCreateSchema, { name: 'a', cpu: { reservation: [] } });
    assertExplains(reservation, 'cpu.reservation', '[]', /allowed is a string or a number/);
  });

  test('cpu.shares 0 and 10001', () => {
    assertExplains(refusal(sliceCreateSchema, { name: 'a', cpu: { shares: 0 } }), 'cpu.shares', '0', /from 1 to 10000/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', cpu: { shares: 10001 } }), 'cpu.shares', '10001', /from 1 to 10000/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', cpu: { shares: '0' } }), 'cpu.shares', '"0"', /from 1 to 10000/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', cpu: { shares: -5 } }), 'cpu.shares', '-5', /from 1 to 10000/);
  });

  test('cpu.shares "abc" and fractions', () => {
    assertExplains(refusal(sliceCreateSchema, { name: 'a', cpu: { shares: 'abc' } }), 'cpu.shares', '"abc"', /must be a whole number/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', cpu: { shares: 1.5 } }), 'cpu.shares', '1.5', /must be a whole number/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', cpu: { shares: '1.5' } }), 'cpu.shares', '"1.5"', /must be a whole number/);
    assertExplains(
      refusal(sliceCreateSchema, { name: 'a', cpu: { shares: true } }),
      'cpu.shares',
      'true',
      /allowed is a number or a string/,
    );
  });

  test('memory.limit in fractions of a byte, negative or malformed', () => {
    assertExplains(refusal(sliceCreateSchema, { name: 'a', memory: { limit: '1.1' } }), 'memory.limit', '"1.1"', /whole number of bytes/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', memory: { limit: -5 } }), 'memory.limit', '-5', /non-negative number of bytes/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', memory: { limit: '12X' } }), 'memory.limit', '"12X"', /K, M, G or T suffix/);
  });

  test('bad user names', () => {
    for (const user of ['Root', '1abc', '-x', 'a b', 'a'.repeat(33), '', 'a.b', 'a$']) {
      const err = refusal(sliceCreateSchema, { name: 'a', user });
      assertExplains(err, 'user', JSON.stringify(user), /must be a Unix user name: lower-case letters.*at most 32 characters/);
    }
    const notString = refusal(sliceCreateSchema, { name: 'a', user: 5 });
    assertExplains(notString, 'user', '5', /must be a string/);
  });

  test('bad slice and domain names', () => {
    assertExplains(refusal(sliceCreateSchema, { name: 'a/b' }), 'name', '"a/b"', /must not contain "\/"/);
    assertExplains(refusal(sliceCreateSchema, { name: '..' }), 'name', '".."', /must not contain "\.\."/);
    assertExplains(refusal(sliceCreateSchema, { name: '-x' }), 'name', '"-x"', /must start with a letter or digit/);
    assertExplains(refusal(sliceCreateSchema, { name: 'a', domain: '.d' }), 'domain', '".d"', /must start with a letter or digit/);
    assertExplains(refusal(sliceCreateSchema, { name: 7 }), 'name', '7', /must be a string/);
  });

  test('a missing name is reported as required', () => {
    assert.match(refusal(sliceCreateSchema, {}).message, /^slice: name is required$/);
  });

  test('a body that is not an object', () => {
    assert.match(refusal(sliceCreateSchema, null).message, /body null must be an object/);
    assert.match(refusal(sliceCreateSchema, 'web').message, /body "web" must be an object/);
    assert.match(refusal(sliceCreateSchema, { name: 'a', cpu: 5 }).message, /cpu 5 must be an object/);
  });

  test('unknown fields are refused by name, at any level', () => {
    assert.match(refusal(sliceCreateSchema, { name: 'a', bogus: 1 }).message, /unknown field "bogus"/);
    const nested = refusal(sliceCreateSchema, { name: 'a', cpu: { weight: 5, burst: 1 } });
    assert.match(nested.message, /unknown fields "weight", "burst" in cpu/);
    assert.match(refusal(sliceCreateSchema, { name: 'a', memory: { kmem: '1G' } }).message, /unknown field "kmem" in memory/);
    assert.match(refusal(sliceCreateSchema, { name: 'a', parent: 'd' }).message, /unknown field "parent"/);
  });

  test('several problems are all reported in one message', () => {
    const err = refusal(sliceCreateSchema, { name: 'a', cpu: { limit: 'abc', shares: 0 } });
    assert.match(err.message, /cpu\.limit "abc"/);
    assert.match(err.message, /cpu\.shares 0 must be a whole number from 1 to 10000/);
    assert.match(err.message, /; /);
  });

  test('the "what" prefix is used as given', () => {
    const err = refusal(sliceCreateSchema, { name: 'a', cpu: { shares: 0 } }, 'slice web');
    assert.ok(err.message.startsWith('slice web: cpu.shares 0'));
  });
});

describe('sliceUpdateSchema', () => {
  test('partial updates keep only what was given', () => {
    assert.deepEqual(parseInput(sliceUpdateSchema, {}, 'update'), {});
    assert.deepEqual(parseInput(sliceUpdateSchema, { cpu: { shares: 5 } }, 'update'), { cpu: { shares: 5 } });
    assert.deepEqual(parseInput(sliceUpdateSchema, { cpu: { limit: 'none' }, memory: { limit: '64Ki' } }, 'update'), {
      cpu: { limit: null },
      memory: { limit: 64 * 1024 },
    });
  });

  test('name, user and domain cannot be changed by an update', () => {
    assert.match(refusal(sliceUpdateSchema, { name: 'b' }, 'update').message, /unknown field "name"/);
    assert.match(refusal(sliceUpdateSchema, { user: 'bob' }, 'update').message, /unknown field "user"/);
    assert.match(refusal(sliceUpdateSchema, { domain: 'd' }, 'update').message, /unknown field "domain"/);
  });

  test('bad values are explained as for create', () => {
    assertExplains(refusal(sliceUpdateSchema, { cpu: { limit: 'lots' } }, 'update'), 'cpu.limit', '"lots"', /millicores like/);
    assertExplains(refusal(sliceUpdateSchema, { cpu: { shares: 10001 } }, 'update'), 'cpu.shares', '10001', /from 1 to 10000/);
  });

  test('domainUpdateSchema takes the allocation but no network (domains have none)', () => {
    assert.deepEqual(parseInput(domainUpdateSchema, { cpu: { shares: 5 } }, 'domain'), { cpu: { shares: 5 } });
    assert.throws(() => parseInput(domainUpdateSchema, { net: true }, 'domain'), /unknown field "net"/);
  });
});

describe('domainCreateSchema', () => {
  test('good input', () => {
    assert.deepEqual(
      parseInput(
        domainCreateSchema,
        { name: 'team-a', parent: 'org', cpu: { reservation: '1', limit: '1500m', shares: '50' }, memory: { limit: '2G' } },
        'domain',
      ),
      { name: 'team-a', parent: 'org', cpu: { reservation: 1000, limit: 1500, shares: 50 }, memory: { limit: 2 * G } },
    );
  });

  test('domains have a parent, not a domain or a user', () => {
    assert.match(refusal(domainCreateSchema, { name: 'd', domain: 'x' }, 'domain').message, /unknown field "domain"/);
    assert.match(refusal(domainCreateSchema, { name: 'd', user: 'bob' }, 'domain').message, /unknown field "user"/);
  });

  test('bad names and values are explained', () => {
    assertExplains(
      refusal(domainCreateSchema, { name: 'd', parent: '-x' }, 'domain'),
      'parent',
      '"-x"',
      /must start with a letter or digit/,
    );
    assertExplains(refusal(domainCreateSchema, { name: 'd', cpu: { reservation: 'x' } }, 'domain'), 'cpu.reservation', '"x"', /millicores/);
    assert.match(refusal(domainCreateSchema, { name: 'd/e' }, 'domain').message, /^domain: name "d\/e" must not contain "\/"$/);
  });
});
