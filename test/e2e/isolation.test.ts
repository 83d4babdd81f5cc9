/**
 * CPU isolation on the real kernel with the real control loop: the scenarios of the
 * isolation benchmark that plain cgroups cannot get right on their own. Figures come from
 * the kernel's counters; the expected shares from computeEntitlements with the true demands.
 * Tolerances are wider than the benchmark's targets (bench/isolation.ts measures precisely)
 * because CI machines are noisy; they still fail when the mechanism is missing: without the
 * controller, scenario (b)'s reserved slice gets ~5% of the node instead of ~62%.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { Burners, CpuUsageReader, nodeShares } from '../helpers/cpu-load.js';
import { computeEntitlements, type EntitlementNode } from '../../src/core/entitlement.js';
import { DEFAULT_CPU } from '../../src/core/model.js';
import { readMachineBusyNs } from '../../src/kernel/procfs.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/isolation: ${skip}\n`);

/** The node's capacity in millicores as the daemon reports it (set once it runs). */
let CAPACITY = 0;
/** One burner per CPU makes every busy slice able to use the whole node. */
let BURNERS = 0;
/** The control loop converges in a few of its periods; under emulation the daemon is slower. */
const WARM_MS = 3000 * SLOW;
const MEASURE_MS = 3000;
const TOLERANCE_PP = 8;

interface SliceDef {
  name: string;
  cpu: { reservation?: number; limit?: number; shares?: number };
  domain?: string;
}

/**
 * Expected share of the node per slice. `available` is what the slices could have: the node
 * minus what other work on the machine used during the window (a test machine is not always
 * idle; the controller gives slices what the system leaves them).
 */
function expectedShares(
  slices: SliceDef[],
  domains: Array<{ name: string; cpu: { limit?: number } }>,
  available = CAPACITY,
): Map<string, number> {
  const domainNodes = new Map<string, EntitlementNode>(
    domains.map((d) => [d.name, { id: d.name, cpu: { ...DEFAULT_CPU, limit: d.cpu.limit ?? null }, children: [] }]),
  );
  const roots: EntitlementNode[] = [...domainNodes.values()];
  for (const s of slices) {
    const node: EntitlementNode = {
      id: s.name,
      cpu: { reservation: s.cpu.reservation ?? 0, limit: s.cpu.limit ?? null, shares: s.cpu.shares ?? DEFAULT_CPU.shares },
      demand: BURNERS * 1000,
    };
    if (s.domain) domainNodes.get(s.domain)!.children!.push(node);
    else roots.push(node);
  }
  const result = computeEntitlements(available, roots);
  return new Map(slices.map((s) => [s.name, (result.nodes.get(s.name)!.entitlement / CAPACITY) * 100]));
}

describe('CPU isolation with the control loop (real cgroups, busy burners)', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let burners: Burners;
  let groups: KernelGroups;

  before(async () => {
    daemon = await TestDaemon.start();
    burners = new Burners(daemon.api);
    groups = await KernelGroups.of(daemon);
    CAPACITY = (await daemon.api.get<{ cpu: { capacity: number } }>('/v1/node')).cpu.capacity;
    BURNERS = Math.ceil(CAPACITY / 1000);
  });

  after(async () => {
    await burners?.stopAll();
    await daemon?.destroy();
  });

  /**
   * Between two readings, in millicores: CPU used on the machine outside sliced's groups, and
   * CPU the kernel left idle (a CPU can idle while busy tasks queue on the other when the
   * scheduler balances slowly, as it does under emulation).
   */
  function machineUsage(): () => { otherMc: number; idleMc: number } {
    const read = () => ({ t: performance.now(), busy: readMachineBusyNs(), sliced: groups.cpuUsageNs('') });
    const first = read();
    return () => {
      const last = read();
      const toMc = (ns: number) => Math.max(0, (ns / 1e6 / (last.t - first.t)) * 1000);
      const busyMc = toMc(last.busy - first.busy);
      return { otherMc: toMc(last.busy - first.busy - (last.sliced - first.sliced)), idleMc: Math.max(0, CAPACITY - busyMc) };
    };
  }

  let otherWorkMc = 0;
  let idleMc = 0;
  /** Each slice's CPU cap in the kernel at the end of the window (null: none). */
  let kernelCaps = new Map<string, number | null>();

  async function measure(slices: SliceDef[], domains: Array<{ name: string; cpu: { limit?: number } }> = []): Promise<Map<string, number>> {
    for (const d of domains) await daemon.api.post('/v1/domains', { name: d.name, cpu: { limit: `${d.cpu.limit}m` } });
    for (const s of slices) {
      const cpu = {
        ...s.cpu,
        ...(s.cpu.reservation ? { reservation: `${s.cpu.reservation}m` } : {}),
        ...(s.cpu.limit ? { limit: `${s.cpu.limit}m` } : {}),
      };
      await daemon.api.post('/v1/slices', { ...s, cpu, user: 'nobody' });
    }
    const reader = new CpuUsageReader(daemon.api);
    await reader.resolve(slices.map((s) => s.name));
    try {
      for (const s of slices) await burners.start(s.name, BURNERS);
      await sleep(WARM_MS);
      const start = reader.sample();
      const machine = machineUsage();
      await sleep(MEASURE_MS);
      const shares = nodeShares(start, reader.sample(), CAPACITY);
      ({ otherMc: otherWorkMc, idleMc } = machine());
      kernelCaps = new Map(
        await Promise.all(
          slices.map(
            async (s) => [s.name, groups.cpuLimit((await daemon.api.get<{ cgroup: string }>(`/v1/slices/${s.name}`)).cgroup)] as const,
          ),
        ),
      );
      return shares;
    } finally {
      await burners.stopAll();
      for (const s of slices) await daemon.api.delete(`/v1/slices/${s.name}`);
      for (const d of domains) await daemon.api.delete(`/v1/domains/${d.name}`);
    }
  }

  function assertClose(measured: Map<string, number>, expected: Map<string, number>): void {
    const report = [...expected]
      .map(([name, e]) => `${name} measured ${measured.get(name)!.toFixed(1)}% expected ${e.toFixed(1)}%`)
      .join('; ');
    for (const [name, e] of expected) {
      assert.ok(Math.abs(measured.get(name)! - e) <= TOLERANCE_PP, `${name} is off by more than ${TOLERANCE_PP} pp: ${report}`);
    }
  }

  test('(b) a reservation holds against busy slices with 10x its shares', async () => {
    const slices: SliceDef[] = [
      { name: 'res', cpu: { reservation: Math.round(CAPACITY * 0.6), shares: 100 } },
      { name: 'big1', cpu: { shares: 1000 } },
      { name: 'big2', cpu: { shares: 1000 } },
    ];
    assert.ok(expectedShares(slices, []).get('res')! > 55, 'the scenario gives the reserved slice most of the node');
    const measured = await measure(slices);
    assertClose(measured, expectedShares(slices, [], CAPACITY - otherWorkMc));
  });

  test('(d) a capped domain holds its busy members together under its limit next to a busy slice outside', async (t) => {
    const domains = [{ name: 'dom', cpu: { limit: Math.round(CAPACITY * 0.3) } }];
    const slices: SliceDef[] = [
      { name: 'm1', cpu: {}, domain: 'dom' },
      { name: 'm2', cpu: { shares: 300 }, domain: 'dom' },
      { name: 'outside', cpu: {} },
    ];
    const measured = await measure(slices, domains);
    // The slice outside is uncapped: CPU the kernel left idle while its burners were runnable
    // is the kernel's balancing, not sliced's split, so it comes off what outside could have.
    assert.equal(kernelCaps.get('outside'), null, 'sliced puts no CPU cap on the slice outside the domain');
    t.diagnostic(
      `other work ${Math.round(otherWorkMc)}m, idle ${Math.round(idleMc)}m of ${CAPACITY}m; m1 ${measured.get('m1')!.toFixed(1)}%, m2 ${measured.get('m2')!.toFixed(1)}%, outside ${measured.get('outside')!.toFixed(1)}%`,
    );
    assertClose(measured, expectedShares(slices, domains, CAPACITY - otherWorkMc - idleMc));
    // The cap is a hard quota: it holds tightly whatever the noise.
    assert.ok(
      measured.get('m1')! + measured.get('m2')! <= 30 + 1.5,
      `domain members together used ${(measured.get('m1')! + measured.get('m2')!).toFixed(1)}% of the node, cap 30%`,
    );
  });
});
