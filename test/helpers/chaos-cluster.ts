/**
 * Crash consistency of a cluster (issue 16, part 2), in the spirit of Jepsen: three agents on
 * a 3-member etcd while a seeded nemesis, one fault at a time, SIGKILLs agents and members
 * (the leader among them), cuts links with nft (one agent from etcd and its peers, the etcd
 * leader, a minority of members, the majority), and freezes agents past their lease TTL and
 * members (SIGSTOP), healing each and waiting for the cluster to be whole before the next
 * (every nine faults hold each of the nine kinds once, in a seeded order). Meanwhile a client on every node drives
 * changes there: slices created on random nodes with CPU reservations that fill the nodes,
 * changed and deleted; scheduler-tree directories made, written and removed; restartable
 * tasks submitted and stopped. Every request and fault goes into a history file (JSON lines).
 *
 * A client keeps a model of what its node acknowledged. An answer that is not a clear yes or
 * no (no answer, 5xx, a create refused as existing: etcd may have applied a call it timed out)
 * makes the entity uncertain: it may have happened or not, but whole, and the client leaves
 * it alone from then on. After the last fault is healed the checks are:
 *
 *   - convergence: every agent shows the same tree (dump) and the same slice catalogue, and
 *     every sliver is realised;
 *   - acknowledged: every slice, directory and task equals the model (or, uncertain, one of
 *     its two values as a whole); a task acknowledged and not stopped runs, once; a stopped
 *     one does not;
 *   - the kernel of each node holds exactly the groups of the slices placed on it;
 *   - no node over-committed: every version of every allocation record in etcd's history
 *     (read back from revision 1) reserves no more CPU than the node has beyond its reserve;
 *   - no task ran on two nodes at once: each task holds an flock on a file of its own while
 *     it runs (the kernel drops it only when the last process holding it is gone); an
 *     instance that finds it taken writes its name to a file the run reads.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { KernelGroups, removeEmptyGroups } from './cgroups.js';
import { TestDaemon } from './daemon.js';
import { EtcdCluster } from './etcd.js';
import { freePort } from './cluster.js';
import { prng } from './prng.js';
import { errorOf, rawCall } from './raw-api.js';
import { taskProcesses } from './tasks.js';
import { readMounts } from '../../src/kernel/procfs.js';
import type { PlacementEntry, SliceView } from '../../src/wire/slices.js';
import type { TaskView } from '../../src/wire/tasks.js';

export interface ClusterChaosOptions {
  faults: number;
  seed: number;
  /** Where the history (JSON lines: requests, faults, checks) is written. */
  historyFile: string;
  say?: (line: string) => void;
  /** Stops after the fault under way (then heals and checks as usual). */
  signal?: AbortSignal;
}

export interface ClusterChaosResult {
  faults: number;
  /** SIGKILLs of agents and etcd members. */
  kills: number;
  cuts: number;
  pauses: number;
  fault_kinds: Record<string, number>;
  /** Requests answered with a clear yes or no. */
  acknowledged: number;
  refused: number;
  /** Requests whose outcome could not be known (no answer, 5xx, a create refused as existing): done whole or not at all. */
  uncertain: number;
  lost_acknowledged: number;
  half_applied: number;
  orphaned_objects: number;
  missing_objects: number;
  /** Allocation records (versions, from etcd's history) that reserve more than their node has. */
  overcommits: number;
  allocation_versions_checked: number;
  tasks_submitted: number;
  /** Tasks placed anew after their node was taken for dead (generation above 1 at the end). */
  tasks_failed_over: number;
  /** Faults of an agent after which the others saw it down (its lease had ended). */
  agents_seen_down: number;
  tasks_running_twice: number;
  /** Acknowledged, not stopped, and still not running once the cluster had healed. */
  tasks_not_running: number;
  /** The agents did not come to show the same tree, catalogue and realised slivers after healing. */
  diverged: number;
  /** A fault that did not heal: the cluster did not come back whole within a minute. */
  unhealed: number;
  seed: number;
  problems: string[];
  history: string;
}

type Problem =
  | 'lost_acknowledged'
  | 'half_applied'
  | 'orphaned_objects'
  | 'missing_objects'
  | 'overcommits'
  | 'tasks_running_twice'
  | 'tasks_not_running'
  | 'diverged'
  | 'unhealed';

const AGENTS = ['a', 'b', 'c'] as const;
const LEASE_TTL_MS = 3000;
/** One request's patience: an agent frozen or cut off answers late (or never). */
const CALL_TIMEOUT_MS = 45_000;
const FAULTS = [
  'kill-agent',
  'kill-member',
  'kill-leader',
  'cut-agent',
  'cut-leader',
  'cut-minority',
  'cut-majority',
  'pause-agent',
  'pause-member',
] as const;
type Fault = (typeof FAULTS)[number];

interface SliceModel {
  nodes: string[];
  reservation: number;
  shares: number;
}
interface DirModel {
  handleAll: string;
}
interface TaskModel {
  id: string;
  /** 'run' once acknowledged; 'stop' once its stop was; 'unsure' when the stop's answer was lost. */
  desired: 'run' | 'stop' | 'unsure';
}
/** An entity of a client's model: its value, and the other value it may have when a change's outcome is unknown. */
interface Entity<V> {
  value: V | null;
  other?: V | null;
}

/** `unreached`: the agent's socket refused the connection (it is down): the request never got there. */
type Outcome =
  | { kind: 'ok'; body: unknown }
  | { kind: 'refused'; code: string; message: string }
  | { kind: 'unknown'; why: string }
  | { kind: 'unreached'; why: string };

export async function runClusterChaos(options: ClusterChaosOptions): Promise<ClusterChaosResult> {
  const say = options.say ?? (() => {});
  const random = prng(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const between = (low: number, high: number): number => Math.round(low + random() * (high - low));
  const result: ClusterChaosResult = {
    faults: 0,
    kills: 0,
    cuts: 0,
    pauses: 0,
    fault_kinds: {},
    acknowledged: 0,
    refused: 0,
    uncertain: 0,
    lost_acknowledged: 0,
    half_applied: 0,
    orphaned_objects: 0,
    missing_objects: 0,
    overcommits: 0,
    allocation_versions_checked: 0,
    tasks_submitted: 0,
    tasks_failed_over: 0,
    agents_seen_down: 0,
    tasks_running_twice: 0,
    tasks_not_running: 0,
    diverged: 0,
    unhealed: 0,
    seed: options.seed,
    problems: [],
    history: options.historyFile,
  };
  const started = Date.now();
  writeFileSync(options.historyFile, '');
  const record = (entry: Record<string, unknown>): void =>
    appendFileSync(options.historyFile, `${JSON.stringify({ t: Date.now() - started, ...entry })}\n`);
  const problem = (kind: Problem, line: string): void => {
    result[kind]++;
    result.problems.push(line);
    record({ problem: kind, detail: line });
    say(`PROBLEM ${kind}: ${line}`);
  };

  const mount = readMounts().find((m) => m.fsType === 'cgroup2')?.mountPoint;
  if (!mount) throw new Error("no cgroup2 hierarchy is mounted: nft cannot tell one agent's sockets apart to cut it off");
  const run = options.seed.toString(36);
  const prefix = `/sliced-chaos/${run}-${process.pid}/`;
  const table = `slicedchaos${process.pid}`;
  const work = mkdtempSync('/tmp/sliced-chaos-cluster-');
  chmodSync(work, 0o755);
  const locks = join(work, 'locks');
  mkdirSync(locks, { mode: 0o755 });
  const twiceFile = join(work, 'twice');
  writeFileSync(twiceFile, '');
  chmodSync(twiceFile, 0o666);
  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, `${run}-${'c'.repeat(32)}\n`, { mode: 0o600 });
  const groups = AGENTS.map((a) => join(mount, `${table}${a}`));
  const nft = (script: string): void => {
    const r = spawnSync('nft', ['-f', '-'], { input: `${script}\n`, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`nft: ${r.stderr.trim()} in:\n${script}`);
  };

  let etcd: EtcdCluster | undefined;
  const agents: TestDaemon[] = [];
  const ports: number[] = [];
  const nodeName = (i: number): string => `q${run.slice(0, 5)}${AGENTS[i]}`;
  const clients: Array<Promise<void>> = [];
  let stopping = false;
  let crashed = false;
  let sampler: { stop: () => Map<string, string[]> } | undefined;
  try {
    etcd = await EtcdCluster.start(3);
    nft(
      [
        `add table inet ${table}`,
        `add chain inet ${table} out { type filter hook output priority -20; policy accept; }`,
        `add chain inet ${table} in { type filter hook input priority -20; policy accept; }`,
      ].join('\n'),
    );
    for (let i = 0; i < AGENTS.length; i++) {
      mkdirSync(groups[i]!);
      ports.push(await freePort());
      const args = [
        ...['--cluster', etcd.endpoints.join(','), '--cluster-prefix', prefix, '--node-name', nodeName(i)],
        ...['--cluster-lease-ttl', String(LEASE_TTL_MS), '--user-prefix', `sl-q${AGENTS[i]}-`],
        ...['--peer-listen', `127.0.0.1:${ports[i]}`, '--peer-token-file', tokenFile, '--log-level', 'info'],
      ];
      agents.push(await TestDaemon.start(args, { cgroup: groups[i]! }));
    }
    const allUp = async (): Promise<boolean> => {
      if (!(await etcd!.healthy())) return false;
      for (const agent of agents) {
        const list = await call(agent.socket, 'GET', '/v1/nodes');
        if (list.kind !== 'ok') return false;
        const nodes = (list.body as { nodes: Array<{ name: string; status: string }> }).nodes;
        if (AGENTS.some((_, i) => nodes.find((n) => n.name === nodeName(i))?.status !== 'up')) return false;
      }
      return true;
    };
    await waitFor(allUp, 60_000, 'the three agents up');
    const node = (await agents[0]!.api.get<{ cpu: { capacity: number; systemReserve: number } }>('/v1/node')).cpu;
    // Reservations scale with the node (never a CPU count assumed): nine slices of two units fill it.
    const unit = Math.max(10, Math.floor((node.capacity - node.systemReserve) / 18));
    record({ setup: { agents: AGENTS.map((_, i) => nodeName(i)), endpoints: etcd.endpoints, prefix, unit, seed: options.seed } });

    // Each client's slice for its tasks: on every node, never deleted.
    const taskSlice = (x: number): string => `q${AGENTS[x]}t`;
    for (let x = 0; x < AGENTS.length; x++) {
      const created = await call(agents[x]!.socket, 'POST', '/v1/slices', { name: taskSlice(x), placement: { all: true } });
      if (created.kind !== 'ok') throw new Error(`cannot create ${taskSlice(x)}: ${JSON.stringify(created)}`);
    }

    const slices = AGENTS.map(() => new Map<string, Entity<SliceModel>>());
    const dirs = AGENTS.map(() => new Map<string, Entity<DirModel>>());
    const tasks = AGENTS.map(() => new Map<string, TaskModel>());

    /** One request, its outcome in the history; a yes or a no counts as acknowledged. */
    const request = async (x: number, what: string, method: string, path: string, body?: unknown): Promise<Outcome> => {
      const t0 = Date.now();
      const outcome = await call(agents[x]!.socket, method, path, body);
      record({ client: AGENTS[x], what, method, path, body, outcome: outcome.kind === 'ok' ? 'ok' : outcome, ms: Date.now() - t0 });
      if (outcome.kind === 'unknown') result.uncertain++;
      else if (outcome.kind !== 'unreached') {
        result.acknowledged++;
        if (outcome.kind === 'refused') result.refused++;
      }
      return outcome;
    };

    /** A change of one entity: `next` if it happens. A create refused as existing may be etcd applying a retried call. */
    const settle = <V>(entity: Entity<V>, next: V | null, outcome: Outcome, isCreate: boolean): void => {
      if (outcome.kind === 'ok') entity.value = next;
      else if (outcome.kind === 'unknown' || (isCreate && outcome.kind === 'refused' && outcome.code === 'EEXIST')) entity.other = next;
    };
    const certain = <V>(map: Map<string, Entity<V>>): Array<[string, V]> =>
      [...map]
        .filter((e): e is [string, Entity<V> & { value: V }] => e[1].value !== null && !('other' in e[1]))
        .map(([k, e]) => [k, e.value]);

    const step = async (x: number): Promise<void> => {
      const socketName = AGENTS[x]!;
      const live = certain(slices[x]!);
      const roll = random();
      if ((roll < 0.22 && live.length < 6) || (roll < 0.5 && live.length === 0)) {
        const name = `q${socketName}s${slices[x]!.size}`;
        const nodes = AGENTS.map((_, i) => nodeName(i))
          .filter(() => random() < 0.5)
          .sort();
        if (nodes.length === 0) nodes.push(nodeName(x));
        const next: SliceModel = { nodes, reservation: between(0, 2) * unit, shares: pick([50, 100, 400]) };
        const entity: Entity<SliceModel> = { value: null };
        slices[x]!.set(name, entity);
        const body = { name, cpu: { reservation: `${next.reservation}m`, shares: next.shares }, placement: { nodes } };
        settle(entity, next, await request(x, `create ${name}`, 'POST', '/v1/slices', body), true);
        return;
      }
      if (roll < 0.5) {
        const [name, current] = pick(live);
        const entity = slices[x]!.get(name)!;
        const r = random();
        if (r < 0.3) {
          settle(entity, null, await request(x, `delete ${name}`, 'DELETE', `/v1/slices/${name}`), false);
          return;
        }
        const next = r < 0.65 ? { ...current, shares: pick([50, 100, 200, 400]) } : { ...current, reservation: between(0, 3) * unit };
        const body = { cpu: { shares: next.shares, reservation: `${next.reservation}m` } };
        settle(entity, next, await request(x, `set ${name}`, 'PATCH', `/v1/slices/${name}`, body), false);
        return;
      }
      if (roll < 0.75) {
        const liveDirs = certain(dirs[x]!);
        if (liveDirs.length === 0 || (random() < 0.3 && liveDirs.length < 4)) {
          const name = `q${socketName}d${dirs[x]!.size}`;
          const entity: Entity<DirModel> = { value: null };
          dirs[x]!.set(name, entity);
          const outcome = await request(x, `mkdir ${name}`, 'POST', '/v1/tree/mkdir', { path: `/schedulers/${name}` });
          settle(entity, { handleAll: '0' }, outcome, true);
          return;
        }
        const [name, current] = pick(liveDirs);
        const entity = dirs[x]!.get(name)!;
        if (random() < 0.25) {
          settle(entity, null, await request(x, `rmdir ${name}`, 'POST', '/v1/tree/rmdir', { path: `/schedulers/${name}` }), false);
          return;
        }
        const handleAll = current.handleAll === '0' ? '1' : '0';
        const body = { path: `/schedulers/${name}/process_set/handle_all`, value: handleAll };
        settle(entity, { handleAll }, await request(x, `write ${name}`, 'POST', '/v1/tree/write', body), false);
        return;
      }
      const running = [...tasks[x]!.entries()].filter(([, t]) => t.desired === 'run');
      if (running.length < 3 && random() < 0.6) {
        const name = `q${socketName}k${tasks[x]!.size}`;
        const lock = join(locks, name);
        writeFileSync(lock, '', { mode: 0o644 });
        // flock exits 86 when another instance still holds the lock after 1 s (an instance being
        // killed lets go within milliseconds): this one writes its name and node to the file.
        const script = `flock -w 1 -E 86 ${lock} sleep 100000 || { [ $? -eq 86 ] && echo "${name} $SLICED_NODE" >> ${twiceFile}; }`;
        const body = { slice: taskSlice(x), name, command: ['/bin/sh', '-c', script], restart: 'always' };
        const outcome = await request(x, `run ${name}`, 'POST', '/v1/tasks', body);
        if (outcome.kind === 'ok') {
          tasks[x]!.set(name, { id: (outcome.body as TaskView).id, desired: 'run' });
          result.tasks_submitted++;
        } else if (outcome.kind === 'unknown') tasks[x]!.set(name, { id: '', desired: 'unsure' });
        return;
      }
      if (running.length === 0) return;
      const [name, task] = pick(running);
      const outcome = await request(x, `stop ${name}`, 'POST', `/v1/tasks/${task.id}/stop`);
      if (outcome.kind === 'ok') task.desired = 'stop';
      else if (outcome.kind === 'unknown') task.desired = 'unsure';
    };

    sampler = nodesPerTask(record);
    for (let x = 0; x < AGENTS.length; x++) {
      clients.push(
        (async () => {
          while (!stopping) {
            await step(x);
            await sleep(between(20, 150));
          }
        })(),
      );
    }

    /** The member, agent or members a fault aims at, applied; resolves to the healing. */
    const apply = async (fault: Fault): Promise<{ target: string; heal: () => Promise<void> }> => {
      const member = pick([0, 1, 2]);
      const x = pick([0, 1, 2]);
      switch (fault) {
        case 'kill-agent': {
          result.kills++;
          await agents[x]!.stop('SIGKILL');
          await sleep(between(200, LEASE_TTL_MS + 1500));
          return { target: nodeName(x), heal: () => agents[x]!.launch() };
        }
        case 'kill-member':
        case 'kill-leader': {
          const target = fault === 'kill-leader' ? ((await etcd!.leader()) ?? member) : member;
          result.kills++;
          await etcd!.kill(target);
          await sleep(between(300, 4000));
          return { target: `m${target}`, heal: async () => void (await etcd!.restart(target)) };
        }
        case 'cut-agent': {
          result.cuts++;
          const own = relative('/sys/fs/cgroup', groups[x]!);
          const others = ports.filter((_, i) => i !== x).join(', ');
          nft(
            [
              `add rule inet ${table} out socket cgroupv2 level 1 "${own}" tcp dport 2379 drop`,
              `add rule inet ${table} out socket cgroupv2 level 1 "${own}" tcp dport { ${others} } drop`,
              `add rule inet ${table} in tcp dport ${ports[x]} drop`,
            ].join('\n'),
          );
          await sleep(between(1000, LEASE_TTL_MS + 2000));
          return {
            target: nodeName(x),
            heal: async () => nft([`flush chain inet ${table} out`, `flush chain inet ${table} in`].join('\n')),
          };
        }
        case 'cut-leader':
        case 'cut-minority':
        case 'cut-majority': {
          result.cuts++;
          const first = fault === 'cut-leader' ? ((await etcd!.leader()) ?? member) : member;
          const cut = fault === 'cut-majority' ? [first, (first + 1) % 3] : [first];
          for (const i of cut) etcd!.isolate(i);
          await sleep(between(1000, 6000));
          return {
            target: cut.map((i) => `m${i}`).join(','),
            heal: async () => {
              for (const i of cut) etcd!.heal(i);
            },
          };
        }
        case 'pause-agent': {
          result.pauses++;
          process.kill(agents[x]!.pid!, 'SIGSTOP');
          await sleep(between(LEASE_TTL_MS + 500, LEASE_TTL_MS + 2500));
          return { target: nodeName(x), heal: async () => void process.kill(agents[x]!.pid!, 'SIGCONT') };
        }
        case 'pause-member': {
          result.pauses++;
          etcd!.pause(member);
          await sleep(between(1000, 5000));
          return { target: `m${member}`, heal: async () => etcd!.resume(member) };
        }
      }
    };

    const bag: Fault[] = [];
    for (let f = 1; f <= options.faults && !options.signal?.aborted; f++) {
      const dead = agents.findIndex((agent) => !alive(agent));
      if (dead !== -1) {
        problem(
          'unhealed',
          `agent ${nodeName(dead)} exited by itself before fault ${f}; the end of its log: ${agents[dead]!.log.slice(-1500)}`,
        );
        break;
      }
      // Drawn from a bag of all the kinds, shuffled: every nine faults hold each kind once.
      if (bag.length === 0) bag.push(...shuffle([...FAULTS], random));
      const fault = bag.pop()!;
      result.faults++;
      result.fault_kinds[fault] = (result.fault_kinds[fault] ?? 0) + 1;
      const t0 = Date.now();
      const { target, heal } = await apply(fault);
      const held = Date.now() - t0;
      // What an agent the fault spared saw of the target at the end of the fault (agents' faults).
      const seenBy = AGENTS.findIndex((_, i) => nodeName(i) !== target);
      let seen: string | undefined;
      if (fault.endsWith('-agent')) {
        const list = await call(agents[seenBy]!.socket, 'GET', '/v1/nodes');
        seen =
          list.kind === 'ok'
            ? (list.body as { nodes: Array<{ name: string; status: string }> }).nodes.find((n) => n.name === target)?.status
            : undefined;
        if (seen === 'down') result.agents_seen_down++;
      }
      const failed = await heal().then(
        () => null,
        (err: Error) => err.message.split('\n').slice(-5).join(' | '),
      );
      const healed = failed === null ? await waitFor(allUp, 60_000, '').catch(() => -1) : -1;
      record({ fault, target, held_ms: held, ...(seen ? { seen_by_others: seen } : {}), back_ms: healed });
      if (healed < 0) {
        problem('unhealed', `fault ${f} (${fault} of ${target}): ${failed ?? 'the cluster was not whole again within 60 s'}`);
        break;
      }
      if (f % 5 === 0 || f === options.faults)
        say(`fault ${f}: ${fault} of ${target}; ${result.acknowledged} acknowledged, ${result.problems.length} problems`);
      await sleep(between(300, 1500));
    }
    stopping = true;
    await Promise.all(clients);

    // ---- The checks, on the healed cluster.
    const catalogue = async (x: number): Promise<string | null> => {
      const list = await call(agents[x]!.socket, 'GET', '/v1/slices?cluster=true');
      if (list.kind !== 'ok') return null;
      return JSON.stringify((list.body as PlacementEntry[]).map((e) => [e.name, [...e.nodes].sort()]).sort());
    };
    const dump = async (x: number): Promise<string | null> => {
      const d = await call(agents[x]!.socket, 'GET', '/v1/tree/dump');
      return d.kind === 'ok' ? (d.body as { yaml: string }).yaml : null;
    };
    let views = new Map<string, SliceView>();
    const converged = async (): Promise<boolean> => {
      const cats = await Promise.all(AGENTS.map((_, x) => catalogue(x)));
      const dumps = await Promise.all(AGENTS.map((_, x) => dump(x)));
      if (cats.some((c) => c === null || c !== cats[0]) || dumps.some((d) => d === null || d !== dumps[0])) return false;
      views = new Map();
      for (const [name, nodes] of JSON.parse(cats[0]!) as Array<[string, string[]]>) {
        const holder = AGENTS.findIndex((_, i) => nodes.includes(nodeName(i)));
        const view = await call(agents[holder]!.socket, 'GET', `/v1/slices/${name}`);
        if (view.kind !== 'ok') return false;
        const slice = view.body as SliceView;
        if (!slice.cluster?.slivers.every((s) => s.state === 'ready')) return false;
        views.set(name, slice);
      }
      return true;
    };
    if ((await waitFor(converged, 60_000, '').catch(() => -1)) < 0) {
      const cats = await Promise.all(AGENTS.map((_, x) => catalogue(x)));
      const dumps = await Promise.all(AGENTS.map((_, x) => dump(x)));
      problem('diverged', `60 s after healing the agents still differ: catalogues ${JSON.stringify(cats)}; trees ${JSON.stringify(dumps)}`);
    }

    // Slices: each client's equals its model; nobody's slice is missing or extra.
    for (let x = 0; x < AGENTS.length; x++) {
      for (const [name, entity] of slices[x]!) {
        const view = views.get(name);
        const seen: SliceModel | null = view
          ? { nodes: [...view.cluster!.nodes].sort(), reservation: view.cpu.reservation, shares: view.cpu.shares }
          : null;
        compare(`slice ${name}`, entity, seen);
      }
    }
    const known = new Set([...slices.flatMap((m) => [...m.keys()]), ...AGENTS.map((_, x) => taskSlice(x))]);
    for (const name of views.keys())
      if (!known.has(name)) problem('orphaned_objects', `slice ${name} is in the catalogue but no client made it`);

    // Tree: the directories of every client, read on every agent.
    const listing = await agents[0]!.api.get<Array<{ name: string }>>('/v1/tree/ls?path=%2Fschedulers');
    const present = new Set(listing.map((e) => e.name));
    for (let x = 0; x < AGENTS.length; x++) {
      for (const [name, entity] of dirs[x]!) {
        let seen: DirModel | null = null;
        if (present.has(name)) {
          const path = encodeURIComponent(`/schedulers/${name}/process_set/handle_all`);
          seen = { handleAll: (await agents[x]!.api.get<{ value: string }>(`/v1/tree/cat?path=${path}`)).value.trim() };
        }
        compare(`directory /schedulers/${name}`, entity, seen);
      }
    }
    for (const name of present)
      if (/^q[abc]d\d+$/.test(name) && !dirs.some((d) => d.has(name)))
        problem('orphaned_objects', `/schedulers/${name} exists but no client made it`);

    // Kernel: each node's groups are exactly those of the slices placed on it.
    for (let x = 0; x < AGENTS.length; x++) {
      const status = await agents[x]!.api.get<{ slices: SliceView[] }>('/v1/status');
      const expected = [...views.values()].filter((v) => v.cluster!.nodes.includes(nodeName(x))).map((v) => v.name);
      const local = status.slices.map((s) => s.name);
      const differ = (a: string[], b: string[]): string[] => a.filter((n) => !b.includes(n));
      if (differ(local, expected).length > 0)
        problem('orphaned_objects', `${nodeName(x)} runs slices not placed on it: ${differ(local, expected).join(' ')}`);
      if (differ(expected, local).length > 0)
        problem('missing_objects', `${nodeName(x)} lacks slices placed on it: ${differ(expected, local).join(' ')}`);
      const kernel = KernelGroups.fromNode(await agents[x]!.api.get('/v1/node'));
      const wanted = Object.keys(kernel.roots)
        .flatMap((h) => status.slices.map((s) => `${h}:${s.cgroup}`))
        .sort();
      const found = kernel.allGroups();
      for (const g of differ(found, wanted)) problem('orphaned_objects', `${nodeName(x)}: group ${g} belongs to no slice of its state`);
      for (const g of differ(wanted, found)) problem('missing_objects', `${nodeName(x)}: group ${g} of its state is not in the kernel`);
      // And exactly the users made for them (the node's user prefix).
      const prefix = `sl-q${AGENTS[x]}-`;
      const users = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .map((l) => l.split(':')[0]!)
        .filter((u) => u.startsWith(prefix));
      const theirs = status.slices.map((s) => s.user).filter((u) => u.startsWith(prefix));
      for (const u of differ(users, theirs)) problem('orphaned_objects', `${nodeName(x)}: user ${u} belongs to no slice of its state`);
      for (const u of differ(theirs, users)) problem('missing_objects', `${nodeName(x)}: user ${u} of its state does not exist`);
    }

    // Tasks: acknowledged ones exist; those to run run once, the stopped ones do not.
    const all = tasks.flatMap((m) => [...m.entries()]).filter(([, t]) => t.id !== '');
    const taskState = async (): Promise<string[]> => {
      const wrong: string[] = [];
      const procs = taskProcesses(new Set(all.map(([, t]) => t.id)));
      for (const [name, t] of all) {
        const view = await call(agents[0]!.socket, 'GET', `/v1/tasks/${t.id}`);
        const instances = procs.get(t.id)?.length ?? 0;
        if (view.kind !== 'ok') wrong.push(`${name} (${t.id}) is not found: ${JSON.stringify(view)}`);
        else if (t.desired === 'run' && ((view.body as TaskView).state !== 'running' || instances !== 1))
          wrong.push(
            `${name} (${t.id}) should run: it is ${(view.body as TaskView).state} on ${(view.body as TaskView).node}, ${instances} instances`,
          );
        else if (t.desired === 'stop' && instances > 0) wrong.push(`${name} (${t.id}) was stopped and runs`);
      }
      return wrong;
    };
    let wrong: string[] = [];
    await waitFor(async () => (wrong = await taskState()).length === 0, 60_000, '').catch(() => -1);
    for (const line of wrong) problem(line.includes('should run') ? 'tasks_not_running' : 'lost_acknowledged', `task ${line}`);
    for (const line of readFileSync(twiceFile, 'utf8').split('\n').filter(Boolean)) {
      problem('tasks_running_twice', `task ${line.split(' ')[0]} started on ${line.split(' ')[1]} while another instance held its lock`);
    }
    for (const [id, nodes] of sampler.stop()) problem('tasks_running_twice', `task ${id} had processes on ${nodes.join(' and ')} at once`);

    await checkAllocations(etcd, prefix, result, problem, record);
    const left = await call(agents[0]!.socket, 'GET', '/v1/tasks');
    for (const t of left.kind === 'ok' ? (left.body as { tasks: TaskView[] }).tasks : []) {
      if (t.generation > 1) result.tasks_failed_over++;
      if (t.state === 'running' || t.state === 'pending') await call(agents[0]!.socket, 'POST', `/v1/tasks/${t.id}/stop`);
    }
    record({ result: { ...result, problems: result.problems.length } });
    return result;

    function compare<V>(what: string, entity: Entity<V>, seen: V | null): void {
      const options = [entity.value, ...('other' in entity ? [entity.other!] : [])].map((v) => JSON.stringify(v));
      if (options.includes(JSON.stringify(seen))) return;
      if ('other' in entity) problem('half_applied', `${what} is ${JSON.stringify(seen)}; expected ${options.join(' or ')}`);
      else problem('lost_acknowledged', `${what} is ${JSON.stringify(seen)}; acknowledged as ${options[0]}`);
    }
  } catch (err) {
    record({ crash: (err as Error).stack ?? String(err) });
    crashed = true;
    throw err;
  } finally {
    stopping = true;
    sampler?.stop();
    // The agents' own logs, next to the history, to read a failure by.
    if (crashed || result.problems.length > 0) {
      agents.forEach((agent, i) => writeFileSync(`${options.historyFile}.${nodeName(i)}.log`, agent.log));
      say(`the agents' logs are in ${options.historyFile}.<node>.log`);
    }
    await Promise.allSettled(clients);
    for (const agent of agents) {
      if (alive(agent)) process.kill(agent.pid!, 'SIGCONT');
      await agent.destroy().catch((err: Error) => problem('orphaned_objects', `sliced --cleanup failed: ${err.message}`));
    }
    spawnSync('nft', ['delete', 'table', 'inet', table], { stdio: 'ignore' });
    await etcd?.destroy();
    // The fence watchdogs end within 0.2 s of their file going; then the groups are empty.
    for (const group of groups) await waitFor(async () => tryRemove(group), 10_000, `${group} to empty`).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

/** Every version of every allocation record, from etcd's history, reserves no more than its node's capacity beyond the reserve. */
async function checkAllocations(
  etcd: EtcdCluster,
  prefix: string,
  result: ClusterChaosResult,
  problem: (kind: Problem, line: string) => void,
  record: (entry: Record<string, unknown>) => void,
): Promise<void> {
  const client = new Etcd3({ hosts: etcd.endpoints, dialTimeout: 2000 });
  try {
    const end = `${prefix}chaos-history-end`;
    await client.put(end).value('1');
    const watcher = await client.watch().prefix(prefix).startRevision('1').create();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the history did not replay within 60 s')), 60_000);
      watcher.on('put', (kv) => {
        const key = kv.key.toString();
        if (key === end) {
          clearTimeout(timer);
          resolve();
          return;
        }
        if (!key.endsWith('/alloc')) return;
        const alloc = JSON.parse(kv.value.toString()) as {
          capacity: { cpuMillicores: number; systemReserveMillicores: number };
          summary: { cpuReservedMillicores: number };
        };
        result.allocation_versions_checked++;
        const budget = alloc.capacity.cpuMillicores - alloc.capacity.systemReserveMillicores;
        if (alloc.summary.cpuReservedMillicores > budget) {
          problem(
            'overcommits',
            `${key.slice(prefix.length)} at revision ${kv.mod_revision} reserves ${alloc.summary.cpuReservedMillicores}m of ${budget}m`,
          );
        }
      });
      watcher.on('error', reject);
    });
    await watcher.cancel();
    record({ check: 'allocation history', versions: result.allocation_versions_checked });
  } finally {
    client.close();
  }
}

async function call(socket: string, method: string, path: string, body?: unknown): Promise<Outcome> {
  const outcome = await rawCall(socket, { method, path, body, timeoutMs: CALL_TIMEOUT_MS });
  if (outcome.kind === 'lost') {
    const unreached = /^connect (ENOENT|ECONNREFUSED)/.test(outcome.error);
    return { kind: unreached ? 'unreached' : 'unknown', why: outcome.error };
  }
  if (outcome.status < 300 && outcome.json !== undefined) return { kind: 'ok', body: outcome.json };
  const error = errorOf(outcome);
  if (outcome.status >= 500 || error === null)
    return { kind: 'unknown', why: `${outcome.status} ${error?.code ?? outcome.text.slice(0, 100)}` };
  return { kind: 'refused', code: error.code, message: error.message };
}

/**
 * Every 50 ms, the nodes each task has living processes on (SLICED_TASK_ID and SLICED_NODE
 * in their environment; zombies run nothing and are left out): stop() gives the tasks seen
 * on two nodes at once, with the nodes.
 */
function nodesPerTask(record: (entry: Record<string, unknown>) => void): { stop: () => Map<string, string[]> } {
  const twice = new Map<string, string[]>();
  const timer = setInterval(() => {
    const found = new Map<string, Array<{ node: string; pid: number; stat: string; cmdline: string }>>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const rest = stat.slice(stat.lastIndexOf(')') + 2);
        if (rest.startsWith('Z')) continue;
        const env = readFileSync(`/proc/${entry}/environ`, 'latin1');
        const id = /(?:^|\0)SLICED_TASK_ID=([0-9a-f]{12})(?:\0|$)/.exec(env)?.[1];
        const node = /(?:^|\0)SLICED_NODE=([^\0]*)/.exec(env)?.[1];
        if (!id || !node) continue;
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1').replaceAll('\0', ' ').slice(0, 80);
        found.set(id, [...(found.get(id) ?? []), { node, pid: Number(entry), stat: rest.split(' ').slice(0, 5).join(' '), cmdline }]);
      } catch {
        // Gone meanwhile.
      }
    }
    for (const [id, processes] of found) {
      const nodes = [...new Set(processes.map((p) => p.node))];
      if (nodes.length < 2) continue;
      // Every sighting goes into the history (state, parent, group of each process), the first into the result.
      record({ twice: id, processes });
      if (!twice.has(id)) twice.set(id, nodes);
    }
  }, 50);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      return twice;
    },
  };
}

/** Whether the agent's process runs (a frozen one does). */
function alive(agent: TestDaemon): boolean {
  if (agent.pid === undefined) return false;
  try {
    process.kill(agent.pid, 0);
    return readFileSync(`/proc/${agent.pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

function shuffle<T>(list: T[], random: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

/** Poll until `check` holds; resolves to the time it took, rejects after `timeoutMs`. */
async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
  return Date.now() - t0;
}

function tryRemove(group: string): Promise<boolean> {
  try {
    removeEmptyGroups(group);
    return Promise.resolve(true);
  } catch {
    return Promise.resolve(false);
  }
}
