/**
 * The type registry: built-ins load on first use; plugin folders and sliced-plugin-*
 * packages provide more types; untrusted plugin files and malformed exports are refused
 * with a sentence.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeRegistry } from '../../src/framework/registry.js';
import { BUILTIN_TYPES } from '../../src/components/builtins.js';
import type { FilterType } from '../../src/framework/types.js';
import { isSlicedError } from '../../src/core/errors.js';

const FILTER = (name: string) => `export default {
  kind: 'filter', name: '${name}', description: 'test filter',
  create() { return { update(input, output) { output.copyFrom(input); return true; } }; },
};\n`;

function refusal(code: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(isSlicedError(err), `expected a SlicedError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

// Plugin files count as trusted only when root owns them; as another user the positive tests
// turn the ownership check off, and the refusal test needs root.
const asRoot = process.getuid?.() === 0;
if (!asRoot) process.stderr.write('SKIP framework-registry untrusted-plugin test: needs root (plugin trust is about root-owned files)\n');

describe('TypeRegistry', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sliced-registry-'));
    chmodSync(dir, 0o755);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  test('built-in types load on first use and are then cached', async () => {
    const registry = new TypeRegistry({ builtins: BUILTIN_TYPES, packageRoots: [] });
    assert.equal(registry.peek('threshold'), undefined, 'not loaded before first use');
    const type = await registry.load('threshold');
    assert.equal(type.kind, 'filter');
    assert.equal(registry.peek('threshold'), type);
    assert.equal(await registry.load('threshold'), type);
    for (const name of [
      'cpu',
      'load',
      'mem',
      'psi',
      'process_load',
      'migration_probe',
      'mem_alloc',
      'fs_space',
      'memory_affinity',
      'scratch_balance',
      'disk_io',
      'io_balance',
      'mosix_probe',
      'mem_probe',
      'cpu_probe',
      'load_probe',
      'threshold_filter',
      'high_threshold_filter',
      'low_threshold_filter',
      'freq_limit_filter',
      'remote_cache_filter',
      'diff_filter',
      'constant_filter',
      'round_robin_balancer',
      'echo_policy',
      'round_robin',
      'least_loaded',
      'mosix_load_balancer',
      'swap_avoidance',
      'ewma',
      'rate',
      'hysteresis',
      'freq_limit',
      'remote_cache',
    ]) {
      assert.equal((await registry.load(name)).name, name);
    }
  });

  test('unknown or malformed type names are ENOENT with a sentence', async () => {
    const registry = new TypeRegistry({ builtins: BUILTIN_TYPES, packageRoots: [] });
    await assert.rejects(registry.load('no_such_type'), refusal('ENOENT', /no component type "no_such_type"/));
    await assert.rejects(registry.load('../etc/passwd'), refusal('ENOENT', /type names are lower-case letters, digits and "_"/));
    await assert.rejects(registry.load('Threshold'), refusal('ENOENT', /is not a component type/));
  });

  test('a plugin folder provides types by file name', async () => {
    const plugins = join(dir, 'plugins');
    mkdirSync(plugins, { mode: 0o755 });
    writeFileSync(join(plugins, 'my_filter.js'), FILTER('my_filter'), { mode: 0o644 });
    const registry = new TypeRegistry({ pluginDirs: [plugins], packageRoots: [], checkOwnership: asRoot });
    assert.ok(registry.available().includes('my_filter'));
    assert.equal((await registry.load('my_filter')).kind, 'filter');
  });

  test('plugin code writable by others is refused (it would run as root)', { skip: asRoot ? false : 'needs root' }, async () => {
    const unsafe = join(dir, 'unsafe');
    mkdirSync(unsafe, { mode: 0o755 });
    writeFileSync(join(unsafe, 'bad_filter.js'), FILTER('bad_filter'));
    chmodSync(join(unsafe, 'bad_filter.js'), 0o666);
    const registry = new TypeRegistry({ pluginDirs: [unsafe], packageRoots: [] });
    await assert.rejects(
      registry.load('bad_filter'),
      refusal('EPERM', /refusing to load plugin code from .*bad_filter\.js: it must belong to root and not be writable by group or others/),
    );
  });

  test('a file that does not export the type it is named after is refused', async () => {
    const wrong = join(dir, 'wrong');
    mkdirSync(wrong, { mode: 0o755 });
    writeFileSync(join(wrong, 'other_name.js'), FILTER('something_else'), { mode: 0o644 });
    writeFileSync(join(wrong, 'no_create.js'), "export default { kind: 'filter', name: 'no_create', description: 'x' };\n", {
      mode: 0o644,
    });
    const registry = new TypeRegistry({ pluginDirs: [wrong], packageRoots: [], checkOwnership: asRoot });
    await assert.rejects(registry.load('other_name'), refusal('EINVAL', /does not export a component type named other_name/));
    await assert.rejects(
      registry.load('no_create'),
      refusal('EINVAL', /invalid component type: it needs a name .*, a kind .* and create\(\)/),
    );
  });

  test('installed sliced-plugin-* packages provide the types their package.json lists', async () => {
    const root = join(dir, 'project');
    const pkg = join(root, 'node_modules', 'sliced-plugin-demo');
    mkdirSync(pkg, { recursive: true, mode: 0o755 });
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({ name: 'sliced-plugin-demo', type: 'module', main: 'index.js', sliced: { types: ['demo_filter', 'BAD NAME'] } }),
      { mode: 0o644 },
    );
    writeFileSync(
      join(pkg, 'index.js'),
      `export default { types: [${FILTER('demo_filter').replace('export default ', '').replace(/;\n$/, '')}] };\n`,
      { mode: 0o644 },
    );
    // A package that is not a sliced plugin is ignored even if it lists types.
    const other = join(root, 'node_modules', 'left-pad');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'package.json'), JSON.stringify({ name: 'left-pad', sliced: { types: ['left_pad'] } }));
    const registry = new TypeRegistry({ packageRoots: [root], checkOwnership: asRoot });
    const names = registry.available();
    assert.ok(names.includes('demo_filter'));
    assert.ok(!names.includes('left_pad'));
    assert.ok(!names.includes('BAD NAME'));
    assert.equal((await registry.load('demo_filter')).name, 'demo_filter');
  });

  test('a type name registered twice is EEXIST naming the type and both sources', async () => {
    const filter = (name: string): FilterType => ({
      kind: 'filter',
      name,
      description: 'test filter',
      create: () => ({ update: () => false }),
    });
    const registry = new TypeRegistry({ builtins: BUILTIN_TYPES, packageRoots: [] });
    registry.add(filter('twice'), 'the first test');
    assert.throws(
      () => registry.add(filter('twice'), 'the second test'),
      refusal('EEXIST', /component type twice is registered twice: by the first test and by the second test/),
    );
    // A built-in's name is taken from the start, loaded or not.
    assert.throws(
      () => registry.add(filter('ewma'), 'a test'),
      refusal('EEXIST', /type ewma is registered twice: by built-in ewma and by a test/),
    );
    await registry.load('threshold');
    assert.throws(() => registry.add(filter('threshold')), refusal('EEXIST', /by built-in threshold and by registry\.add\(\)/));

    // A plugin module exporting a built-in's name is refused, and registers none of its types.
    const root = join(dir, 'shadowing');
    const pkg = join(root, 'node_modules', 'sliced-plugin-shadow');
    mkdirSync(pkg, { recursive: true, mode: 0o755 });
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({ name: 'sliced-plugin-shadow', type: 'module', sliced: { types: ['shadow_filter'] } }),
      { mode: 0o644 },
    );
    const entry = (name: string) => FILTER(name).replace('export default ', '').replace(/;\n$/, '');
    writeFileSync(join(pkg, 'index.js'), `export default { types: [${entry('shadow_filter')}, ${entry('rate')}] };\n`, { mode: 0o644 });
    const shadowed = new TypeRegistry({ builtins: BUILTIN_TYPES, packageRoots: [root], checkOwnership: asRoot });
    await assert.rejects(
      shadowed.load('shadow_filter'),
      refusal('EEXIST', /component type rate is registered twice: by built-in rate and by .*sliced-plugin-shadow\/index\.js/),
    );
    assert.equal(shadowed.peek('shadow_filter'), undefined);
    assert.equal((await shadowed.load('rate')).description, (await import('../../src/components/filters/rate.js')).default.description);
  });

  test('the registry itself knows no component: built-ins come from the list its host hands it', async () => {
    const bare = new TypeRegistry({ packageRoots: [] });
    assert.deepEqual(bare.available(), []);
    await assert.rejects(bare.load('cpu'), refusal('ENOENT', /no component type "cpu"/));
    // Names of Object.prototype are not built-ins.
    const registry = new TypeRegistry({ builtins: BUILTIN_TYPES, packageRoots: [] });
    await assert.rejects(registry.load('constructor'), refusal('ENOENT', /no component type "constructor"/));
  });

  test('value types: plugins may add new ones, but not redefine a built-in differently', () => {
    const registry = new TypeRegistry({ packageRoots: [] });
    registry.addValueType({ name: 'temperature', columns: ['celsius'], unit: '°C', description: 'test' });
    assert.equal(registry.valueType('temperature').columns[0], 'celsius');
    assert.throws(
      () => registry.addValueType({ name: 'load', columns: ['other'], unit: 'x', description: 'x' }),
      refusal('EINVAL', /value type load is already declared with columns load/),
    );
    assert.throws(() => registry.valueType('nope'), refusal('EINVAL', /unknown value type "nope"/));
  });
});
