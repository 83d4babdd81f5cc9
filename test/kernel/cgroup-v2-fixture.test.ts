/**
 * The cgroup v2 backend, the real agent and the real CPU controller on a fixture tree that
 * mirrors cgroup2 files, with FakeCfs standing in for the kernel's scheduler (the machine's
 * own v2 hierarchy has no controllers). The scenarios are those of the isolation benchmark;
 * FakeCfs is an ideal CFS, so what the controller's weights deliver must equal the
 * entitlement computed from the true demands, to within 1 percentage point of the node.
 *
 * Needs no root: everything lives under os.tmpdir().
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FakeCfs } from '../helpers/fake-cgroup2.js';
import { SliceAgent, type AgentOptions } from '../../src/daemon/agent.js';
import { CpuController } from '../../src/daemon/controller.js';
import { EmbeddedStore } from '../../src/cluster/embedded-store.js';
import type { Store } from '../../src/cluster/store.js';
import { CgroupV2Backend } from '../../src/kernel/cgroup/v2.js';
import { computeEntitlements } from '../../src/core/entitlement.js';
import { buildTree } from '../../src/core/cpu-control.js';
import { sliceKey } from '../../src/core/layout.js';
import { sliceGroup } from '../../src/core/layout.js';
import type { SliceCreateInput } from '../../src/core/model.js';
import { SlicedError } from '../../src/core/errors.js';
import type { GroupPath } from '../../src/kernel/cgroup/backend.js';

const NODE = { cpuMillicores: 2000, systemReserveMillicores: 100, memoryBytes: 8 * 1024 ** 3 };
const PERIOD_MS = 100;
/** One percentage point of the node, in millicores. */
const PP = NODE.cpuMillicores / 100;

interface Harness {
  fake: FakeCfs;
  agent: SliceAgent;
  controller: CpuController;
  backend: CgroupV2Backend;
  /** Busy threads per slice name: the true demand is threads * 1000m. */
  demand: Map<string, number>;
  createSlice(input: Omit<SliceCreateInput, 'user'>, threads: number): Promise<void>;
  setThreads(slice: string, threads: number): void;
  /** One control period: populate the tree, run the simulated kernel, run the controller. */
  period(): void;
  /** Run `count` periods and return each slice's measured usage over them (millicores, from cpu.stat). */
  measure(count: number): Map<string, number>;
  /** Entitlement per slice from computeEntitlements with the true demands. */
  entitlements(): Map<string, number>;
  close(): Promise<void>;
}

async function harness(agentOptions: Partial<AgentOptions> = {}, fakeOptions: { bfq?: boolean } = {}): Promise<Harness> {
  const fake = new FakeCfs({ rootName: 'sliced-fx', nodeMillicores: NODE.cpuMillicores, periodMs: PERIOD_MS, ...fakeOptions });
  const stateDir = mkdtempSync(join(tmpdir(), 'sliced-fx-store-'));
  const store = await EmbeddedStore.open(stateDir);
  const log = pino({ level: 'silent' });
  const backend = fake.backend();
  const agent = new SliceAgent({
    store,
    backend,
    node: NODE,
    log,
    stopGraceMs: 100,
    rootWeight: 1900,
    attachAnyMemoryCgroup: false,
    net: null,
    ...agentOptions,
  });
  await agent.start();
  const controller = new CpuController(agent, {
    periodMs: PERIOD_MS,
    mode: 'entitlement',
    gain: 0.5,
    log,
    probe: fake.probe,
    clock: fake.clock,
  });
  const demand = new Map<string, number>();
  const pathOf = (slice: string): GroupPath => sliceGroup(agent.state, slice);

  const h: Harness = {
    fake,
    agent,
    controller,
    backend,
    demand,
    async createSlice(input, threads) {
      await agent.createSlice({ ...input, user: 'nobody' });
      h.setThreads(input.name, threads);
    },
    setThreads(slice, threads) {
      demand.set(slice, threads);
      fake.setDemand(pathOf(slice), threads);
    },
    period() {
      fake.populate();
      fake.advance();
      controller.tick();
    },
    measure(count) {
      const before = new Map([...demand.keys()].map((s) => [s, backend.readCpuUsageNs(pathOf(s))]));
      for (let i = 0; i < count; i++) h.period();
      const windowNs = count * PERIOD_MS * 1e6;
      return new Map([...before].map(([s, used]) => [s, ((backend.readCpuUsageNs(pathOf(s)) - used) / windowNs) * 1000]));
    },
    entitlements() {
      const trueDemand = new Map([...demand].map(([s, threads]) => [s, threads * 1000]));
      const result = computeEntitlements(NODE.cpuMillicores, buildTree(agent.state, trueDemand).roots);
      return new Map([...demand.keys()].map((s) => [s, result.nodes.get(sliceKey(s))!.entitlement]));
    },
    async close() {
      await store.close();
      rmSync(stateDir, { recursive: true, force: true });
      fake.destroy();
    },
  };
  return h;
}

/** Every slice's measured usage within `tolerance` millicores of its entitlement. */
function assertNear(measured: Map<string, number>, expected: Map<string, number>, tolerance: number, what = ''): void {
  const table = [...expected].map(([s, e]) => `${s}: measured ${measured.get(s)?.toFixed(1)}m, entitled ${e.toFixed(1)}m`).join('; ');
  for (const [slice, entitled] of expected) {
    const got = measured.get(slice);
    assert.ok(got !== undefined, `${slice} measured`);
    assert.ok(Math.abs(got - entitled) <= tolerance, `${what}${slice} off by ${(Math.abs(got - entitled) / PP).toFixed(2)}pp (${table})`);
  }
}

const readTrim = (path: string): string => readFileSync(path, 'utf8').trim();

describe('cgroup v2 backend with the agent and controller on a fixture tree (FakeCfs)', () => {
  test("k4: an io.weight set while BFQ is not loaded is stored, said to have no effect, and written once BFQ's weight files appear", async () => {
    const h = await harness({}, { bfq: false });
    try {
      assert.match(
        h.backend.ioWeightUnavailable() ?? '',
        /has no BFQ weight file .*io\.bfq\.weight\): the bfq I\/O scheduler is not loaded/,
      );
      await h.createSlice({ name: 'k4w', io: { weight: 500 } }, 0);
      const file = join(h.fake.root, 'k4w.slice', 'io.bfq.weight');
      assert.equal(existsSync(file), false, 'no BFQ weight file before the module is loaded');
      assert.equal(h.agent.state.slices.get('k4w')?.io.weight, 500, 'the weight is stored');
      assert.equal(await h.agent.refreshIoWeights(), false, 'nothing to write yet');
      h.fake.loadBfq();
      assert.equal(h.backend.ioWeightUnavailable(), null);
      assert.equal(await h.agent.refreshIoWeights(), true);
      assert.equal(readTrim(file), '50', 'io.weight 500 reached BFQ as 50');
      assert.equal(await h.agent.refreshIoWeights(), false, 'written once, when the files appeared');
    } finally {
      await h.close();
    }
  });

  test('the backend enables cpu and memory, writes limits, and deleting a slice removes its group', async () => {
    const h = await harness();
    try {
      const { fake, agent, backend } = h;
      assert.equal(readTrim(join(fake.own, 'cgroup.subtree_control')), 'cpu io memory pids');
      assert.equal(readTrim(join(fake.root, 'cpu.weight')), '1900');
      await h.createSlice({ name: 'm', memory: { limit: 256 * 1024 * 1024 }, cpu: { limit: 1500 } }, 0);
      assert.equal(readTrim(join(fake.root, 'cgroup.subtree_control')), 'cpu io memory pids');
      assert.equal(readTrim(join(fake.root, 'm.slice', 'memory.max')), String(256 * 1024 * 1024));
      assert.equal(readTrim(join(fake.root, 'm.slice', 'cpu.max')), '150000 100000');
      fake.populate();
      assert.deepEqual(backend.readMemory(['m.slice']), { currentBytes: 0, limitBytes: 256 * 1024 * 1024, oomKills: 0 });
      await agent.updateSlice('m', { memory: { limit: null }, cpu: { limit: null } });
      assert.equal(readTrim(join(fake.root, 'm.slice', 'memory.max')), 'max');
      assert.equal(readTrim(join(fake.root, 'm.slice', 'cpu.max')), 'max 100000');
      assert.equal(backend.readMemory(['m.slice']).limitBytes, null);
      assert.deepEqual(backend.children([]), ['m.slice']);

      await agent.createDomain({ name: 'dd' });
      await h.createSlice({ name: 'inner', domain: 'dd' }, 0);
      assert.equal(readTrim(join(fake.root, 'dd.domain', 'cgroup.subtree_control')), 'cpu io memory pids');
      assert.ok(existsSync(join(fake.root, 'dd.domain', 'inner.slice')));

      fake.populate();
      await agent.deleteSlice('m');
      assert.equal(existsSync(join(fake.root, 'm.slice')), false, 'the slice group is gone');
      await agent.deleteSlice('inner');
      await agent.deleteDomain('dd');
      assert.equal(existsSync(join(fake.root, 'dd.domain')), false);
      assert.deepEqual(backend.children([]), []);
    } finally {
      await h.close();
    }
  });

  test('init refuses an own group that does not offer the controllers, naming them', () => {
    const fake = new FakeCfs({ rootName: 'sliced-fx' });
    try {
      const backend = new CgroupV2Backend({ ...fake.layout(), controllers: ['cpu', 'memory', 'hugetlb'] });
      assert.throws(
        () => backend.init(100),
        (err: unknown) =>
          err instanceof SlicedError && err.code === 'EIO' && err.message.includes('hugetlb') && err.message.includes('cpu memory io pids'),
      );
      assert.equal(existsSync(fake.root), false, 'nothing was created');
    } finally {
      fake.destroy();
    }
  });

  test('cpu.stat, cgroup.threads and throttling are read from the files FakeCfs writes', async () => {
    const h = await harness();
    try {
      await h.createSlice({ name: 'q', cpu: { limit: 500 } }, 3);
      h.period();
      const path = ['q.slice'];
      assert.equal(h.backend.readCpuUsageNs(path), 500 * PERIOD_MS * 1000, '0.5 CPU for one period, in ns');
      assert.equal(h.backend.threads(path).length, 3);
      assert.deepEqual(h.backend.procs(path), [], 'simulated threads are not processes');
      const throttle = h.backend.readCpuThrottle(path);
      assert.equal(throttle.periods, 1);
      assert.equal(throttle.throttledPeriods, 1);
      assert.ok(throttle.throttledNs > 0);
      // The root counts its descendants' time.
      assert.equal(h.backend.readCpuUsageNs([]), h.backend.readCpuUsageNs(path));
    } finally {
      await h.close();
    }
  });

  test('(a) shares 1:2:4 among three busy slices give 14.3/28.6/57.1 % of the node', async () => {
    const h = await harness();
    try {
      await h.createSlice({ name: 'a', cpu: { shares: 100 } }, 2);
      await h.createSlice({ name: 'b', cpu: { shares: 200 } }, 2);
      await h.createSlice({ name: 'c', cpu: { shares: 400 } }, 2);
      for (let i = 0; i < 3; i++) h.period();
      const measured = h.measure(10);
      const expected = h.entitlements();
      assert.ok(Math.abs(expected.get('a')! - 2000 / 7) < 1e-6 && Math.abs(expected.get('c')! - 8000 / 7) < 1e-6);
      assertNear(measured, expected, PP);
      for (const [slice, percent] of [
        ['a', 14.3],
        ['b', 28.6],
        ['c', 57.1],
      ] as const) {
        assert.ok(Math.abs(measured.get(slice)! / PP - percent) < 1, `${slice}: ${(measured.get(slice)! / PP).toFixed(1)}%`);
      }
      // The weights the controller wrote keep the shares' ratio.
      const weights = ['a', 'b', 'c'].map((s) => Number(readTrim(join(h.fake.root, `${s}.slice`, 'cpu.weight'))));
      assert.ok(
        Math.abs(weights[1]! / weights[0]! - 2) < 0.01 && Math.abs(weights[2]! / weights[0]! - 4) < 0.01,
        `weights ${weights.join('/')}`,
      );
    } finally {
      await h.close();
    }
  });

  test('(b) a 1200m reservation with shares 100 holds against two busy slices with shares 1000: 1200 + 800/21 m', async () => {
    const h = await harness();
    try {
      await h.createSlice({ name: 'r', cpu: { reservation: 1200, shares: 100 } }, 2);
      await h.createSlice({ name: 'x', cpu: { shares: 1000 } }, 2);
      await h.createSlice({ name: 'y', cpu: { shares: 1000 } }, 2);
      for (let i = 0; i < 3; i++) h.period();
      const measured = h.measure(10);
      const expected = h.entitlements();
      assert.ok(Math.abs(expected.get('r')! - (1200 + 800 / 21)) < 1e-6);
      assertNear(measured, expected, PP);
      // With plain shares (no controller) r would get only 100/2100 of the node.
      assert.ok(measured.get('r')! > 1200);
    } finally {
      await h.close();
    }
  });

  test('(c) a slice limited to 300m gets 300m while the others idle; cpu.max reads "30000 100000"', async () => {
    const h = await harness();
    try {
      await h.createSlice({ name: 'l', cpu: { limit: 300 } }, 2);
      await h.createSlice({ name: 'i1' }, 0);
      await h.createSlice({ name: 'i2' }, 0);
      assert.equal(readTrim(join(h.fake.root, 'l.slice', 'cpu.max')), '30000 100000');
      for (let i = 0; i < 3; i++) h.period();
      const measured = h.measure(10);
      assertNear(measured, h.entitlements(), PP);
      assert.ok(Math.abs(measured.get('l')! - 300) < 1, `l: ${measured.get('l')}m`);
      assert.equal(measured.get('i1'), 0);
      assert.ok(h.backend.readCpuThrottle(['l.slice']).throttledPeriods > 0);
    } finally {
      await h.close();
    }
  });

  test('(d) a domain limited to 600m holds its two busy slices to 300/300 next to a busy slice outside at 1400', async () => {
    const h = await harness();
    try {
      await h.agent.createDomain({ name: 'dom', cpu: { limit: 600 } });
      await h.createSlice({ name: 'd1', domain: 'dom' }, 2);
      await h.createSlice({ name: 'd2', domain: 'dom' }, 2);
      await h.createSlice({ name: 'out' }, 2);
      assert.equal(readTrim(join(h.fake.root, 'dom.domain', 'cpu.max')), '60000 100000');
      assert.ok(existsSync(join(h.fake.root, 'dom.domain', 'd1.slice')));
      for (let i = 0; i < 3; i++) h.period();
      const domainBefore = h.backend.readCpuUsageNs(['dom.domain']);
      const measured = h.measure(10);
      const expected = h.entitlements();
      assert.deepEqual(
        [...expected].map(([s, e]) => [s, Math.round(e)]),
        [
          ['d1', 300],
          ['d2', 300],
          ['out', 1400],
        ],
      );
      assertNear(measured, expected, PP);
      const domainMc = ((h.backend.readCpuUsageNs(['dom.domain']) - domainBefore) / (10 * PERIOD_MS * 1e6)) * 1000;
      assert.ok(Math.abs(domainMc - 600) < 1, `domain used ${domainMc}m`);
    } finally {
      await h.close();
    }
  });

  test('(e) when a slice stops and comes back, every slice is within 2pp of its new entitlement after at most 3 periods', async () => {
    const h = await harness();
    try {
      await h.createSlice({ name: 'r', cpu: { reservation: 1200, shares: 100 } }, 2);
      await h.createSlice({ name: 'x', cpu: { shares: 1000 } }, 2);
      await h.createSlice({ name: 'y', cpu: { shares: 300 } }, 2);
      for (let i = 0; i < 5; i++) h.period();
      assertNear(h.measure(5), h.entitlements(), PP, 'steady: ');

      for (const [what, change] of [
        ['r stops', () => h.setThreads('r', 0)],
        ['r comes back', () => h.setThreads('r', 2)],
        ['x drops to one thread', () => h.setThreads('x', 1)],
      ] as const) {
        change();
        const expected = h.entitlements();
        for (let i = 0; i < 2; i++) h.period();
        // From the third period on, each period is on target.
        for (let i = 0; i < 5; i++) assertNear(h.measure(1), expected, 2 * PP, `${what}, period ${i + 3}: `);
        assertNear(h.measure(5), expected, PP, `${what}, settled: `);
      }
      const snapshot = h.controller.snapshot();
      assert.ok(snapshot && Math.abs(snapshot.nodes.get('slice/r')!.entitlement - h.entitlements().get('r')!) < 1);
    } finally {
      await h.close();
    }
  });
});

describe('cgroup v2 I/O and memory knobs on the fixture tree', () => {
  const MiB = 1024 * 1024;
  // Devices are not real here: MAJ:MIN is taken as given and "exists".
  const fakeDevices: Partial<AgentOptions> = {
    resolveDevice: (name) => {
      if (!/^\d+:\d+$/.test(name)) throw new SlicedError('ENOENT', `device ${JSON.stringify(name)} does not exist`);
      return { device: name, path: null };
    },
    deviceExists: () => true,
  };

  test('memory.high and memory.swap.max; a swap cap without swap accounting is refused and nothing changes', async () => {
    const h = await harness(fakeDevices);
    try {
      const { fake, agent } = h;
      await h.createSlice({ name: 'mem', memory: { limit: 256 * MiB, high: 200 * MiB, swap: 64 * MiB } }, 0);
      const dir = join(fake.root, 'mem.slice');
      assert.deepEqual(
        ['memory.max', 'memory.high', 'memory.swap.max'].map((f) => readTrim(join(dir, f))),
        [String(256 * MiB), String(200 * MiB), String(64 * MiB)],
      );
      await agent.updateSlice('mem', { memory: { high: null, swap: null } });
      assert.deepEqual(
        ['memory.high', 'memory.swap.max'].map((f) => readTrim(join(dir, f))),
        ['max', 'max'],
      );
      unlinkSync(join(dir, 'memory.swap.max')); // a kernel without swap accounting
      await assert.rejects(
        agent.updateSlice('mem', { memory: { swap: 32 * MiB } }),
        /memory\.swap cannot be enforced: the kernel has no swap accounting/,
      );
      assert.equal(agent.state.slices.get('mem')!.memory.swap, null, 'the desired state is unchanged');
      writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 3\nmax 5\noom 2\noom_kill 2\n');
      assert.equal(h.backend.readMemory(['mem.slice']).oomKills, 2);
    } finally {
      await h.close();
    }
  });

  test('io.weight and io.bfq.weight, io.max per device, hierarchical domain caps, io.stat and pressure', async () => {
    const h = await harness(fakeDevices);
    try {
      const { fake, agent, backend } = h;
      assert.equal(backend.hierarchicalIoCaps, true);
      await agent.createDomain({ name: 'iod', io: { max: { '8:16': { rbps: 10 * MiB } } } });
      await h.createSlice({ name: 'io1', domain: 'iod', io: { weight: 900, max: { '8:16': { wiops: 50 } } } }, 0);
      await h.createSlice({ name: 'io2', domain: 'iod' }, 0);
      const domainDir = join(fake.root, 'iod.domain');
      const io1 = join(domainDir, 'io1.slice');
      assert.equal(readTrim(join(io1, 'io.weight')), 'default 900');
      assert.equal(readTrim(join(io1, 'io.bfq.weight')), '90');
      // The domain's cap sits on the domain's group (io.max nests); members keep only their own.
      assert.equal(readTrim(join(domainDir, 'io.max')), `8:16 rbps=${10 * MiB} wbps=max riops=max wiops=max`);
      assert.equal(readTrim(join(io1, 'io.max')), '8:16 rbps=max wbps=max riops=max wiops=50');
      assert.equal(readTrim(join(domainDir, 'io2.slice', 'io.max')), '');
      await agent.updateSlice('io1', { io: { max: { '8:16': null } } });
      assert.equal(readTrim(join(io1, 'io.max')), '8:16 rbps=max wbps=max riops=max wiops=max', 'a removed device is reset to max');

      writeFileSync(
        join(io1, 'io.stat'),
        '8:16 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=1000 wbytes=0 rios=3 wios=0 dbytes=0 dios=0\n',
      );
      assert.deepEqual(backend.readIo(['iod.domain', 'io1.slice']), { readBytes: 5096, writeBytes: 8192, readOps: 4, writeOps: 2 });
      writeFileSync(
        join(io1, 'io.pressure'),
        'some avg10=12.50 avg60=3.00 avg300=1.00 total=99\nfull avg10=4.25 avg60=1.00 avg300=0.00 total=9\n',
      );
      assert.deepEqual(backend.readPressure(['iod.domain', 'io1.slice'], 'io'), { some: 12.5, full: 4.25 });
      assert.equal(backend.readPressure(['iod.domain', 'nope.slice'], 'memory'), null);
    } finally {
      await h.close();
    }
  });
});

/**
 * Run `body` with an agent whose store is the real embedded store behind a hook called before
 * each transaction (to delay or fail it); `events` records each write and when it was durable.
 */
async function withHookedStore(
  before: () => Promise<void>,
  body: (h: Harness, real: EmbeddedStore, events: string[]) => Promise<void>,
): Promise<void> {
  const events: string[] = [];
  const stateDir = mkdtempSync(join(tmpdir(), 'sliced-fx-store-'));
  const real = await EmbeddedStore.open(stateDir);
  const store: Store = {
    range: (prefix) => real.range(prefix),
    get: (key) => real.get(key),
    close: () => real.close(),
    async txn(ops) {
      const keys = ops.map((op) => op.key).join(',');
      events.push(`store ${keys}`);
      await before();
      await real.txn(ops);
      events.push(`durable ${keys}`);
    },
  };
  const h = await harness({ store });
  try {
    await body(h, real, events);
  } finally {
    await h.close();
    await real.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const diskError = (): SlicedError => new SlicedError('EIO', 'cannot write state log: EIO: i/o error, fdatasync');

describe('changes and the state store', () => {
  test('the next change starts while the previous one is being stored; each is answered only once durable', async () => {
    await withHookedStore(
      () => new Promise((r) => setTimeout(r, 50)),
      async (h, real, events) => {
        await Promise.all(
          ['w1', 'w2'].map((name) =>
            h.agent.createSlice({ name, user: 'nobody' }).then(() => {
              events.push(`answered ${name}`);
            }),
          ),
        );
        const at = (event: string): number => {
          const index = events.findIndex((e) => e.includes(event));
          assert.ok(index >= 0, `${event} missing from ${events.join(' | ')}`);
          return index;
        };
        assert.ok(at('store /slices/w2') < at('durable /slices/w1'), `w2 waited for w1's fsync: ${events.join(' | ')}`);
        assert.ok(at('durable /slices/w1') < at('answered w1'), `w1 answered before it was durable: ${events.join(' | ')}`);
        assert.ok(at('durable /slices/w2') < at('answered w2'), `w2 answered before it was durable: ${events.join(' | ')}`);
        assert.deepEqual([...(await real.range('/slices/')).keys()].sort(), ['/slices/w1', '/slices/w2']);
      },
    );
  });

  test('a slice that needs a new user is stored before useradd: a failing store leaves no user behind', async () => {
    await withHookedStore(
      async () => {
        throw diskError();
      },
      async (h) => {
        await assert.rejects(
          h.agent.createSlice({ name: 'fxnouser' }),
          (err: SlicedError) => err.code === 'EIO' && /nothing was changed/.test(err.message),
        );
        assert.notEqual(spawnSync('id', ['sl-fxnouser']).status, 0, 'useradd ran although the slice was not stored');
        assert.equal(h.agent.state.slices.has('fxnouser'), false);
      },
    );
  });

  test('a store that fails: the change is refused with EIO; once it writes again changes are accepted and it holds the desired state', async () => {
    let failing = false;
    await withHookedStore(
      async () => {
        if (failing) throw diskError();
      },
      async (h, real) => {
        await h.agent.createSlice({ name: 'ok1', user: 'nobody' });
        failing = true;
        await assert.rejects(
          h.agent.createSlice({ name: 'lost', user: 'nobody' }),
          (err: SlicedError) => err.code === 'EIO' && /could not be stored/.test(err.message),
        );
        await assert.rejects(
          h.agent.createSlice({ name: 'refused', user: 'nobody' }),
          (err: SlicedError) => err.code === 'EIO' && /changes are refused while the desired state cannot be stored/.test(err.message),
        );
        failing = false;
        await h.agent.createSlice({ name: 'later', user: 'nobody' });
        const stored = [...(await real.range('/slices/')).keys()].sort();
        assert.deepEqual(
          stored,
          [...h.agent.state.slices.keys()].map((name) => `/slices/${name}`).sort(),
          'the store holds what is in effect, no more and no less',
        );
        assert.ok(stored.includes('/slices/ok1') && stored.includes('/slices/later'));
        assert.ok(!stored.includes('/slices/refused'), 'a refused change is nowhere');
      },
    );
  });
});

describe('cgroup v2 task limits (pids) on the fixture tree', () => {
  const PIDS_NODE = { ...NODE, pids: { space: 32768, sliceDefault: 4915, setting: '15%' } };

  test('every slice gets pids.max (the node default unless set), a domain only when asked; "none" and "default"; pids files read back', async () => {
    const h = await harness({ node: PIDS_NODE });
    try {
      const { fake, agent, backend } = h;
      assert.equal(backend.pidsUnavailable(), null);
      await h.createSlice({ name: 'pa' }, 0);
      const file = join(fake.root, 'pa.slice', 'pids.max');
      assert.equal(readTrim(file), '4915', "the default, 15% of the node's 32768");
      assert.deepEqual(agent.state.slices.get('pa')!.pids, { max: 'default' });
      await agent.updateSlice('pa', { pids: { max: 100 } });
      assert.equal(readTrim(file), '100');
      await agent.updateSlice('pa', { pids: { max: null } });
      assert.equal(readTrim(file), 'max');
      await agent.updateSlice('pa', { pids: { max: 'default' } });
      assert.equal(readTrim(file), '4915');
      await assert.rejects(
        agent.updateSlice('pa', { pids: { max: 40000 } }),
        (err: SlicedError) => err.code === 'EINVAL' && /pids\.max 40000 is above the 32768 tasks this node can hold/.test(err.message),
      );
      assert.equal(readTrim(file), '4915', 'a refused change writes nothing');

      await agent.createDomain({ name: 'pd' });
      assert.equal(readTrim(join(fake.root, 'pd.domain', 'pids.max')), 'max', 'a domain has no cap of its own unless asked');
      await agent.updateDomain('pd', { pids: { max: 500 } });
      assert.equal(readTrim(join(fake.root, 'pd.domain', 'pids.max')), '500');
      await h.createSlice({ name: 'pin', domain: 'pd' }, 0);
      assert.equal(
        readTrim(join(fake.root, 'pd.domain', 'pin.slice', 'pids.max')),
        '4915',
        "members keep their own limit; the kernel applies the domain's above it",
      );

      writeFileSync(join(fake.root, 'pa.slice', 'pids.current'), '7\n');
      writeFileSync(join(fake.root, 'pa.slice', 'pids.peak'), '12\n');
      writeFileSync(join(fake.root, 'pa.slice', 'pids.events'), 'max 3\n');
      assert.deepEqual(backend.readPids(['pa.slice']), { current: 7, max: 4915, peak: 12, refused: 3 });
      unlinkSync(join(fake.root, 'pa.slice', 'pids.peak'));
      assert.equal(backend.readPids(['pa.slice'])!.peak, null, 'kernels without pids.peak');
    } finally {
      await h.close();
    }
  });

  test('without the pids controller: the reason is given, nothing is written, and slices are still made', async () => {
    const fake = new FakeCfs({ rootName: 'sliced-fx' });
    const stateDir = mkdtempSync(join(tmpdir(), 'sliced-fx-store-'));
    const store = await EmbeddedStore.open(stateDir);
    try {
      writeFileSync(join(fake.own, 'cgroup.controllers'), 'cpu memory io\n');
      const backend = fake.backend();
      const agent = new SliceAgent({
        store,
        backend,
        node: PIDS_NODE,
        log: pino({ level: 'silent' }),
        stopGraceMs: 100,
        rootWeight: 100,
        attachAnyMemoryCgroup: false,
        net: null,
      });
      await agent.start();
      assert.match(
        backend.pidsUnavailable() ?? '',
        /the pids controller is not offered to sliced's cgroup \(.*cgroup\.controllers lists: cpu memory io\)/,
      );
      assert.equal(readTrim(join(fake.own, 'cgroup.subtree_control')), 'cpu io memory');
      await agent.createSlice({ name: 'np', user: 'nobody', pids: { max: 64 } });
      assert.equal(readTrim(join(fake.root, 'np.slice', 'pids.max')), 'max', 'nothing written where the controller is not enabled');
      assert.equal(backend.readPids(['np.slice']), null);
    } finally {
      await store.close();
      rmSync(stateDir, { recursive: true, force: true });
      fake.destroy();
    }
  });

  test('after an upgrade: a stored slice without pids gets the default, and pids is enabled on existing groups', async () => {
    const fake = new FakeCfs({ rootName: 'sliced-fx' });
    const stateDir = mkdtempSync(join(tmpdir(), 'sliced-fx-store-'));
    const log = pino({ level: 'silent' });
    const options = { node: PIDS_NODE, log, stopGraceMs: 100, rootWeight: 100, attachAnyMemoryCgroup: false, net: null };
    try {
      let store = await EmbeddedStore.open(stateDir);
      const first = new SliceAgent({ ...options, store, backend: fake.backend() });
      await first.start();
      await first.createDomain({ name: 'ud' });
      await first.createSlice({ name: 'old', user: 'nobody', domain: 'ud' });
      // What the previous version left: a spec without pids, groups without the pids controller.
      const stored = JSON.parse((await store.get('/slices/old'))!) as Record<string, unknown>;
      delete stored.pids;
      await store.txn([{ type: 'put', key: '/slices/old', value: JSON.stringify(stored) }]);
      await store.close();
      for (const dir of [fake.own, fake.root, join(fake.root, 'ud.domain')])
        writeFileSync(join(dir, 'cgroup.subtree_control'), 'cpu io memory\n');
      writeFileSync(join(fake.root, 'ud.domain', 'old.slice', 'pids.max'), 'max');

      store = await EmbeddedStore.open(stateDir);
      try {
        const upgraded = new SliceAgent({ ...options, store, backend: fake.backend() });
        await upgraded.start();
        assert.deepEqual(upgraded.state.slices.get('old')!.pids, { max: 'default' });
        assert.deepEqual(upgraded.state.domains.get('ud')!.pids, { max: null });
        for (const dir of [fake.own, fake.root, join(fake.root, 'ud.domain')])
          assert.equal(readTrim(join(dir, 'cgroup.subtree_control')), 'cpu io memory pids', dir);
        assert.equal(readTrim(join(fake.root, 'ud.domain', 'old.slice', 'pids.max')), '4915');
      } finally {
        await store.close();
      }
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
      fake.destroy();
    }
  });
});
