/**
 * The typed handle (src/framework/handle.ts): components take host services through it; a
 * component that needs a service its host does not provide is refused at creation, naming
 * the type and the service; the /proc probes read through the NodeStats service.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeStats } from '../../src/framework/handle.js';
import { procNodeStats, readCpuBusyNs } from '../../src/kernel/node-stats.js';
import { assertSound, makeTree, refusal } from './framework-fixtures.js';

const fakeStats: NodeStats = {
  cpuBusyNs: () => [1e9, 2e9],
  loadAverage: () => ({ load1: 1.5, load5: 0.5, load15: 0.25, runnable: 3 }),
  memoryInfo: () => ({ totalBytes: 1000, availableBytes: 250 }),
  pressure: (resource) => (resource === 'memory' ? { some: 4, full: 1 } : null),
  processTimes: () => [],
};

describe('the component handle', () => {
  test('a component needing a service the host lacks is refused at creation, naming type and service', async () => {
    const { tree } = makeTree();
    for (const [path, type, service] of [
      ['/probes/load', 'load', 'nodeStats'],
      ['/probes/psi', 'psi', 'nodeStats'],
      ['/probes/slice_usage', 'slice_usage', 'cpuController'],
    ] as const) {
      await assert.rejects(
        tree.mkdir(path),
        refusal(
          'ENOENT',
          new RegExp(`component type ${type} \\(${path}\\) needs the host service ${service} .*which this host does not provide`),
        ),
      );
      assert.equal(tree.exists(path), false, `${path} was not created`);
      assertSound(tree, `refused ${path}`);
    }
    await tree.mkdir('/schedulers/s');
    await assert.rejects(tree.mkdir('/schedulers/s/entitlement'), refusal('ENOENT', /entitlement .* needs the host service cpuController/));
  });

  test('the /proc probes read through the nodeStats service', async () => {
    const { tree } = makeTree({ services: { nodeStats: fakeStats } });
    await tree.mkdir('/probes/load');
    await tree.mkdir('/probes/mem');
    await tree.mkdir('/probes/psi');
    tree.write('/probes/load/probe_period', '0');
    tree.write('/probes/mem/probe_period', '0');
    tree.write('/probes/psi/probe_period', '0');
    assert.equal(tree.read('/probes/load/loadavg/value'), '0 1.5 0.5 0.25 3\n');
    assert.equal(tree.read('/probes/mem/memory/value'), '0 1000 250 75\n');
    assert.equal(tree.read('/probes/psi/memory/value'), '0 4 1\n');
    assert.equal(tree.read('/probes/psi/cpu/value'), '', 'no PSI for cpu: no rows');
  });

  test("the kernel's NodeStats reads the same /proc files as the functions underneath", () => {
    const stats: NodeStats = procNodeStats();
    const direct = readCpuBusyNs();
    const viaHandle = stats.cpuBusyNs();
    assert.equal(viaHandle.length, direct.length);
    assert.ok(
      viaHandle.every((ns, i) => ns >= direct[i]!),
      'busy time only grows',
    );
    assert.ok(stats.memoryInfo().totalBytes > 0);
  });
});
