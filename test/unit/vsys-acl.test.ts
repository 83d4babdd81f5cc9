import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canRead, canWrite, parseAcl } from '../../src/vsys/acl.js';
import { grantKey, grantsBySlice, type ScannedService } from '../../src/vsys/catalog.js';
import { Slots } from '../../src/vsys/slots.js';

describe('parseAcl', () => {
  test('a bare name is rw, as in PlanetLab; r and w restrict', () => {
    const acl = parseAcl('princeton_codeen   rw\nsome_slice r\nwriter w\nbare\n');
    assert.deepEqual(
      [...acl.entries],
      [
        ['princeton_codeen', 'rw'],
        ['some_slice', 'r'],
        ['writer', 'w'],
        ['bare', 'rw'],
      ],
    );
    assert.equal(acl.stateful, false);
    assert.deepEqual(acl.problems, []);
  });

  test('comments and blank lines are ignored, also after an entry', () => {
    const acl = parseAcl('# who may call\n\n  web r   # read only\n\t\n');
    assert.deepEqual([...acl.entries], [['web', 'r']]);
    assert.deepEqual(acl.problems, []);
  });

  test('"#! stateful" on the first line declares a stateful service', () => {
    assert.equal(parseAcl('#! stateful\nweb\n').stateful, true);
    assert.equal(parseAcl('#!stateful\n').stateful, true);
    const late = parseAcl('web\n#! stateful\n');
    assert.equal(late.stateful, false);
    assert.deepEqual(
      late.problems.map((p) => p.line),
      [2],
    );
    assert.match(late.problems[0]!.message, /only allowed on the first line/);
    const unknown = parseAcl('#! forever\n');
    assert.match(unknown.problems[0]!.message, /unknown directive "forever"/);
  });

  test('bad lines are reported with their line number and grant nothing', () => {
    const acl = parseAcl('ok\n../etc r\nweb x\nweb rw extra\nslash/name\nok r\n');
    assert.deepEqual([...acl.entries], [['ok', 'rw']]);
    assert.deepEqual(
      acl.problems.map((p) => p.line),
      [2, 3, 4, 5, 6],
    );
    assert.match(acl.problems[0]!.message, /"\.\.\/etc"/);
    assert.match(acl.problems[1]!.message, /mode "x" for slice web must be r, w or rw/);
    assert.match(acl.problems[2]!.message, /3 fields/);
    assert.match(acl.problems[4]!.message, /listed again; the first line \(mode rw\) is kept/);
  });

  test('an empty ACL grants nobody', () => {
    assert.equal(parseAcl('').entries.size, 0);
    assert.equal(parseAcl('# nobody yet\n').entries.size, 0);
  });

  test('no input, however malformed, grants a name that is not a valid slice name', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const acl = parseAcl(text);
        for (const [slice, mode] of acl.entries) {
          assert.match(slice, /^[A-Za-z0-9][A-Za-z0-9_.-]*$/);
          assert.ok(!slice.includes('..'));
          assert.ok(['r', 'w', 'rw'].includes(mode));
        }
      }),
    );
  });

  test('modes', () => {
    assert.deepEqual([canRead('r'), canWrite('r')], [true, false]);
    assert.deepEqual([canRead('w'), canWrite('w')], [false, true]);
    assert.deepEqual([canRead('rw'), canWrite('rw')], [true, true]);
  });
});

describe('grantsBySlice', () => {
  const service = (name: string, owner: string | null, acl: string | null): ScannedService => ({
    name,
    owner,
    script: owner ? `/srv/pvt/${owner}/${name}` : `/srv/${name}`,
    version: '1',
    acl: acl === null ? null : parseAcl(acl),
  });

  test('public services go to the existing slices their ACL lists; no ACL means nobody', () => {
    const grants = grantsBySlice([service('echo', null, 'a\nb r\nghost\n'), service('open', null, null)], ['a', 'b', 'c']);
    assert.deepEqual([...grants.keys()].sort(), ['a', 'b']);
    assert.equal(grants.get('a')!.get('echo')!.mode, 'rw');
    assert.equal(grants.get('b')!.get('echo')!.mode, 'r');
    assert.equal(grants.get('a')!.has('open'), false);
  });

  test('a private service is for its slice only, rw without an ACL, and hides a public one of the same name', () => {
    const grants = grantsBySlice(
      [service('tool', null, 'a r\nb r\n'), service('tool', 'a', null), service('mine', 'b', '#! stateful\nb w\na rw\n')],
      ['a', 'b'],
    );
    assert.equal(grants.get('a')!.get('tool')!.mode, 'rw');
    assert.equal(grants.get('a')!.get('tool')!.private, true);
    assert.equal(grants.get('b')!.get('tool')!.mode, 'r');
    assert.equal(grants.get('b')!.get('mine')!.mode, 'w');
    assert.equal(grants.get('b')!.get('mine')!.stateful, true);
    assert.equal(grants.get('a')!.has('mine'), false, 'a private ACL cannot grant another slice');
  });

  test('a private ACL that does not list its slice grants nothing (fail-closed)', () => {
    assert.equal(grantsBySlice([service('x', 'a', '# nobody\n')], ['a']).size, 0);
  });

  test('the grant key changes with the mode, statefulness and script version', () => {
    const base = grantsBySlice([service('e', null, 'a r\n')], ['a'])
      .get('a')!
      .get('e')!;
    assert.notEqual(grantKey(base), grantKey({ ...base, mode: 'rw' }));
    assert.notEqual(grantKey(base), grantKey({ ...base, stateful: true }));
    assert.notEqual(grantKey(base), grantKey({ ...base, version: '2' }));
  });
});

describe('Slots', () => {
  test('at most `limit` per key run at once; the rest wait in order; keys are independent', async () => {
    const slots = new Slots(2);
    const order: string[] = [];
    const r1 = await slots.acquire('a');
    const r2 = await slots.acquire('a');
    const third = slots.acquire('a').then((release) => {
      order.push('third');
      return release;
    });
    const fourth = slots.acquire('a').then((release) => {
      order.push('fourth');
      return release;
    });
    const other = await slots.acquire('b');
    assert.equal(slots.inUse('a'), 2);
    assert.equal(slots.queued('a'), 2);
    assert.equal(slots.inUse('b'), 1);
    r1();
    r1(); // releasing twice frees one slot only
    const r3 = await third;
    assert.deepEqual(order, ['third']);
    assert.equal(slots.inUse('a'), 2);
    r2();
    const r4 = await fourth;
    assert.deepEqual(order, ['third', 'fourth']);
    r3();
    r4();
    other();
    assert.equal(slots.inUse('a'), 0);
    assert.equal(slots.queued('a'), 0);
  });
});
