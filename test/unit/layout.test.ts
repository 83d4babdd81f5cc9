import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DOMAIN_SUFFIX,
  SLICE_SUFFIX,
  domainGroup,
  domainKey,
  parseGroupName,
  parseKey,
  sliceGroup,
  sliceKey,
  sliceUserName,
} from '../../src/core/layout.js';
import {
  DEFAULT_CPU,
  DEFAULT_DOMAIN_PIDS,
  DEFAULT_IO,
  DEFAULT_SLICE_PIDS,
  DEFAULT_MEMORY,
  emptyState,
  type DesiredState,
} from '../../src/core/model.js';
import { nameProblem } from '../../src/core/names.js';

function state(): DesiredState {
  const s = emptyState();
  const domain = (name: string, parent: string | null) => {
    s.domains.set(name, { name, cpu: DEFAULT_CPU, memory: DEFAULT_MEMORY, io: DEFAULT_IO, pids: DEFAULT_DOMAIN_PIDS, parent });
  };
  const slice = (name: string, domain: string | null) => {
    s.slices.set(name, {
      name,
      user: `sl-${name}`,
      userCreated: true,
      cpu: DEFAULT_CPU,
      memory: DEFAULT_MEMORY,
      io: DEFAULT_IO,
      pids: DEFAULT_SLICE_PIDS,
      domain,
      net: null,
    });
  };
  domain('org', null);
  domain('team', 'org');
  domain('squad', 'team');
  slice('top', null);
  slice('mid', 'org');
  slice('deep', 'squad');
  return s;
}

/** The login names useradd accepts (portable subset), as the model's user schema. */
const LOGIN = /^[a-z_][a-z0-9_-]{0,31}$/;

describe('group paths', () => {
  test('keys: parseKey gives back what sliceKey and domainKey made, and null for the rest', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (name) => {
        assert.deepEqual(parseKey(sliceKey(name)), { kind: 'slice', name });
        assert.deepEqual(parseKey(domainKey(name)), { kind: 'domain', name });
      }),
    );
    assert.equal(parseKey('node/x'), null);
    assert.equal(parseKey('slices/x'), null);
  });

  test('suffixes', () => {
    assert.equal(SLICE_SUFFIX, '.slice');
    assert.equal(DOMAIN_SUFFIX, '.domain');
  });

  test('a top-level slice is a leaf right under the root', () => {
    assert.deepEqual(sliceGroup(state(), 'top'), ['top.slice']);
  });

  test('slices in nested domains sit under every enclosing domain, outermost first', () => {
    assert.deepEqual(sliceGroup(state(), 'mid'), ['org.domain', 'mid.slice']);
    assert.deepEqual(sliceGroup(state(), 'deep'), ['org.domain', 'team.domain', 'squad.domain', 'deep.slice']);
  });

  test('domain groups', () => {
    assert.deepEqual(domainGroup(state(), 'org'), ['org.domain']);
    assert.deepEqual(domainGroup(state(), 'team'), ['org.domain', 'team.domain']);
    assert.deepEqual(domainGroup(state(), 'squad'), ['org.domain', 'team.domain', 'squad.domain']);
  });

  test('a slice path is its domain path plus its own leaf', () => {
    const s = state();
    for (const slice of s.slices.values()) {
      const path = sliceGroup(s, slice.name);
      assert.deepEqual(path.slice(0, -1), slice.domain ? domainGroup(s, slice.domain) : []);
      assert.equal(path.at(-1), `${slice.name}.slice`);
    }
  });

  test('a slice unknown to the state is placed at the top', () => {
    assert.deepEqual(sliceGroup(state(), 'ghost'), ['ghost.slice']);
  });

  test('every path component parses back to what it stands for', () => {
    const s = state();
    for (const name of s.slices.keys()) {
      const path = sliceGroup(s, name);
      assert.deepEqual(parseGroupName(path.at(-1)!), { kind: 'slice', name });
      for (const dir of path.slice(0, -1)) assert.equal(parseGroupName(dir)?.kind, 'domain');
    }
  });
});

describe('parseGroupName', () => {
  test('slices and domains', () => {
    assert.deepEqual(parseGroupName('web.slice'), { kind: 'slice', name: 'web' });
    assert.deepEqual(parseGroupName('team.domain'), { kind: 'domain', name: 'team' });
  });

  test('names that themselves contain a suffix-like part', () => {
    assert.deepEqual(parseGroupName('a.domain.slice'), { kind: 'slice', name: 'a.domain' });
    assert.deepEqual(parseGroupName('a.slice.domain'), { kind: 'domain', name: 'a.slice' });
    assert.deepEqual(parseGroupName('a.slice.slice'), { kind: 'slice', name: 'a.slice' });
  });

  test('directories that are not ours', () => {
    for (const dir of ['cgroup.procs', 'cpu.weight', 'system.scope', 'init.scope', 'user.slices', 'web', 'web.SLICE', 'slice', 'domain']) {
      assert.equal(parseGroupName(dir), null, dir);
    }
  });

  test('property: round trip for every valid name', () => {
    const nameArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/).filter((n) => nameProblem(n) === null);
    fc.assert(
      fc.property(nameArb, fc.constantFrom<'slice' | 'domain'>('slice', 'domain'), (name, kind) => {
        const dir = name + (kind === 'slice' ? SLICE_SUFFIX : DOMAIN_SUFFIX);
        const parsed = parseGroupName(dir);
        return parsed !== null && parsed.kind === kind && parsed.name === name;
      }),
    );
  });
});

describe('sliceUserName', () => {
  test('simple lower-case names map to "sl-<name>"', () => {
    assert.equal(sliceUserName('web'), 'sl-web');
    assert.equal(sliceUserName('db_1'), 'sl-db_1');
    assert.equal(sliceUserName('a-b'), 'sl-a-b');
    assert.equal(sliceUserName('9lives'), 'sl-9lives');
  });

  test('a configured prefix ("sl-a-", agents sharing one machine) begins every name, hashed ones within 32 characters', () => {
    assert.equal(sliceUserName('web', 'sl-a-'), 'sl-a-web');
    for (const name of ['Web', 'a'.repeat(28), 'X'.repeat(64)]) {
      const user = sliceUserName(name, 'sl-abcde-');
      assert.match(user, /^sl-abcde-[a-z0-9_-]{1,13}-[0-9a-f]{8}$/, `${name} -> ${user}`);
      assert.ok(user.length <= 32, user);
    }
    assert.notEqual(sliceUserName('web', 'sl-a-'), sliceUserName('web'));
  });

  test('the direct form is used up to 32 characters', () => {
    const name = 'a'.repeat(29);
    assert.equal(sliceUserName(name), `sl-${name}`);
    assert.equal(sliceUserName(name).length, 32);
  });

  test('names that cannot be used directly get a shortened, hashed form', () => {
    for (const name of ['Web', 'build.cache', 'a'.repeat(30), 'X'.repeat(64), 'Team.A-1']) {
      const user = sliceUserName(name);
      assert.match(user, /^sl-[a-z0-9_-]{1,19}-[0-9a-f]{8}$/, `${name} -> ${user}`);
    }
    assert.ok(sliceUserName('build.cache').startsWith('sl-build-cache-'));
  });

  test('"Web" and "web" get different users', () => {
    assert.notEqual(sliceUserName('Web'), sliceUserName('web'));
    assert.notEqual(sliceUserName('Web'), sliceUserName('WEB'));
  });

  test('long names that share a prefix get different users', () => {
    const a = `${'x'.repeat(40)}a`;
    const b = `${'x'.repeat(40)}b`;
    assert.notEqual(sliceUserName(a), sliceUserName(b));
    assert.notEqual(sliceUserName('a'.repeat(30)), sliceUserName('a'.repeat(31)));
  });

  test('a name that looks like a hashed user cannot take another slice’s user', () => {
    // "Web" maps to "sl-web-<hash>"; the slice literally named "web-<hash>" must not get it too.
    const hashed = sliceUserName('Web');
    const lookalike = hashed.slice('sl-'.length);
    assert.notEqual(sliceUserName(lookalike), hashed);
    assert.match(sliceUserName(lookalike), /^sl-[a-z0-9_-]{1,19}-[0-9a-f]{8}$/);
  });

  test('is deterministic', () => {
    assert.equal(sliceUserName('Some.Name'), sliceUserName('Some.Name'));
  });

  const validName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/).filter((n) => nameProblem(n) === null);

  test("README's examples of user names are what sliced makes", () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('**Unix user names.**'));
    assert.ok(readme.includes('**Unix user names.**'), 'README documents how slice names map to users');
    const rows = [
      ...section.slice(0, section.indexOf('\n\n', section.indexOf('| slice | user |'))).matchAll(/^\| `([^`]+)` \| `([^`]+)` \|$/gm),
    ];
    assert.ok(rows.length >= 4, 'README gives examples');
    for (const [, slice, user] of rows) assert.equal(sliceUserName(slice!), user, `README: ${slice} -> ${user}`);
  });

  test("property: README's rule, followed word by word, gives sliceUserName", () => {
    // The rule as README states it, with the 32-bit FNV-1a written out here.
    const fnv1a = (text: string): string => {
      let hash = 0x811c9dc5;
      for (const ch of text) hash = Math.imul(hash ^ ch.charCodeAt(0), 0x01000193) >>> 0;
      return hash.toString(16).padStart(8, '0');
    };
    const documented = (name: string): string =>
      /^[a-z0-9_-]+$/.test(name) && `sl-${name}`.length <= 32 && !/-[0-9a-f]{8}$/.test(name)
        ? `sl-${name}`
        : `sl-${name
            .toLowerCase()
            .replace(/[^a-z0-9_-]/g, '-')
            .slice(0, 19)}-${fnv1a(name)}`;
    fc.assert(
      fc.property(fc.oneof(validName, fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,40}$/)), (name) => documented(name) === sliceUserName(name)),
      { numRuns: 500 },
    );
  });

  test('property: always a valid login name of at most 32 characters starting with "sl-"', () => {
    fc.assert(
      fc.property(validName, (name) => {
        const user = sliceUserName(name);
        return user.length <= 32 && user.startsWith('sl-') && LOGIN.test(user);
      }),
      { numRuns: 1000 },
    );
  });

  test('property: different slice names give different users', () => {
    fc.assert(
      fc.property(fc.uniqueArray(validName, { minLength: 2, maxLength: 40 }), (names) => {
        const users = names.map((n) => sliceUserName(n));
        return new Set(users).size === users.length;
      }),
      { numRuns: 300 },
    );
  });

  test('property: names differing only in case give different users', () => {
    fc.assert(
      fc.property(
        validName.filter((n) => n.toLowerCase() !== n.toUpperCase()),
        (name) => {
          const variants = [...new Set([name, name.toLowerCase(), name.toUpperCase()])];
          return new Set(variants.map((v) => sliceUserName(v))).size === variants.length;
        },
      ),
    );
  });

  test('property: a lookalike of any hashed user never collides with it', () => {
    fc.assert(
      fc.property(validName, (name) => {
        const user = sliceUserName(name);
        const lookalike = user.slice('sl-'.length);
        fc.pre(lookalike !== name && nameProblem(lookalike) === null);
        return sliceUserName(lookalike) !== user;
      }),
    );
  });
});
