/**
 * A cluster for e2e tests: a 3-member etcd (test/helpers/etcd.ts) started before the file's
 * tests and agents (TestDaemon) joined to it under a key prefix and node names of their own
 * (etcd and names are shared with other runs); everything is destroyed after the file, also
 * on failure. A test skips with the reason when root, the kernel or etcd is missing.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from './daemon.js';
import { EtcdCluster, etcdSkipReason } from './etcd.js';
import { kernelSkipReason, skipWith } from './env.js';
import type { NodeEntry, NodeList } from '../../src/wire/nodes.js';

export class ClusterHarness {
  etcd: EtcdCluster | undefined;
  readonly daemons: TestDaemon[] = [];
  readonly run = randomUUID().slice(0, 8);
  readonly prefix = `/sliced-test/${this.run}/`;

  /** Registers the file's before and after hooks. */
  constructor() {
    before(async () => {
      if (this.skipReason() !== null) return;
      this.etcd = await EtcdCluster.start(3);
    });
    after(async () => {
      for (const d of this.daemons.splice(0)) await d.destroy().catch(() => undefined);
      await this.etcd?.destroy();
    });
  }

  nameOf(n: string): string {
    return `t${this.run}-${n}`;
  }

  skipReason(): string | null {
    return kernelSkipReason() ?? etcdSkipReason();
  }

  /** A test that skips, with the reason, without root, kernel support or etcd. */
  test(title: string, body: (t: TestContext) => Promise<void>): void {
    test(title, async (t) => {
      const reason = this.skipReason() ?? (this.etcd ? null : 'the etcd cluster did not start');
      if (reason !== null) return skipWith(t, reason);
      await body(t);
    });
  }

  args(name: string, extra: string[] = []): string[] {
    return ['--cluster', this.etcd!.endpoints.join(','), '--cluster-prefix', this.prefix, '--node-name', this.nameOf(name), ...extra];
  }

  async startAgent(name: string, extra: string[] = []): Promise<TestDaemon> {
    const daemon = await TestDaemon.start(this.args(name, extra));
    this.daemons.push(daemon);
    return daemon;
  }

  async nodes(daemon: TestDaemon): Promise<Map<string, NodeEntry>> {
    const list = await daemon.api.get<NodeList>('/v1/nodes');
    assert.equal(list.mode, 'etcd');
    return new Map(list.nodes.map((n) => [n.name, n]));
  }
}

/** Poll `check` every 50 ms until it holds; fails after `timeoutMs`. Resolves to the time it took. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(50);
  }
  return Date.now() - started;
}

/** A TCP port on 127.0.0.1 that nothing listens on now (for an agent's node-to-node channel). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
