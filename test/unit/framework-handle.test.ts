/**
 * The typed handle (src/framework/handle.ts): components take host services through it; a
 * component that needs a service its host does not provide is refused at creation, naming
 * the type and the service; the /proc probes read through the NodeStats service.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeStats } from '../../src/framework/handle.js';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDiskstats, procNodeStats, readCpuBusyNs, readDiskIo } from '../../src/kernel/node-stats.js';
import { assertSound, makeTree, refusal } from './framework-fixtures.js';

const fakeStats: NodeStats = {
  cpuBusyNs: () => [1e9, 2e9],
  loadAverage: () => ({ load1: 1.5, load5: 0.5, load15: 0.25, runnable: 3 }),
  memoryInfo: () => ({ totalBytes: 1000, availableBytes: 250, freeBytes: 100 }),
  pressure: (resource) => (resource === 'memory' ? { some: 4, full: 1 } : null),
  processTimes: () => [],
  processRss: () => [{ pid: 42, rssBytes: 8192 }],
  diskIo: (device) =>
    device === null || device === '/dev/n1-disk' ? { readBytes: 4096, writeBytes: 8192, readOps: 1, writeOps: 2 } : null,
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
    await tree.mkdir('/probes/disk_io');
    tree.write('/probes/disk_io/probe_period', '0');
    assert.equal(tree.read('/probes/disk_io/io/value'), '0 4096 8192 1 2\n', 'all physical disks by default');
    tree.write('/probes/disk_io/device', '/dev/{node}-disk');
    assert.equal(tree.read('/probes/disk_io/io/value'), '0 4096 8192 1 2\n', '{node} is the node name');
    tree.write('/probes/disk_io/device', '/dev/missing');
    assert.equal(tree.read('/probes/disk_io/io/value'), '', 'a missing device: no rows');
    assert.throws(() => tree.write('/probes/disk_io/device', 'sda'), refusal('EINVAL', /"all", MAJ:MIN or an absolute path/));
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

  test('/proc/diskstats: one device by MAJ:MIN or path, or the sum of the physical disks (loop and others on top left out)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-unit-diskstats-'));
    try {
      mkdirSync(join(dir, 'block', 'vda', 'device'), { recursive: true });
      mkdirSync(join(dir, 'block', 'loop0'), { recursive: true });
      mkdirSync(join(dir, 'block', 'vdb', 'device'), { recursive: true });
      writeFileSync(
        join(dir, 'diskstats'),
        [
          ' 253       0 vda 100 0 800 10 50 0 1600 20 0 30 40 0 0 0 0 0 0',
          ' 253       1 vda1 90 0 700 10 40 0 1500 20 0 30 40 0 0 0 0 0 0',
          '   7       0 loop0 7 0 70 1 3 0 30 1 0 1 2 0 0 0 0 0 0',
          ' 253      16 vdb 1 0 8 1 2 0 16 1 0 1 2 0 0 0 0 0 0',
          '',
        ].join('\n'),
      );
      assert.deepEqual(parseDiskstats(readFileSync(join(dir, 'diskstats'), 'utf8')).get('7:0'), {
        name: 'loop0',
        io: { readOps: 7, readBytes: 70 * 512, writeOps: 3, writeBytes: 30 * 512 },
      });
      assert.deepEqual(readDiskIo('7:0', dir, dir), { readOps: 7, readBytes: 70 * 512, writeOps: 3, writeBytes: 30 * 512 });
      assert.deepEqual(readDiskIo(null, dir, dir), { readOps: 101, readBytes: 808 * 512, writeOps: 52, writeBytes: 1616 * 512 });
      assert.equal(readDiskIo('9:9', dir, dir), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The real files: a block device by its path reads its own line.
    const real = [...parseDiskstats(readFileSync('/proc/diskstats', 'utf8')).entries()];
    const found = real.find(([, line]) => existsSync(`/dev/${line.name}`));
    assert.ok(found, `some device of /proc/diskstats has a node in /dev (${real.map(([, l]) => l.name).join(', ')})`);
    const [number, line] = found;
    const byPath = readDiskIo(`/dev/${line.name}`);
    assert.ok(byPath && byPath.readOps >= line.io.readOps, `/dev/${line.name} (${number}) reads its own line`);
  });
});
