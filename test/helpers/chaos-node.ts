/**
 * Crash consistency of one node (issue 16, part 1), in the spirit of etcd's functional tester:
 * a client drives random changes through the admin API (slices created, changed, moved
 * between domains and deleted; domains; port reservations; scheduler-tree directories and
 * attributes) and the services directory (vsys services and ACLs), while the daemon is killed
 * with SIGKILL at random moments. A model keeps what was acknowledged; a change in flight at
 * the kill may have happened or not, but never half. After every restart the checks are:
 *
 *   - store: every entity equals the model (acknowledged) or one of its two possible values
 *     (in flight), as a whole: a slice created with a memory limit and a network exists with
 *     both or not at all;
 *   - kernel: the groups under the daemon's root are exactly its slices and domains, the
 *     sl-* users exactly its slices' users, the namespaces exactly its networked slices', the
 *     vsys directories exactly its slices' with the FIFOs their ACLs grant (nothing orphaned,
 *     nothing missing);
 *   - counters: the throttling counters of the slices that keep a CPU burner running (and
 *     move between domains) and every slice's packet account never go back;
 *   - the burners are still in their slices (adopted, not lost).
 *
 * Everything is decided by a seeded generator: the same seed gives the same operations and
 * kill delays (what the daemon had finished by the kill still varies with timing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SLICECTL, TestDaemon } from './daemon.js';
import { KernelGroups } from './cgroups.js';
import { prng } from './prng.js';
import { errorOf, rawCall } from './raw-api.js';
import { installService, removeService } from './vsys-services.js';
import type { DomainView, SliceView } from '../../src/wire/slices.js';

export interface NodeChaosOptions {
  kills: number;
  seed: number;
  /** Progress lines (a kill's round, a problem found). */
  say?: (line: string) => void;
  /** Stops after the round under way (the daemon and the burners are still removed). */
  signal?: AbortSignal;
}

export interface NodeChaosResult {
  kills: number;
  /** Changes the daemon acknowledged (refusals included: they acknowledge "nothing changed"). */
  acknowledged: number;
  refused: number;
  /** Changes in flight at a kill: each was found either done or not done. */
  in_flight_at_kill: number;
  lost_acknowledged: number;
  half_applied: number;
  orphaned_objects: number;
  missing_objects: number;
  counters_went_back: number;
  burners_lost: number;
  /** Answers 5xx: the daemon failed instead of doing or refusing. */
  server_errors: number;
  /** The daemon did not start again after a kill (the run stops there), or its cleanup failed. */
  failed_starts: number;
  overcommits: number;
  tasks_running_twice: number;
  seed: number;
  /** Every problem, one line each, naming the round and what differed. */
  problems: string[];
  restart_ms_p50: number;
  /** Starts that found a move cut short by the kill (two groups of one slice) and repaired it. */
  moves_repaired: number;
}

const SLICES = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'];
/** Slices never deleted: a CPU burner runs in each, and they move between domains. */
const KEEP = ['k0', 'k1'];
const DOMAINS = ['d0', 'd1'];
const SCHEDULERS = ['x0', 'x1'];
const SERVICES = ['s0', 's1'];
const PORTS = [1000, 1001, 1002];
const USER_PREFIX = 'sl-x-';

interface SliceState {
  cpu: { reservation: number; limit: number | null; shares: number };
  memory: { limit: number | null };
  domain: string | null;
  net: boolean;
  reservations: string[];
}
interface DomainState {
  reservation: number;
}
interface SchedulerState {
  handleAll: string;
}
/** A value of the model: null is "does not exist". */
type Value = SliceState | DomainState | SchedulerState | null;

interface Entity {
  value: Value;
  /** Set while a change is in flight, and after a kill until the next check: the value if it happened. */
  pending?: Value;
}

type Outcome =
  { kind: 'ok'; body: unknown } | { kind: 'refused'; status: number; code: string; message: string } | { kind: 'lost'; error: string };

async function call(socket: string, method: string, path: string, body?: unknown): Promise<Outcome> {
  const outcome = await rawCall(socket, { method, path, body });
  if (outcome.kind === 'lost') return outcome;
  if (outcome.json === undefined) return { kind: 'lost', error: `half an answer: ${outcome.text.slice(0, 80)}` };
  if (outcome.status < 400) return { kind: 'ok', body: outcome.json };
  const error = errorOf(outcome);
  return { kind: 'refused', status: outcome.status, code: error?.code ?? '?', message: error?.message ?? outcome.text.slice(0, 200) };
}

const canonical = (v: Value): string => JSON.stringify(v);

function sliceState(view: SliceView): SliceState {
  return {
    cpu: { reservation: view.cpu.reservation, limit: view.cpu.limit, shares: view.cpu.shares },
    memory: { limit: view.memory.limit },
    domain: view.domain,
    net: view.net !== null,
    reservations: (view.net?.reservations ?? []).map((r) => `${r.protocol}/${r.address}/${r.port}`).sort(),
  };
}

/** A change: the entities it holds (no other change on them runs meanwhile), the request, and its effect. */
interface Change {
  what: string;
  locks: string[];
  method: string;
  path: string;
  body?: unknown;
  /** The entities' values if it happens (computed from the model when it is issued). */
  effect: Map<string, Value>;
}

export async function runNodeChaos(options: NodeChaosOptions): Promise<NodeChaosResult> {
  const say = options.say ?? (() => {});
  const random = prng(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const result: NodeChaosResult = {
    kills: 0,
    acknowledged: 0,
    refused: 0,
    in_flight_at_kill: 0,
    lost_acknowledged: 0,
    half_applied: 0,
    orphaned_objects: 0,
    missing_objects: 0,
    counters_went_back: 0,
    burners_lost: 0,
    server_errors: 0,
    failed_starts: 0,
    overcommits: 0,
    tasks_running_twice: 0,
    seed: options.seed,
    problems: [],
    restart_ms_p50: 0,
    moves_repaired: 0,
  };
  let round = 0;
  const problem = (
    kind:
      | 'lost_acknowledged'
      | 'half_applied'
      | 'orphaned_objects'
      | 'missing_objects'
      | 'counters_went_back'
      | 'burners_lost'
      | 'server_errors'
      | 'failed_starts',
    line: string,
  ): void => {
    result[kind]++;
    result.problems.push(`round ${round}: ${line}`);
    say(`PROBLEM round ${round}: ${line}`);
  };

  const daemon = await TestDaemon.start(['--user-prefix', USER_PREFIX, '--log-level', 'warn']);
  const servicesDir = join(daemon.stateDir, 'vsys');
  const vsysRoot = join(daemon.runDir, 'vsys');
  const burners: ChildProcess[] = [];
  const model = new Map<string, Entity>();
  const services = new Map<string, string[] | null>(SERVICES.map((s) => [s, null]));
  const counters = new Map<string, number>();
  const restartMs: number[] = [];
  try {
    const node = await daemon.api.get<{ cpu: { capacity: number } }>('/v1/node');
    // Reservations scale with the node (never a CPU count assumed): all of them fit with room to spare.
    const unit = Math.max(10, Math.floor(node.cpu.capacity / 80));
    for (const name of [...SLICES, ...KEEP]) model.set(`slice:${name}`, { value: null });
    for (const name of DOMAINS) model.set(`domain:${name}`, { value: null });
    for (const name of SCHEDULERS) model.set(`tree:${name}`, { value: null });
    const service = (n: number): string => daemon.net.pool4.replace(/\.0\/24$/, `.${200 + n}`);

    // The slices that keep a burner: capped at 2 units so that their throttling counters grow.
    for (const name of KEEP) {
      const created = await call(daemon.socket, 'POST', '/v1/slices', { name, cpu: { limit: `${2 * unit}m` } });
      if (created.kind !== 'ok') throw new Error(`cannot create ${name}: ${JSON.stringify(created)}`);
      model.set(`slice:${name}`, { value: sliceState(created.body as SliceView) });
      const burner = spawn(
        process.execPath,
        [SLICECTL, '--socket', daemon.socket, 'exec', '--slice', name, '--', '/bin/sh', '-c', 'while :; do :; done'],
        {
          stdio: 'ignore',
        },
      );
      burners.push(burner);
    }

    // The burners are in their slices before the first kill (an exec cut off by a kill never starts).
    for (let waited = 0; ; waited += 100) {
      const views = (await daemon.api.get<{ slices: SliceView[] }>('/v1/status')).slices;
      if (KEEP.every((k) => (views.find((v) => v.name === k)?.live?.procs ?? 0) >= 1)) break;
      if (waited > 20_000) throw new Error(`the burners did not start in ${KEEP.join(', ')} within 20 s`);
      await sleep(100);
    }
    // Scheduler directories the chaos does not touch (the defaults') must stay as they are.
    const untouched = (entries: Array<{ name: string }>): string =>
      JSON.stringify(entries.map((e) => e.name).filter((n) => !SCHEDULERS.includes(n)));
    const otherSchedulers = untouched(await daemon.api.get<Array<{ name: string }>>('/v1/tree/ls?path=%2Fschedulers'));

    const slices = (): string[] => [...SLICES, ...KEEP];
    const valueOf = (key: string): Value => model.get(key)!.value;

    /** A random change on entities no change in flight holds, or null when none fits now. */
    const nextChange = (held: Set<string>): Change | null => {
      const free = (keys: string[]): boolean => keys.every((k) => !held.has(k));
      for (let attempt = 0; attempt < 10; attempt++) {
        const kind = random();
        if (kind < 0.45) {
          const name = pick(random() < 0.2 ? KEEP : SLICES);
          const key = `slice:${name}`;
          const current = valueOf(key) as SliceState | null;
          if (current === null) {
            if (KEEP.includes(name) || !free([key])) continue;
            const state: SliceState = {
              cpu: { reservation: Math.floor(random() * 3) * unit, limit: random() < 0.3 ? 8 * unit : null, shares: pick([50, 100, 400]) },
              memory: { limit: random() < 0.5 ? pick([64, 128]) * 1024 ** 2 : null },
              domain: null,
              net: random() < 0.4,
              reservations: [],
            };
            const body = {
              name,
              cpu: {
                reservation: `${state.cpu.reservation}m`,
                shares: state.cpu.shares,
                ...(state.cpu.limit ? { limit: `${state.cpu.limit}m` } : {}),
              },
              ...(state.memory.limit ? { memory: { limit: `${state.memory.limit / 1024 ** 2}M` } } : {}),
              ...(state.net ? { net: true } : {}),
            };
            return { what: `create ${name}`, locks: [key], method: 'POST', path: '/v1/slices', body, effect: new Map([[key, state]]) };
          }
          if (!free([key])) continue;
          const roll = random();
          if (roll < 0.3 && !KEEP.includes(name)) {
            const touched = current.domain ? [`domain:${current.domain}`] : [];
            if (!free(touched)) continue;
            return {
              what: `delete ${name}`,
              locks: [key, ...touched],
              method: 'DELETE',
              path: `/v1/slices/${name}`,
              effect: new Map([[key, null]]),
            };
          }
          if (roll < 0.55) {
            const shares = pick([50, 100, 200, 400]);
            const next = { ...current, cpu: { ...current.cpu, shares } };
            return {
              what: `set ${name} shares ${shares}`,
              locks: [key],
              method: 'PATCH',
              path: `/v1/slices/${name}`,
              body: { cpu: { shares } },
              effect: new Map([[key, next]]),
            };
          }
          if (roll < 0.7) {
            const limit = random() < 0.3 ? null : pick([64, 96, 128]) * 1024 ** 2;
            const next = { ...current, memory: { limit } };
            const body = { memory: { limit: limit === null ? 'none' : `${limit / 1024 ** 2}M` } };
            return {
              what: `set ${name} memory ${limit}`,
              locks: [key],
              method: 'PATCH',
              path: `/v1/slices/${name}`,
              body,
              effect: new Map([[key, next]]),
            };
          }
          if (roll < 0.88) {
            // Into a domain, or out to the node.
            const target = random() < 0.35 ? null : pick(DOMAINS);
            if (target === current.domain) continue;
            const touched = [current.domain, target].filter((d): d is string => d !== null).map((d) => `domain:${d}`);
            if (!free(touched)) continue;
            const next = { ...current, domain: target };
            return target === null
              ? {
                  what: `move ${name} out of ${current.domain}`,
                  locks: [key, ...touched],
                  method: 'DELETE',
                  path: `/v1/domains/${current.domain}/members/${name}`,
                  effect: new Map([[key, next]]),
                }
              : {
                  what: `move ${name} into ${target}`,
                  locks: [key, ...touched],
                  method: 'POST',
                  path: `/v1/domains/${target}/members`,
                  body: { member: name },
                  effect: new Map([[key, next]]),
                };
          }
          if (!current.net) continue;
          // A port reservation on the slice's service address, or its release.
          const port = pick(PORTS);
          const address = service(SLICES.indexOf(name) + 1);
          const id = `udp/${address}/${port}`;
          if (current.reservations.includes(id)) {
            const next = { ...current, reservations: current.reservations.filter((r) => r !== id) };
            return {
              what: `release ${id} of ${name}`,
              locks: [key],
              method: 'DELETE',
              path: `/v1/net/reservations/udp/${address}/${port}`,
              effect: new Map([[key, next]]),
            };
          }
          const next = { ...current, reservations: [...current.reservations, id].sort() };
          return {
            what: `reserve ${id} for ${name}`,
            locks: [key],
            method: 'POST',
            path: '/v1/net/reservations',
            body: { slice: name, address, protocol: 'udp', port },
            effect: new Map([[key, next]]),
          };
        }
        if (kind < 0.65) {
          const name = pick(DOMAINS);
          const key = `domain:${name}`;
          if (!free([key])) continue;
          const current = valueOf(key);
          if (current === null) {
            const reservation = 4 * unit;
            return {
              what: `create domain ${name}`,
              locks: [key],
              method: 'POST',
              path: '/v1/domains',
              body: { name, cpu: { reservation: `${reservation}m` } },
              effect: new Map([[key, { reservation }]]),
            };
          }
          // Refused while it has members (ENOTEMPTY): a refusal changes nothing.
          return {
            what: `delete domain ${name}`,
            locks: [key],
            method: 'DELETE',
            path: `/v1/domains/${name}`,
            effect: new Map([[key, null]]),
          };
        }
        const name = pick(SCHEDULERS);
        const key = `tree:${name}`;
        if (!free([key])) continue;
        const current = valueOf(key) as SchedulerState | null;
        const path = `/schedulers/${name}`;
        if (current === null)
          return {
            what: `mkdir ${path}`,
            locks: [key],
            method: 'POST',
            path: '/v1/tree/mkdir',
            body: { path },
            effect: new Map([[key, { handleAll: '0' }]]),
          };
        if (random() < 0.3)
          return {
            what: `rmdir ${path}`,
            locks: [key],
            method: 'POST',
            path: '/v1/tree/rmdir',
            body: { path },
            effect: new Map([[key, null]]),
          };
        const handleAll = current.handleAll === '0' ? '1' : '0';
        return {
          what: `write ${path}/process_set/handle_all ${handleAll}`,
          locks: [key],
          method: 'POST',
          path: '/v1/tree/write',
          body: { path: `${path}/process_set/handle_all`, value: handleAll },
          effect: new Map([[key, { handleAll }]]),
        };
      }
      return null;
    };

    /** vsys: a service script and its ACL written (atomically, by rename) or removed; the daemon picks it up by itself. */
    const changeService = (): void => {
      const name = pick(SERVICES);
      if (services.get(name) !== null && random() < 0.4) {
        removeService(servicesDir, name);
        services.set(name, null);
        return;
      }
      const allowed = slices().filter(() => random() < 0.5);
      installService(servicesDir, name, '#!/bin/sh\ncat\n', allowed);
      services.set(name, allowed);
    };

    const drive = async (): Promise<void> => {
      const held = new Set<string>();
      const flight = new Set<Promise<void>>();
      const killAt = Date.now() + 20 + random() * 400;
      const issue = (change: Change): void => {
        for (const k of change.locks) held.add(k);
        for (const [k, v] of change.effect) model.get(k)!.pending = v;
        const p = call(daemon.socket, change.method, change.path, change.body).then((outcome) => {
          if (outcome.kind === 'lost') return; // in flight at the kill: stays pending until the check
          for (const [k, v] of change.effect) {
            const entity = model.get(k)!;
            delete entity.pending;
            if (outcome.kind === 'ok') entity.value = v;
          }
          result.acknowledged++;
          if (outcome.kind === 'refused') {
            result.refused++;
            if (outcome.status >= 500)
              problem('server_errors', `${change.what}: the daemon failed (${outcome.status} ${outcome.code}): ${outcome.message}`);
          }
          for (const k of change.locks) held.delete(k);
          flight.delete(p);
        });
        flight.add(p);
      };
      while (Date.now() < killAt) {
        if (random() < 0.05) changeService();
        while (flight.size < 3) {
          const change = nextChange(held);
          if (change === null) break;
          issue(change);
        }
        await Promise.race([...flight, sleep(Math.max(0, killAt - Date.now()))]);
      }
      await daemon.stop('SIGKILL');
      result.kills++;
      await Promise.all(flight); // answered or cut off by the kill
    };

    const check = async (): Promise<void> => {
      const status = await daemon.api.get<{ slices: SliceView[]; domains: DomainView[] }>('/v1/status');
      const seen = new Map<string, Value>();
      for (const view of status.slices) seen.set(`slice:${view.name}`, sliceState(view));
      for (const view of status.domains) seen.set(`domain:${view.name}`, { reservation: view.cpu.reservation });
      const schedulers = await daemon.api.get<Array<{ name: string }>>('/v1/tree/ls?path=%2Fschedulers');
      if (untouched(schedulers) !== otherSchedulers)
        problem('lost_acknowledged', `the schedulers the run does not touch changed: ${untouched(schedulers)}, were ${otherSchedulers}`);
      for (const { name } of schedulers.filter((e) => SCHEDULERS.includes(e.name))) {
        const text = await daemon.api.get<{ value: string }>(
          `/v1/tree/cat?path=${encodeURIComponent(`/schedulers/${name}/process_set/handle_all`)}`,
        );
        seen.set(`tree:${name}`, { handleAll: text.value.trim() });
      }
      for (const key of seen.keys()) if (!model.has(key)) problem('orphaned_objects', `${key} exists but no change made it`);
      for (const [key, entity] of model) {
        const now = seen.get(key) ?? null;
        const options = [entity.value, ...('pending' in entity ? [entity.pending!] : [])].map(canonical);
        if (!options.includes(canonical(now))) {
          const kind = 'pending' in entity ? 'half_applied' : 'lost_acknowledged';
          problem(kind, `${key} is ${canonical(now)}; expected ${options.join(' or ')}`);
        }
        if ('pending' in entity) result.in_flight_at_kill++;
        entity.value = now;
        delete entity.pending;
      }
      await checkKernel(status);
      await checkCounters(status);
    };

    /** The kernel equals the store; the daemon may still be finishing its start, so this waits a little for it. */
    const checkKernel = async (status: { slices: SliceView[]; domains: DomainView[] }): Promise<void> => {
      const groups = KernelGroups.fromNode(await daemon.api.get('/v1/node'));
      const expected = {
        groups: Object.keys(groups.roots)
          .flatMap((h) => [...status.slices.map((s) => s.cgroup), ...status.domains.map((d) => d.cgroup)].map((g) => `${h}:${g}`))
          .sort(),
        users: status.slices.map((s) => `${USER_PREFIX}${s.name}`).sort(),
        netns: status.slices
          .filter((s) => s.net?.netns)
          .map((s) => basename(s.net!.netns!))
          .sort(),
        vsys: status.slices
          .map(
            (s) =>
              `${s.name}:${SERVICES.filter((svc) => services.get(svc)?.includes(s.name))
                .flatMap((svc) => [`${svc}.in`, `${svc}.out`])
                .join(',')}`,
          )
          .sort(),
      };
      let found = expected;
      for (let attempt = 0; attempt < 40; attempt++) {
        found = {
          groups: groups.allGroups(),
          users: readFileSync('/etc/passwd', 'utf8')
            .split('\n')
            .map((l) => l.split(':')[0]!)
            .filter((n) => n.startsWith(USER_PREFIX))
            .sort(),
          netns: (existsSync('/run/netns') ? readdirSync('/run/netns') : []).filter((n) => n.startsWith(`sliced${daemon.net.tag}-`)).sort(),
          vsys: (existsSync(vsysRoot) ? readdirSync(vsysRoot) : [])
            .filter((d) => !d.startsWith('.'))
            .map((d) => `${d}:${fifos(join(vsysRoot, d)).join(',')}`)
            .sort(),
        };
        if (JSON.stringify(found) === JSON.stringify(expected)) return;
        await sleep(100);
      }
      for (const what of ['groups', 'users', 'netns', 'vsys'] as const) {
        const extra = found[what].filter((o) => !expected[what].includes(o));
        const missing = expected[what].filter((o) => !found[what].includes(o));
        if (extra.length > 0) problem('orphaned_objects', `${what} in the kernel that the store does not have: ${extra.join(' ')}`);
        if (missing.length > 0) problem('missing_objects', `${what} the store has and the kernel does not: ${missing.join(' ')}`);
      }
      if (JSON.stringify(found.vsys) !== JSON.stringify(expected.vsys)) {
        // What the daemon offers and what the services directory holds, to read the failure by.
        const acls = SERVICES.map((svc) => {
          const file = join(servicesDir, `${svc}.acl`);
          return `${svc}${existsSync(join(servicesDir, svc)) ? '' : ' (no script)'}: ${existsSync(file) ? JSON.stringify(readFileSync(file, 'utf8')) : 'no ACL'}`;
        });
        result.problems.push(
          `round ${round}: services directory: ${acls.join('; ')}; the daemon offers ${JSON.stringify(await daemon.api.get('/v1/vsys/services'))}`,
        );
      }
    };

    const checkCounters = async (status: { slices: SliceView[] }): Promise<void> => {
      const figures = new Map<string, number>();
      for (const view of status.slices) {
        if (!KEEP.includes(view.name) || !view.live) continue;
        figures.set(`${view.name} CPU seconds`, view.live.cpuSeconds);
        figures.set(`${view.name} throttled periods`, view.live.throttledPeriods);
        figures.set(`${view.name} throttled seconds`, view.live.throttledSeconds);
        if (view.live.procs < 1) problem('burners_lost', `${view.name} has no process; its burner was lost`);
      }
      const accounts = await daemon.api.get<{ slices: Array<{ slice: string; sent: { packets: number }; received: { packets: number } }> }>(
        '/v1/net/accounts',
      );
      for (const row of accounts.slices ?? []) {
        figures.set(`${row.slice} packets sent`, row.sent.packets);
        figures.set(`${row.slice} packets received`, row.received.packets);
      }
      for (const [name, value] of figures) {
        const before = counters.get(name);
        if (before !== undefined && value < before) problem('counters_went_back', `${name} went back from ${before} to ${value}`);
        counters.set(name, value);
      }
    };

    for (round = 1; round <= options.kills && !options.signal?.aborted; round++) {
      await drive();
      const started = performance.now();
      try {
        await daemon.launch();
      } catch (err) {
        // The run cannot go on without a daemon: what stopped the start is the finding.
        problem('failed_starts', `the daemon did not start again: ${(err as Error).message.split('\n').slice(-4).join(' | ')}`);
        break;
      }
      restartMs.push(performance.now() - started);
      await check();
      if (round % 25 === 0 || round === options.kills)
        say(
          `round ${round}: ${result.acknowledged} acknowledged, ${result.in_flight_at_kill} in flight at kills, ${result.problems.length} problems`,
        );
    }
  } finally {
    result.moves_repaired = daemon.log.split('removing second groups of the same slice or domain').length - 1;
    for (const burner of burners) burner.kill('SIGKILL');
    await Promise.all(burners.map((b) => (b.exitCode === null && b.signalCode === null ? new Promise((r) => b.once('exit', r)) : null)));
    try {
      await daemon.destroy();
    } catch (err) {
      // sliced --cleanup failing leaves objects behind: a finding, not a crash of the run.
      problem('failed_starts', `sliced --cleanup failed after the run: ${(err as Error).message}`);
    }
  }
  restartMs.sort((a, b) => a - b);
  result.restart_ms_p50 = Math.round(restartMs[Math.floor(restartMs.length / 2)] ?? 0);
  return result;
}

/** The FIFOs in a slice's vsys directory (never following a link). */
function fifos(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => {
      try {
        return lstatSync(join(dir, f)).isFIFO();
      } catch {
        return false;
      }
    })
    .sort();
}
