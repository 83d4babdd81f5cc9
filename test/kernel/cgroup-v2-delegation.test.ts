/**
 * The cgroup v2 backend taking over a delegated group, on the fixture tree whose writes obey
 * the "no internal processes" rule (test/helpers/fake-cgroup2.ts, applyControlWrite): a group
 * other than the root that holds processes refuses controllers for its children (EBUSY), and
 * one with controllers refuses processes. Processes are simulated (pids above any pid_max),
 * so nothing real is moved. The same layout on a real kernel: test/e2e/delegated-group.test.ts.
 *
 * Needs no root: everything lives under os.tmpdir().
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FakeCfs, applyControlWrite } from '../helpers/fake-cgroup2.js';
import type { ProcessProbe, V2Layout } from '../../src/kernel/cgroup/v2.js';
import { SlicedError } from '../../src/core/errors.js';
import { SliceAgent } from '../../src/daemon/agent.js';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';

const DAEMON = 900_000_100;
const HELPER = 900_000_101;
const SHELL = 900_000_050;
const SLEEP = 900_000_051;

/** The daemon (started by a shell), a helper it spawned, the shell and a sleep the shell started. */
const PARENTS = new Map<number, number>([
  [DAEMON, SHELL],
  [HELPER, DAEMON],
  [SHELL, 1],
  [SLEEP, SHELL],
  [1, 0],
]);
const COMMANDS = new Map<number, string>([
  [DAEMON, 'node'],
  [HELPER, 'nft'],
  [SHELL, 'bash'],
  [SLEEP, 'sleep'],
]);
const PROBE: ProcessProbe = {
  self: DAEMON,
  parentOf: (pid) => PARENTS.get(pid) ?? null,
  commandOf: (pid) => COMMANDS.get(pid) ?? null,
};

const readTrim = (path: string): string => readFileSync(path, 'utf8').trim();
const procsOf = (dir: string): number[] => readTrim(join(dir, 'cgroup.procs')).split(/\s+/).filter(Boolean).map(Number);

interface Setup {
  fake: FakeCfs;
  leaf: string;
  record: string;
  layout: V2Layout;
  done(): void;
}

function setup(members: number[]): Setup {
  const fake = new FakeCfs({ rootName: 'sliced-fx' });
  const run = mkdtempSync(join(tmpdir(), 'sliced-fx-run-'));
  writeFileSync(join(fake.own, 'cgroup.procs'), members.map((p) => `${p}\n`).join(''));
  const leaf = join(fake.own, 'supervisor');
  const record = join(run, 'cgroup.json');
  return {
    fake,
    leaf,
    record,
    layout: { ...fake.layout(), supervisor: leaf, recordFile: record },
    done() {
      fake.destroy();
      rmSync(run, { recursive: true, force: true });
    },
  };
}

describe('cgroup v2: taking over a delegated group (fixture with the kernel placement rules)', () => {
  test('the old layout: enabling controllers in a group that holds the daemon is refused (EBUSY), with the hint', () => {
    const s = setup([DAEMON]);
    try {
      const backend = s.fake.backend({ ...s.fake.layout() }, PROBE);
      assert.throws(
        () => backend.init(100),
        (err: unknown) =>
          err instanceof SlicedError &&
          /cannot enable cpu, memory, io, pids below .*: .*EBUSY/.test(err.message) &&
          /Delegate=yes/.test(err.message),
      );
    } finally {
      s.done();
    }
  });

  test('the daemon alone in its group moves into supervisor/, then the controllers are enabled and the root group made beside it', () => {
    const s = setup([DAEMON]);
    try {
      const backend = s.fake.backend(s.layout, PROBE);
      backend.init(100);
      assert.deepEqual(procsOf(s.fake.own), [], 'the managed group holds no process');
      assert.deepEqual(procsOf(s.leaf), [DAEMON]);
      assert.equal(readTrim(join(s.fake.own, 'cgroup.subtree_control')), 'cpu io memory pids');
      assert.deepEqual(
        readdirSync(s.fake.own, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name)
          .sort(),
        ['sliced-fx', 'supervisor'],
      );
      assert.equal(backend.supervisorDirectory(), s.leaf);
      assert.deepEqual(JSON.parse(readFileSync(s.record, 'utf8')), {
        managed: s.fake.own,
        supervisorMade: true,
        controllersAdded: ['cpu', 'memory', 'io', 'pids'],
      });
      // Slices work below: a domain and a slice get their controllers and files.
      backend.create(['d.domain', 'a.slice']);
      assert.equal(readTrim(join(s.fake.root, 'd.domain', 'cgroup.subtree_control')), 'cpu io memory pids');
      backend.setCpuWeight(['d.domain', 'a.slice'], 300);
      assert.equal(readTrim(join(s.fake.root, 'd.domain', 'a.slice', 'cpu.weight')), '300');
    } finally {
      s.done();
    }
  });

  test('a helper the daemon started moves with it', () => {
    const s = setup([DAEMON, HELPER]);
    try {
      s.fake.backend(s.layout, PROBE).init(100);
      assert.deepEqual(procsOf(s.leaf).sort(), [DAEMON, HELPER].sort());
      assert.deepEqual(procsOf(s.fake.own), []);
    } finally {
      s.done();
    }
  });

  test("processes sliced did not start (its parent shell, that shell's sleep): refused, EBUSY, naming them, and nothing is written", () => {
    const s = setup([SHELL, SLEEP, DAEMON]);
    try {
      const backend = s.fake.backend(s.layout, PROBE);
      const check = (err: unknown): boolean =>
        err instanceof SlicedError &&
        err.code === 'EBUSY' &&
        err.message.includes(`cgroup ${s.fake.own} holds processes sliced did not start: ${SHELL} (bash), ${SLEEP} (sleep).`);
      assert.throws(() => backend.checkDelegation(), check);
      assert.throws(() => backend.init(100), check);
      assert.equal(existsSync(s.leaf), false, 'no leaf');
      assert.equal(existsSync(s.fake.root), false, 'no root group');
      assert.equal(readTrim(join(s.fake.own, 'cgroup.subtree_control')), '', 'no controllers');
      assert.deepEqual(procsOf(s.fake.own), [SHELL, SLEEP, DAEMON], 'nobody moved');
      assert.equal(existsSync(s.record), false, 'no record');
    } finally {
      s.done();
    }
  });

  test('a restart inside the leaf manages its parent: nothing moves, and the record still says sliced made the leaf', () => {
    const s = setup([DAEMON]);
    try {
      s.fake.backend(s.layout, PROBE).init(100);
      // The managed group now refuses processes: a new daemon can only start in the leaf.
      assert.throws(() => applyControlWrite(s.fake.mount, join(s.fake.own, 'cgroup.procs'), '900000200'), /EBUSY/);
      const restarted: ProcessProbe = { ...PROBE, self: 900_000_200, parentOf: (pid) => (pid === 900_000_200 ? 1 : PROBE.parentOf(pid)) };
      applyControlWrite(s.fake.mount, join(s.leaf, 'cgroup.procs'), '900000200');
      const again = s.fake.backend(s.layout, restarted);
      again.init(100);
      assert.deepEqual(procsOf(s.leaf).sort(), [DAEMON, 900_000_200].sort());
      assert.equal(readTrim(join(s.fake.own, 'cgroup.subtree_control')), 'cpu io memory pids');
      assert.deepEqual(JSON.parse(readFileSync(s.record, 'utf8')), {
        managed: s.fake.own,
        supervisorMade: true,
        controllersAdded: ['cpu', 'memory', 'io', 'pids'],
      });
    } finally {
      s.done();
    }
  });

  test('releaseDelegation: the leaf sliced made goes once empty, the controllers it added go once no child group is left, then the record', () => {
    const s = setup([DAEMON]);
    try {
      const backend = s.fake.backend(s.layout, PROBE);
      backend.init(100);
      backend.create(['x.slice']);
      applyControlWrite(s.fake.mount, join(s.fake.root, 'x.slice', 'cgroup.procs'), String(SLEEP));

      // The daemon still runs in the leaf (the demo's own cleanup) and a slice still exists.
      let left = backend.releaseDelegation();
      assert.equal(left.length, 2, left.join('; '));
      assert.match(left[0]!, /supervisor \(kernel refused removing .*EBUSY/);
      assert.match(left[1]!, /controllers cpu memory io pids in .*cgroup\.subtree_control \(child groups remain: .*\)/);
      assert.ok(existsSync(s.record), 'the record stays while something it lists is left');

      // The daemon stopped; cleanup removed the slices and the root group.
      writeFileSync(join(s.leaf, 'cgroup.procs'), '');
      writeFileSync(join(s.fake.root, 'x.slice', 'cgroup.procs'), '');
      backend.remove(['x.slice']);
      backend.remove([]);
      left = backend.releaseDelegation();
      assert.deepEqual(left, []);
      assert.equal(existsSync(s.leaf), false);
      assert.equal(readTrim(join(s.fake.own, 'cgroup.subtree_control')), '', 'the group is as it was');
      assert.deepEqual(readdirSync(s.fake.own).sort(), ['cgroup.controllers', 'cgroup.procs', 'cgroup.subtree_control']);
      assert.equal(existsSync(s.record), false);
    } finally {
      s.done();
    }
  });

  test('releaseDelegation leaves what sliced did not make: a leaf systemd made, controllers that were on before', () => {
    const s = setup([]);
    try {
      // systemd >= 254 with DelegateSubgroup=supervisor made the leaf and started the daemon there.
      mkdirSync(s.leaf);
      writeFileSync(join(s.leaf, 'cgroup.procs'), `${DAEMON}\n`);
      writeFileSync(join(s.fake.own, 'cgroup.subtree_control'), 'cpu\n');
      const backend = s.fake.backend(s.layout, PROBE);
      backend.init(100);
      assert.deepEqual(JSON.parse(readFileSync(s.record, 'utf8')), {
        managed: s.fake.own,
        supervisorMade: false,
        controllersAdded: ['memory', 'io', 'pids'],
      });
      writeFileSync(join(s.leaf, 'cgroup.procs'), '');
      backend.remove([]);
      // systemd's leaf is a child group sliced may not remove, so the controllers stay too
      // (systemd removes its empty leaf when the service stops; a later cleanup finishes).
      const left = backend.releaseDelegation();
      assert.equal(left.length, 1, left.join('; '));
      assert.match(left[0]!, /^controllers memory io pids in .*cgroup\.subtree_control \(child groups remain: supervisor\)$/);
      assert.ok(existsSync(s.leaf), "systemd's leaf stays");
      assert.equal(readTrim(join(s.fake.own, 'cgroup.subtree_control')), 'cpu io memory pids');
      rmSync(s.leaf, { recursive: true });
      assert.deepEqual(backend.releaseDelegation(), []);
      assert.equal(readTrim(join(s.fake.own, 'cgroup.subtree_control')), 'cpu', 'what was on before stays on');
      assert.equal(existsSync(s.record), false);
    } finally {
      s.done();
    }
  });

  test('the agent: a process in the supervisor leaf may join a slice; one from a group elsewhere may not', async () => {
    const s = setup([DAEMON]);
    const stateDir = mkdtempSync(join(tmpdir(), 'sliced-fx-store-'));
    const store = await EmbeddedStore.open(stateDir);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const elsewhere = join(s.fake.mount, 'elsewhere');
      let from = s.leaf;
      const backend = s.fake.backend(s.layout, PROBE);
      backend.processMemoryDirectory = (pid: number) => (pid === child.pid ? from : null);
      const node = { cpuMillicores: 2000, systemReserveMillicores: 100, memoryBytes: 8 * 1024 ** 3 };
      const agent = new SliceAgent({
        store,
        backend,
        node,
        log: pino({ level: 'silent' }),
        stopGraceMs: 100,
        rootWeight: 100,
        attachAnyMemoryCgroup: false,
        net: null,
      });
      await agent.start();
      await agent.createSlice({ name: 'j', user: 'nobody' });
      await agent.attach('j', child.pid!);
      assert.deepEqual(procsOf(join(s.fake.root, 'j.slice')), [child.pid]);
      from = elsewhere;
      await assert.rejects(
        agent.attach('j', child.pid!),
        (err: unknown) => err instanceof SlicedError && err.code === 'EPERM' && err.message.includes(`memory cgroup ${elsewhere}`),
      );
    } finally {
      child.kill('SIGKILL');
      await store.close();
      rmSync(stateDir, { recursive: true, force: true });
      s.done();
    }
  });
});
