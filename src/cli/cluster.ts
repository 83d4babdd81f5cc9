/**
 * `slicectl cluster init-ca` and `issue-cert`: the certificates of the agents' node-to-node
 * channel (mutual TLS), made with openssl(1) on the machine where slicectl runs, no daemon
 * needed. One CA per cluster; each agent gets a certificate for client and server use, named
 * after its node. Keys are written 0600 in a 0700 folder and never overwritten.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT } from './client.js';
import { checkNodeName } from '../core/membership.js';
import { canonicalAddress } from '../core/net-address.js';

export interface ClusterCliContext {
  print(command: Command, json: unknown, text: () => string): void;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function openssl(dir: string, args: string[]): void {
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new CliError('openssl is not installed (Debian package openssl); it makes the certificates', EXIT.refused, 'EIO');
  }
  if (result.status !== 0) throw new CliError(`openssl ${args[0]} failed: ${result.stderr.trim()}`, EXIT.refused, 'EIO');
}

function days(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 36500)
    throw new CliError(`--days ${JSON.stringify(text)} must be a whole number from 1 to 36500`, EXIT.usage, 'EINVAL');
  return n;
}

function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((statSync(dir).mode & 0o077) !== 0)
    throw new CliError(
      `${dir} is readable by others (mode ${(statSync(dir).mode & 0o777).toString(8)}); keys go only into a 0700 folder`,
      EXIT.refused,
      'EPERM',
    );
}

function refuseExisting(files: string[]): void {
  const there = files.filter((f) => existsSync(f));
  if (there.length > 0)
    throw new CliError(
      `${there.join(', ')} exist${there.length === 1 ? 's' : ''} already; remove ${there.length === 1 ? 'it' : 'them'} first to make new ones`,
      EXIT.refused,
      'EEXIST',
    );
}

const collect = (value: string, all: string[]): string[] => [...all, value];

export function registerClusterCommands(program: Command, ctx: ClusterCliContext): void {
  const cluster = program
    .command('cluster')
    .description("certificates of the agents' node-to-node channel (mutual TLS), made with openssl");

  cluster
    .command('init-ca')
    .description("make the cluster's CA (ca.pem, ca-key.pem) in --dir; keep ca-key.pem off the nodes")
    .requiredOption('--dir <dir>', 'folder of the certificates (made 0700)')
    .option('--days <n>', 'validity in days (default 3650)', '3650')
    .action((options: { dir: string; days: string }, command: Command) => {
      const validity = days(options.days);
      privateDir(options.dir);
      const [ca, key] = [join(options.dir, 'ca.pem'), join(options.dir, 'ca-key.pem')];
      refuseExisting([ca, key]);
      openssl(options.dir, [
        'req',
        '-x509',
        ...KEY,
        '-keyout',
        'ca-key.pem',
        '-out',
        'ca.pem',
        '-days',
        String(validity),
        '-subj',
        '/CN=sliced cluster CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ]);
      chmodSync(key, 0o600);
      const result = { ca, key, days: validity };
      ctx.print(
        command,
        result,
        () => `made ${ca} and ${key} (valid ${validity} days); next: slicectl cluster issue-cert NODE --dir ${options.dir}`,
      );
    });

  cluster
    .command('issue-cert <node>')
    .description("make an agent's certificate and key (<node>.pem, <node>-key.pem), signed by the CA in --dir, for client and server use")
    .requiredOption('--dir <dir>', 'folder of the CA (slicectl cluster init-ca)')
    .option('--ip <address>', 'an address the agent is reached at (repeatable)', collect, [] as string[])
    .option('--dns <name>', 'a host name the agent is reached at (repeatable; the node name is always in)', collect, [] as string[])
    .option('--days <n>', 'validity in days (default 825)', '825')
    .action((node: string, options: { dir: string; ip: string[]; dns: string[]; days: string }, command: Command) => {
      try {
        checkNodeName(node);
      } catch (err) {
        throw new CliError((err as Error).message, EXIT.usage, 'EINVAL');
      }
      const validity = days(options.days);
      const ips = options.ip.map((a) => {
        try {
          return canonicalAddress(a, '--ip').text;
        } catch (err) {
          throw new CliError((err as Error).message, EXIT.usage, 'EINVAL');
        }
      });
      for (const name of options.dns)
        if (!DNS_NAME.test(name)) throw new CliError(`--dns ${JSON.stringify(name)} is not a host name`, EXIT.usage, 'EINVAL');
      if (!existsSync(join(options.dir, 'ca.pem')) || !existsSync(join(options.dir, 'ca-key.pem'))) {
        throw new CliError(
          `no CA in ${options.dir} (ca.pem and ca-key.pem): make it with slicectl cluster init-ca --dir ${options.dir}`,
          EXIT.notFound,
          'ENOENT',
        );
      }
      const [cert, key] = [join(options.dir, `${node}.pem`), join(options.dir, `${node}-key.pem`)];
      refuseExisting([cert, key]);
      const dnsNames = DNS_NAME.test(node) ? [node, ...options.dns] : options.dns;
      const san = [...dnsNames.map((d) => `DNS:${d}`), ...ips.map((a) => `IP:${a}`)].join(',');
      const ext = join(options.dir, `${node}.ext`);
      const csr = join(options.dir, `${node}.csr`);
      writeFileSync(
        ext,
        `${san ? `subjectAltName=${san}\n` : ''}extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n`,
      );
      try {
        openssl(options.dir, ['req', ...KEY, '-keyout', `${node}-key.pem`, '-out', `${node}.csr`, '-subj', `/CN=${node}`]);
        openssl(options.dir, [
          'x509',
          '-req',
          '-in',
          `${node}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca-key.pem',
          '-CAcreateserial',
          '-out',
          `${node}.pem`,
          '-days',
          String(validity),
          '-extfile',
          `${node}.ext`,
        ]);
        chmodSync(key, 0o600);
      } finally {
        rmSync(ext, { force: true });
        rmSync(csr, { force: true });
      }
      const result = { node, cert, key, ca: join(options.dir, 'ca.pem'), subjectAltName: san };
      ctx.print(
        command,
        result,
        () =>
          `made ${cert} and ${key}; on node ${node}: sliced --peer-ca ${result.ca} --peer-cert ${cert} --peer-key ${key} (copy the three, keys 0600, root's)`,
      );
    });
}
