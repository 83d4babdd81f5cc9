/**
 * A real etcd cluster for the cluster tests: 3 members of Debian's etcd-server, each in its
 * own network namespace on a private bridge (`sletcd<n>`, 10.197.<n>.0/24; the host side of
 * the bridge is 10.197.<n>.1, member i is 10.197.<n>.(10+i)), data dirs under a fresh
 * /tmp/sliced-etcd-* directory. The test process reaches the members over the bridge. Debian's
 * own etcd service is never used or touched: the members listen in their namespaces only.
 * destroy() removes everything (members killed by pid, namespaces, bridge, data), and so does
 * a process exit that skipped it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandSkipReason, SLOW } from './env.js';

/** Why an etcd cluster cannot be started here, or null. */
export function etcdSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (creates network namespaces and a bridge)';
  if (commandSkipReason('etcd', 'etcd-server') !== null) return 'etcd not installed (Debian package etcd-server)';
  return commandSkipReason('ip', 'iproute2');
}

interface Member {
  name: string;
  netns: string;
  veth: string;
  address: string;
  dataDir: string;
  log: string;
  child: ChildProcess | undefined;
}

function ip(...args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${result.status}): ${result.stderr.trim()}`);
}

/** Clusters not yet destroyed: removed on process exit if a test skipped destroy(). */
const live = new Set<EtcdCluster>();
process.on('exit', () => {
  for (const cluster of live) cluster.destroySync();
});

/** Files of a cluster started with TLS: the CA, and a client certificate signed by it. */
export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
}

export class EtcdCluster {
  /** How long the members took from spawn until all reported healthy (ms). */
  startMs = 0;
  /** With `tls`: clients must present a certificate signed by `ca` (etcd's --client-cert-auth). */
  tls: EtcdTls | null = null;
  private readonly members: Member[];
  private destroyed = false;

  private constructor(
    readonly bridge: string,
    readonly subnet: string,
    readonly dir: string,
    size: number,
  ) {
    this.members = Array.from({ length: size }, (_, i) => ({
      name: `m${i}`,
      netns: `${bridge}m${i}`,
      veth: `${bridge}v${i}`,
      address: `${subnet}.${10 + i}`,
      dataDir: join(dir, `m${i}`),
      log: join(dir, `m${i}.log`),
      child: undefined,
    }));
  }

  /** Client URLs of the members. */
  get endpoints(): string[] {
    return this.members.map((m) => `${this.tls ? 'https' : 'http'}://${m.address}:2379`);
  }

  /** Start a cluster of `size` members and wait until every member is healthy; `tls`: client URLs over TLS with client certificates. */
  static async start(size = 3, options: { tls?: boolean } = {}): Promise<EtcdCluster> {
    const dir = mkdtempSync('/tmp/sliced-etcd-');
    let cluster: EtcdCluster | undefined;
    try {
      // Claim a subnet by creating its bridge: `ip link add` fails if another run has it.
      for (let n = 1; n < 250 && cluster === undefined; n++) {
        const bridge = `sletcd${n}`;
        const routes = spawnSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout ?? '';
        if (routes.includes(`10.197.${n}.`)) continue;
        if (spawnSync('ip', ['link', 'add', bridge, 'type', 'bridge']).status !== 0) continue;
        cluster = new EtcdCluster(bridge, `10.197.${n}`, dir, size);
        live.add(cluster);
      }
      if (cluster === undefined) throw new Error('no free test subnet 10.197.<n>.0/24 with a free bridge name sletcd<n>');
      cluster.wire();
      if (options.tls) cluster.tls = cluster.makeCertificates();
      const started = Date.now();
      for (let i = 0; i < size; i++) cluster.spawnMember(i, 'new');
      await Promise.all(cluster.members.map((_, i) => cluster!.waitHealthy(i)));
      cluster.startMs = Date.now() - started;
      return cluster;
    } catch (err) {
      if (cluster) await cluster.destroy();
      else rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** SIGKILL member i and wait for it to exit. */
  async kill(i: number): Promise<void> {
    const child = this.members[i]!.child;
    this.members[i]!.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Start member i again on its data dir (after kill) and wait until it is healthy. */
  async restart(i: number): Promise<number> {
    const started = Date.now();
    this.spawnMember(i, 'existing');
    await this.waitHealthy(i);
    return Date.now() - started;
  }

  /** Freeze member i (SIGSTOP): its sockets stay open but nothing answers, as in a partition. */
  pause(i: number): void {
    this.members[i]!.child?.kill('SIGSTOP');
  }

  /** Let a paused member run again (SIGCONT). */
  resume(i: number): void {
    this.members[i]!.child?.kill('SIGCONT');
  }

  /** The pid of member i's process while it runs. */
  pid(i: number): number | undefined {
    const child = this.members[i]!.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  /**
   * Cut member i off from everything (its peers and every client) with an nft table in its
   * own namespace (`inet slicedcut`, gone with the namespace at the latest); heal(i) removes it.
   */
  isolate(i: number): void {
    const m = this.members[i]!;
    const table = 'inet slicedcut';
    const script = [
      `add table ${table}`,
      `add chain ${table} in { type filter hook input priority -10; policy drop; }`,
      `add chain ${table} out { type filter hook output priority -10; policy drop; }`,
      `add rule ${table} in iifname "lo" accept`,
      `add rule ${table} out oifname "lo" accept`,
    ].join('\n');
    const result = spawnSync('ip', ['netns', 'exec', m.netns, 'nft', '-f', '-'], { input: `${script}\n`, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`nft in ${m.netns} failed: ${result.stderr.trim()}`);
  }

  /** Undo isolate(i) (nothing when it is not isolated). */
  heal(i: number): void {
    spawnSync('ip', ['netns', 'exec', this.members[i]!.netns, 'nft', 'delete', 'table', 'inet', 'slicedcut'], { stdio: 'ignore' });
  }

  /** The index of the member that says it leads (its etcd_server_is_leader metric), or null when none answers so. */
  async leader(): Promise<number | null> {
    const answers = await Promise.all(
      this.members.map((m) =>
        this.get(m.address, '/metrics')
          .then((text) => /^etcd_server_is_leader 1$/m.test(text))
          .catch(() => false),
      ),
    );
    const index = answers.indexOf(true);
    return index === -1 ? null : index;
  }

  /** Whether every member answers /health with a leader. */
  async healthy(): Promise<boolean> {
    const answers = await Promise.all(this.members.map((m) => this.health(m.address).catch(() => undefined)));
    return answers.every((a) => a === 'true');
  }

  /** The member's log (zap JSON lines), for a failing test's message. */
  logPath(i: number): string {
    return this.members[i]!.log;
  }

  async destroy(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    this.destroySync();
  }

  /** Kill what still runs, delete the namespaces, the veths, the bridge and the data. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const m of this.members) {
      if (m.child && m.child.exitCode === null && m.child.pid !== undefined) {
        try {
          process.kill(m.child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      spawnSync('ip', ['link', 'del', m.veth]);
      spawnSync('ip', ['netns', 'del', m.netns]);
    }
    spawnSync('ip', ['link', 'del', this.bridge]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private wire(): void {
    ip('addr', 'add', `${this.subnet}.1/24`, 'dev', this.bridge);
    ip('link', 'set', this.bridge, 'up');
    this.members.forEach((m, i) => {
      ip('netns', 'add', m.netns);
      const peer = `${this.bridge}p${i}`;
      ip('link', 'add', m.veth, 'type', 'veth', 'peer', 'name', peer);
      ip('link', 'set', peer, 'netns', m.netns);
      ip('-n', m.netns, 'link', 'set', peer, 'name', 'eth0');
      ip('-n', m.netns, 'addr', 'add', `${m.address}/24`, 'dev', 'eth0');
      ip('-n', m.netns, 'link', 'set', 'eth0', 'up');
      ip('-n', m.netns, 'link', 'set', 'lo', 'up');
      ip('link', 'set', m.veth, 'master', this.bridge);
      ip('link', 'set', m.veth, 'up');
    });
  }

  /** A CA, a server certificate for the members' addresses and a client certificate (EC P-256, one day). */
  private makeCertificates(): EtcdTls {
    const dir = join(this.dir, 'tls');
    mkdirSync(dir, { mode: 0o700 });
    const openssl = (...args: string[]): void => {
      const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
    };
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...key, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=sliced-test-etcd-ca');
    const sign = (name: string, ext: string): void => {
      openssl('req', ...key, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      writeFileSync(join(dir, `${name}.ext`), ext);
      openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca-key.pem',
        '-CAcreateserial',
        '-out',
        `${name}.pem`,
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
      );
    };
    sign('server', `subjectAltName=${this.members.map((m) => `IP:${m.address}`).join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    sign('client', 'extendedKeyUsage=clientAuth\n');
    return { ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client-key.pem') };
  }

  private spawnMember(i: number, state: 'new' | 'existing'): void {
    const m = this.members[i]!;
    const scheme = this.tls ? 'https' : 'http';
    const tlsFlags = this.tls
      ? [
          '--client-cert-auth',
          `--trusted-ca-file=${this.tls.ca}`,
          `--cert-file=${join(this.dir, 'tls', 'server.pem')}`,
          `--key-file=${join(this.dir, 'tls', 'server-key.pem')}`,
        ]
      : [];
    const cluster = this.members.map((o) => `${o.name}=http://${o.address}:2380`).join(',');
    // `ip netns exec` execs etcd itself: the child's pid is the member's.
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        m.netns,
        'etcd',
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${scheme}://${m.address}:2379`,
        `--advertise-client-urls=${scheme}://${m.address}:2379`,
        ...tlsFlags,
        `--listen-peer-urls=http://${m.address}:2380`,
        `--initial-advertise-peer-urls=http://${m.address}:2380`,
        `--initial-cluster=${cluster}`,
        `--initial-cluster-token=${this.bridge}-${process.pid}`,
        `--initial-cluster-state=${state}`,
        // Off by default in 3.4: a member cut off and back would force an election.
        '--pre-vote=true',
        '--logger=zap',
        `--log-outputs=${m.log}`,
      ],
      { stdio: 'ignore' },
    );
    child.on('error', () => undefined);
    m.child = child;
  }

  private async waitHealthy(i: number): Promise<void> {
    const m = this.members[i]!;
    const deadline = Date.now() + 20_000 * SLOW;
    for (;;) {
      if (!m.child || m.child.exitCode !== null) throw new Error(`etcd member ${m.name} exited (${m.child?.exitCode}); its log: ${m.log}`);
      try {
        if ((await this.health(m.address)) === 'true') return;
      } catch {
        // Not listening yet, or no leader yet.
      }
      if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy after ${20 * SLOW} s; its log: ${m.log}`);
      await sleep(50);
    }
  }

  /** The member's /health answer ("true" when it has a leader). */
  private async health(address: string): Promise<string | undefined> {
    return (JSON.parse(await this.get(address, '/health')) as { health?: string }).health;
  }

  /** GET a path of a member's client URL, over TLS with the client certificate when the cluster has one. */
  private get(address: string, path: string): Promise<string> {
    const tls = this.tls;
    return new Promise((resolve, reject) => {
      const request = (tls ? httpsRequest : httpRequest)(
        {
          host: address,
          port: 2379,
          path,
          timeout: 1000,
          ...(tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}),
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        },
      );
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', reject);
      request.end();
    });
  }
}
