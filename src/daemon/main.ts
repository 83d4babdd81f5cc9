/** `sliced`: the node agent daemon. */
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, DEFAULT_CONFIG_FILE, type SlicedConfig } from './config.js';
import { createLogger, startDaemon } from './daemon.js';
import { cleanup } from './cleanup.js';
import { runDemo } from './demo.js';
import { isSlicedError } from '../core/errors.js';

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) throw new InvalidArgumentError(`"${value}" is not a whole number`);
  return parsed;
}

function integerOrNone(value: string): number | 'none' {
  return value === 'none' ? 'none' : integer(value);
}

function number(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) throw new InvalidArgumentError(`"${value}" is not a number`);
  return parsed;
}

const program = new Command('sliced')
  .description('Node agent of sliced: turns slices and scheduling domains into cgroup isolation and serves the API')
  .option('-c, --config <file>', `YAML configuration file (default: ${DEFAULT_CONFIG_FILE} if it exists)`)
  .option('--state-dir <dir>', 'where the desired state is kept (default /var/lib/sliced)')
  .option('--run-dir <dir>', 'where sockets are created (default /run/sliced)')
  .option('--socket <path>', 'API socket (default <run-dir>/sliced.sock)')
  .option('--admin-group <group>', 'group allowed to use the API besides root (socket mode 0660)')
  .option('--cgroup-root <name>', 'name of sliced\'s group inside the daemon\'s own cgroup (must start with "sliced")')
  .option('--cgroup-version <v>', 'auto, v1 or v2')
  .option('--period <ms>', 'control loop period in milliseconds (default 1000)', integer)
  .option('--cpu-control <mode>', '"entitlement" (reservations enforced) or "static" (weights = shares, like systemd)')
  .option('--feedback-gain <g>', 'strength of the weight correction, 0..1 (default 0.5)', number)
  .option('--system-reserve <amount>', 'CPU kept back from reservations: "5%" or "100m" (default 5%)')
  .option('--cpu-capacity <amount>', 'CPU capacity of the node (default: all CPUs this process may use)')
  .option('--stop-grace <ms>', 'grace between SIGTERM and SIGKILL when a slice is deleted (default 5000)', integer)
  .option(
    '--task-retention <ms>',
    'keep a finished task and its output this long, then forget it; 0: keep them all (default 86400000: a day)',
    integer,
  )
  .option('--default-pids-max <max>', 'task limit of slices left at "default": "15%" of the node\'s PIDs, a count, or "none" (default 15%)')
  .option('--metrics-port <port>', 'serve Prometheus metrics on 127.0.0.1:<port>', integer)
  .option('--web <host:port>', 'serve the dashboard there (sign-in with the token of <state-dir>/web-token; slicectl web prints a link)')
  .option('--log-level <level>', 'trace, debug, info, warn, error or fatal')
  .option('--log-file <file>', 'write logs there instead of stderr')
  .option('--mount <dir>', 'also mount the config tree there with FUSE (needs @cocalc/fuse-native)')
  .option('--plugin-dir <dir>', 'folder of component plugins, <dir>/<type>.js (repeatable)', (value: string, previous: string[] = []) => [
    ...previous,
    value,
  ])
  .option('--node-name <name>', 'name of this node in the config tree and the cluster (default: the host name)')
  .option('--cluster <endpoints>', "join a cluster: its etcd members' client URLs, comma-separated (http(s)://HOST:PORT)")
  .option('--node-label <key=value>', 'a label this node gets when it first joins the cluster (repeatable)', nodeLabel)
  .option('--cluster-lease-ttl <ms>', 'a node that stops renewing its lease this long is shown down (default 5000)', integer)
  .option('--cluster-prefix <prefix>', 'keys of this cluster live under this etcd prefix (default /sliced/)')
  .option('--cluster-take-tree', "when this node's own config tree differs from the cluster's, replace it instead of refusing to start")
  .option('--cluster-ca <file>', "TLS to etcd: the CA of its members' certificates")
  .option('--cluster-cert <file>', "TLS to etcd: this node's client certificate (with --cluster-key)")
  .option('--cluster-key <file>', "TLS to etcd: this node's client key")
  .option('--peer-listen <host:port>', 'the node-to-node channel (task logs, signals) listens there, e.g. :7946')
  .option('--peer-advertise <host>', 'the address other agents reach the channel at (default: the listen host or the first host address)')
  .option('--peer-token-file <file>', 'the channel admits callers holding the token in this root-only file (test set-ups)')
  .option('--peer-ca <file>', "the channel's mutual TLS: the cluster CA (with --peer-cert, --peer-key)")
  .option('--peer-cert <file>', "the channel's mutual TLS: this agent's certificate")
  .option('--peer-key <file>', "the channel's mutual TLS: this agent's key")
  .option('--default-tree <file>', 'tree document applied on the first start (default: defaults/tree.yaml)')
  .option('--vsys-dir <dir>', 'vsys services directory, root-only (default <state-dir>/vsys)')
  .option('--vsys-slice-root <dir>', "where slices' vsys directories are made (default <run-dir>/vsys)")
  .option('--vsys-timeout <ms>', 'stop a one-shot vsys call after this long (default 10000)', integer)
  .option('--vsys-max-input <size>', 'largest input of one vsys call (default 1M)')
  .option('--vsys-max-output <size>', 'largest output of one vsys call (default 1M)')
  .option('--vsys-max-calls <n>', 'vsys calls of one slice running at once (default 4)', integer)
  .option('--slice-socket-max-connections <n>', 'connections one slice may hold open to its socket (default 16)', integer)
  .option('--slice-socket-max-total <n>', 'connections all slice sockets together may hold open (default 1024)', integer)
  .option('--slice-socket-timeout <ms>', 'close a slice socket connection idle this long (default 10000)', integer)
  .option('--no-net', 'no slice networking: no bridge, no namespaces, no accounting')
  .option('--user-prefix <prefix>', 'how the users made for slices begin: "sl-" (default) or "sl-<1 to 5 of a-z0-9>-"')
  .option('--net-tag <tag>', "names this daemon's network objects (slbr<tag>, slv<tag>-*, sliced<tag>-*); default 0")
  .option('--net-pool4 <cidr>', 'IPv4 subnet of the slices (default 10.213.0.0/17)')
  .option('--net-pool6 <cidr>', 'IPv6 subnet of the slices (default fd5c:ed00::/64)')
  .option('--net-capacity <rate>', 'network capacity of the node, e.g. 1gbit (default 10gbit)')
  .option('--net-conntrack-max <n>', 'conntrack entries per namespaced slice, or "none" (default 8192)', integerOrNone)
  .option('--cleanup', 'remove every kernel object sliced made (groups, created users, sockets) and exit')
  .option('--demo', 'also run the live demo: slices with CPU burners and a refreshing table')
  // Commander exits 1 on bad usage; 1 means "cannot start" here (README, Exit status of sliced).
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
  .addHelpText(
    'after',
    `
Exit status: 0 after a clean stop or cleanup, 1 when the daemon cannot start (the reason is logged),
2 on bad usage (unknown option, missing or invalid value of an option or a configuration setting).
Stopping sliced (SIGTERM/SIGINT) leaves slices and their processes running; the next start adopts them.`,
  )
  .action(async (options: Record<string, unknown>) => {
    let config: SlicedConfig;
    try {
      config = loadConfig((options.config as string | undefined) ?? null, {
        stateDir: options.stateDir,
        runDir: options.runDir,
        socket: options.socket,
        adminGroup: options.adminGroup,
        cgroupRoot: options.cgroupRoot,
        cgroupVersion: options.cgroupVersion,
        controlPeriodMs: options.period,
        cpuControl: options.cpuControl,
        feedbackGain: options.feedbackGain,
        systemReserve: options.systemReserve,
        cpuCapacity: options.cpuCapacity,
        stopGraceMs: options.stopGrace,
        taskRetentionMs: options.taskRetention,
        defaultPidsMax: options.defaultPidsMax,
        metricsPort: options.metricsPort,
        web: options.web === undefined ? undefined : { listen: options.web },
        logLevel: options.logLevel,
        logFile: options.logFile,
        mount: options.mount,
        pluginDirs: options.pluginDir,
        nodeName: options.nodeName,
        cluster: clusterFlags(options),
        defaultTree: options.defaultTree,
        vsysDir: options.vsysDir,
        vsysSliceRoot: options.vsysSliceRoot,
        vsysTimeoutMs: options.vsysTimeout,
        vsysMaxInput: options.vsysMaxInput,
        vsysMaxOutput: options.vsysMaxOutput,
        vsysMaxCallsPerSlice: options.vsysMaxCalls,
        sliceSocketMaxConnections: options.sliceSocketMaxConnections,
        sliceSocketMaxTotal: options.sliceSocketMaxTotal,
        sliceSocketTimeoutMs: options.sliceSocketTimeout,
        net: options.net === false ? false : undefined,
        netTag: options.netTag,
        userPrefix: options.userPrefix,
        netPool4: options.netPool4,
        netPool6: options.netPool6,
        netCapacity: options.netCapacity,
        netConntrackMax: options.netConntrackMax,
      });
    } catch (err) {
      process.stderr.write(`sliced: ${(err as Error).message}\n`);
      process.exit(2);
    }
    if (options.demo && config.logFile === null) config = { ...config, logFile: `${config.stateDir}/sliced.log` };
    const log = createLogger(config);
    try {
      if (options.cleanup) {
        await cleanup(config, log);
        process.exit(0);
      }
      const daemon = await startDaemon(config, log);
      let stopping = false;
      const stop = async (signal: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'stopping');
        await demo?.stop();
        // The demo leaves the machine as it found it when nothing but the demo used sliced:
        // the node-wide objects (bridge, nft tables, sliced's own groups) go too.
        const unused = demo !== null && daemon.agent.state.slices.size === 0 && daemon.agent.state.domains.size === 0;
        await daemon.close();
        if (unused) {
          process.stdout.write('no slices left: removing the bridge, nft tables and groups of sliced (as sliced --cleanup)\n');
          await cleanup(config, log);
        }
        process.exit(0);
      };
      const demo = options.demo ? await runDemo(daemon) : null;
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
    } catch (err) {
      const message = isSlicedError(err) ? err.message : ((err as Error).stack ?? String(err));
      log.fatal({ err: message }, 'cannot start');
      process.stderr.write(`sliced: ${message}\n`);
      log.flush?.();
      process.exit(1);
    }
  });

await program.parseAsync(process.argv);

function nodeLabel(value: string, previous: string[] = []): string[] {
  if (!value.includes('=')) throw new InvalidArgumentError(`give KEY=VALUE (e.g. rack=r1), not ${JSON.stringify(value)}`);
  return [...previous, value];
}

/** The cluster section from the flags (over the config file's), or undefined when no cluster flag is given. */
function clusterFlags(options: Record<string, unknown>): Record<string, unknown> | undefined {
  const labels = options.nodeLabel as string[] | undefined;
  const tls =
    options.clusterCa !== undefined || options.clusterCert !== undefined || options.clusterKey !== undefined
      ? { ca: options.clusterCa, cert: options.clusterCert, key: options.clusterKey }
      : undefined;
  const section: Record<string, unknown> = {
    endpoints: options.cluster,
    labels: labels && Object.fromEntries(labels.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
    leaseTtlMs: options.clusterLeaseTtl,
    prefix: options.clusterPrefix,
    takeTree: options.clusterTakeTree,
    tls: tls && Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)),
    peer: peerFlags(options),
  };
  const given = Object.fromEntries(Object.entries(section).filter(([, v]) => v !== undefined));
  return Object.keys(given).length > 0 ? given : undefined;
}

function peerFlags(options: Record<string, unknown>): Record<string, unknown> | undefined {
  const tls =
    options.peerCa !== undefined || options.peerCert !== undefined || options.peerKey !== undefined
      ? Object.fromEntries(
          Object.entries({ ca: options.peerCa, cert: options.peerCert, key: options.peerKey }).filter(([, v]) => v !== undefined),
        )
      : undefined;
  const section = { listen: options.peerListen, advertise: options.peerAdvertise, tokenFile: options.peerTokenFile, tls };
  const given = Object.fromEntries(Object.entries(section).filter(([, v]) => v !== undefined));
  return Object.keys(given).length > 0 ? given : undefined;
}
