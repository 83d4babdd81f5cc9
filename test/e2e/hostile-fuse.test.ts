/**
 * Hostile input through the FUSE mount of the config tree (issue 16, part 3): generated file
 * operations on a real daemon's mount (mkdir, rmdir, create, write at any offset, truncate,
 * symlink with any target, unlink, rename, chmod, read, readdir, readlink) on hostile names
 * (dot and dot-dot, too long, control characters, deep paths, the tree's own reserved names)
 * and values (empty, binary, oversize). Invariants after every operation: it ended within
 * 10 s (the daemon neither crashed nor hung: the mount still answers); a failure is a plain
 * errno, never EIO (the mount's answer to an unexpected error); a refused operation left the
 * tree as it was (the API's dump reads the same); the mount shows what the API shows; and
 * every 100 operations the dump plans to nothing when applied again (the tree is whole).
 * fast-check, seeded (printed), shrinking kept; HOSTILE_FUSE_RUNS cases (2,000 in the suite).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { TestDaemon } from '../helpers/daemon.js';
import { fuseSkipReason, kernelSkipReason, slicedMounted } from '../helpers/env.js';
import { fuzzSeed } from '../helpers/prng.js';

const RUNS = Number(process.env.HOSTILE_FUSE_RUNS ?? 2000);
const skip = kernelSkipReason() ?? fuseSkipReason();
if (skip) process.stderr.write(`SKIP hostile FUSE input: ${skip}\n`);

const name = fc.oneof(
  fc.constantFrom(
    'h',
    'hz',
    'x0',
    '.',
    '..',
    '...',
    'process_set',
    'handle_all',
    'probe_period',
    'slice_usage',
    'cpu',
    'x'.repeat(255),
    'x'.repeat(256),
    ' ',
    '-',
    'a b',
    'é',
    'line\nbreak',
    '\t',
    '*',
    '.hidden',
  ),
  fc.string({ maxLength: 24 }).filter((s) => !s.includes('\0') && !s.includes('/') && s !== ''),
);
const dir = fc.constantFrom(
  '',
  'schedulers',
  'schedulers/h',
  'schedulers/h/process_set',
  'schedulers/cpu',
  'probes',
  'probes/slice_usage',
  'filters',
  'policies',
  'slices',
  'nope',
  'schedulers/h/process_set/handle_all',
);
const hostilePath = fc
  .tuple(dir, fc.array(name, { minLength: 1, maxLength: 3 }))
  .map(([d, names]) => [d, ...names].filter(Boolean).join('/'));
// Paths the tree has or can have (the layout of README's "Config tree"), so that a good share
// of the operations succeed and the tree really changes under the hostile ones.
const scheduler = fc.constantFrom('h', 'x0', 'x1');
const policy = fc.constantFrom('mosix_load_balancer', 'round_robin', 'least_loaded');
const port = fc.constantFrom('node_load', 'process_load', 'processes');
const probe = fc.constantFrom('slices_load', 'process_load', 'cpu', 'slice_usage');
const source = fc.constantFrom('node_load', 'process_load', 'slices');
const attribute = fc.constantFrom('handle_all', 'probe_period', 'description', 'status', 'value', 'pids', 'collected_value');
const treePath = fc.oneof(
  scheduler.map((x) => `schedulers/${x}`),
  scheduler.map((x) => `schedulers/${x}/process_set/handle_all`),
  fc.tuple(scheduler, policy).map(([x, p]) => `schedulers/${x}/${p}`),
  fc.tuple(scheduler, policy, attribute).map(([x, p, a]) => `schedulers/${x}/${p}/${a}`),
  fc.tuple(scheduler, policy, port).map(([x, p, q]) => `schedulers/${x}/${p}/${q}/remote_cache`),
  fc.tuple(scheduler, policy, port, source).map(([x, p, q, l]) => `schedulers/${x}/${p}/${q}/${l}`),
  probe.map((p) => `probes/${p}`),
  fc.tuple(probe, attribute).map(([p, a]) => `probes/${p}/${a}`),
  fc.tuple(probe, source).map(([p, l]) => `probes/${p}/${l}`),
);
// What the test wires in before(): attributes to read and write, directories to list.
const known = fc.constantFrom(
  'schedulers/h/process_set/handle_all',
  'schedulers/x0/process_set/handle_all',
  'probes/slices_load/probe_period',
  'probes/process_load/probe_period',
  'probes/slices_load/node_load/value',
  'schedulers/x0/mosix_load_balancer',
  'schedulers/x0/mosix_load_balancer/node_load/remote_cache',
  'schedulers/x0/mosix_load_balancer/node_load/remote_cache/slices',
);
const path = fc.oneof({ arbitrary: known, weight: 3 }, { arbitrary: treePath, weight: 3 }, { arbitrary: hostilePath, weight: 2 });
const value = fc.oneof(
  fc.constantFrom('0', '1', '1\n', '', '\n', '-1', '1e9', '250', '1000', 'NaN', '0x10', 'x'.repeat(5000)),
  fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
);
const linkTarget = fc.oneof(
  fc.constantFrom('/etc/passwd', '../../..', '', '.', 'x'.repeat(5000)),
  fc.tuple(probe, source).map(([p, l]) => `MNT/probes/${p}/${l}`),
  path.map((p) => `MNT/${p}`),
  path,
);

type Op =
  | { op: 'mkdir' | 'rmdir' | 'unlink' | 'read' | 'readdir' | 'readlink' | 'create'; path: string }
  | { op: 'write'; path: string; value: string | Buffer; offset: number }
  | { op: 'truncate'; path: string; length: number }
  | { op: 'symlink'; path: string; target: string }
  | { op: 'rename'; path: string; to: string }
  | { op: 'chmod'; path: string; mode: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('mkdir'), path }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constantFrom('read', 'readdir'), path }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constantFrom('rmdir', 'unlink', 'readlink', 'create'), path }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant('write'),
      path,
      value,
      offset: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, fc.integer({ min: 0, max: 8192 }), fc.constantFrom(2 ** 31, 2 ** 40)),
    }),
    weight: 4,
  },
  fc.record({ op: fc.constant('truncate'), path, length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(2 ** 20, 2 ** 40)) }),
  { arbitrary: fc.record({ op: fc.constant('symlink'), path, target: linkTarget }), weight: 2 },
  fc.record({ op: fc.constant('rename'), path, to: path }),
  fc.record({ op: fc.constant('chmod'), path, mode: fc.integer({ min: 0, max: 0o7777 }) }),
) as fc.Arbitrary<Op>;

describe('hostile input through the FUSE mount', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let work: string;
  let mnt: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'sliced-fz-mnt-'));
    chmodSync(work, 0o755);
    mnt = join(work, 'tree');
    mkdirSync(mnt);
    daemon = await TestDaemon.start(['--mount', mnt, '--log-level', 'warn']);
    for (let waited = 0; !existsSync(join(mnt, 'probes')); waited += 100) {
      if (waited > 10_000) throw new Error(`the mount ${mnt} did not appear within 10 s`);
      await sleep(100);
    }
    // A wired scheduler (README's mosix example) for the operations to meet.
    const P = '/schedulers/x0/mosix_load_balancer';
    for (const args of [
      ['mkdir', '/schedulers/h', '/probes/slices_load', '/probes/process_load', '/schedulers/x0', P, `${P}/node_load/remote_cache`],
      ['ln', '/probes/slices_load/node_load', `${P}/node_load/remote_cache/slices`],
    ])
      assert.equal((await daemon.cli(args)).code, 0, args.join(' '));
  });

  after(async () => {
    try {
      await daemon?.destroy(); // sliced --cleanup removes a mount left behind
    } finally {
      // Last resort, for a daemon that died mid-test: only our own mount at exactly that path.
      if (mnt && slicedMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { timeout: 5000 });
      if (work) rmSync(work, { recursive: true, force: true });
    }
  });

  const dump = async (): Promise<string> => (await daemon.api.get<{ yaml: string }>('/v1/tree/dump')).yaml;

  /** The operation on the mount: '' when it succeeded, else its errno name. */
  async function perform(o: Op): Promise<string> {
    const at = join(mnt, o.path);
    const run = async (): Promise<unknown> => {
      switch (o.op) {
        case 'mkdir':
          return fs.mkdir(at);
        case 'rmdir':
          return fs.rmdir(at);
        case 'unlink':
          return fs.unlink(at);
        case 'read':
          return fs.readFile(at);
        case 'readdir':
          return fs.readdir(at);
        case 'readlink':
          return fs.readlink(at);
        case 'create':
          return (await fs.open(at, 'wx')).close();
        case 'write': {
          const file = await fs.open(at, 'r+');
          try {
            return await file.write(typeof o.value === 'string' ? Buffer.from(o.value) : o.value, 0, undefined, o.offset);
          } finally {
            await file.close();
          }
        }
        case 'truncate':
          return fs.truncate(at, o.length);
        case 'symlink':
          return fs.symlink(o.target.replace(/^MNT\//, `${mnt}/`), at);
        case 'rename':
          return fs.rename(at, join(mnt, o.to));
        case 'chmod':
          return fs.chmod(at, o.mode);
      }
    };
    const outcome = await Promise.race([
      run().then(
        () => '',
        (err: NodeJS.ErrnoException) => err.code ?? String(err),
      ),
      sleep(10_000).then(() => 'HUNG'),
    ]);
    return outcome;
  }

  test(
    `${RUNS} generated operations on the mount: answered, plain errnos, refusals change nothing, the tree stays whole`,
    { timeout: 3_600_000 },
    async () => {
      const seed = fuzzSeed('hostile FUSE input');
      let current = await dump();
      let refused = 0;
      let done = 0;
      const errnos = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(op, async (o) => {
          const outcome = await perform(o);
          const what = `${o.op} ${JSON.stringify(o.path)}`;
          assert.notEqual(outcome, 'HUNG', `${what}: no answer within 10 s`);
          assert.notEqual(outcome, 'EIO', `${what}: EIO (an unexpected error in the daemon; its log: ${daemon.log.slice(-500)})`);
          assert.ok(outcome === '' || /^E[A-Z]+$/.test(outcome), `${what}: ${outcome}`);
          const now = await dump();
          if (outcome !== '') {
            refused++;
            errnos.set(outcome, (errnos.get(outcome) ?? 0) + 1);
            assert.equal(now, current, `${what} was refused (${outcome}) but changed the tree`);
          }
          current = now;
          // The mount shows what the API shows.
          const top = (await fs.readdir(mnt)).sort();
          const listed = (await daemon.api.get<Array<{ name: string }>>('/v1/tree/ls?path=%2F')).map((e) => e.name).sort();
          assert.deepEqual(top, listed, `after ${what}: the mount's root differs from the API's`);
          if (++done % 100 === 0) {
            // The tree is whole: its own dump applied again plans nothing.
            const plan = await daemon.api.post<{ steps: string[]; problems: unknown[] }>('/v1/tree/apply', { document: now, dryRun: true });
            assert.deepEqual(plan.steps, [], `after ${what}: the dump plans ${JSON.stringify(plan.steps.slice(0, 5))} when applied again`);
          }
        }),
        { seed: seed | 0, numRuns: RUNS, includeErrorInReport: true },
      );
      process.stderr.write(`hostile FUSE input: ${RUNS} operations, ${refused} refused: ${JSON.stringify(Object.fromEntries(errnos))}\n`);
      assert.ok(refused > RUNS / 4, `only ${refused} of ${RUNS} operations were refused: the generator hardly reaches the refusals`);
      assert.ok(
        RUNS - refused >= RUNS / 50,
        `only ${RUNS - refused} of ${RUNS} operations succeeded: the generator hardly reaches the tree`,
      );
      assert.ok(
        !/an operation failed; answered with an error/.test(daemon.log),
        `the daemon logged an unexpected failure: ${daemon.log.slice(-800)}`,
      );
    },
  );
});
