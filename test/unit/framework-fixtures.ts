/**
 * Shared fixtures for the framework-*.test.ts files: fake timers (nothing runs on its own),
 * small fake component types registered with registry.add, and assertion helpers.
 */
import assert from 'node:assert/strict';
import { isSlicedError } from '../../src/core/errors.js';
import { TypeRegistry } from '../../src/framework/registry.js';
import { BUILTIN_TYPES } from '../../src/components/builtins.js';
import { ConfigTree, type DirNode } from '../../src/framework/tree.js';
import type { Timers } from '../../src/framework/instances.js';
import type { AttributeSpec, FrameworkServices, Logger, PolicyType, ProbeType } from '../../src/framework/types.js';
import type { Value } from '../../src/framework/value.js';

export const KNOWN_CODES = new Set([
  'EINVAL',
  'ENOENT',
  'EEXIST',
  'ENOSPC',
  'ENOTEMPTY',
  'EBUSY',
  'EPERM',
  'ESRCH',
  'ELOOP',
  'ENOTDIR',
  'EISDIR',
  'EIO',
]);

export const silentLog: Logger = { info() {}, warn() {}, error() {}, debug() {} };

/** Timers that never fire by themselves: `fire()` runs every interval once at `now`. */
export class FakeTimers implements Timers {
  now_ = 1000;
  private nextId = 1;
  readonly intervals = new Map<number, { fn: () => void; ms: number }>();

  setInterval(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.intervals.set(id, { fn, ms });
    return id;
  }

  clearInterval(handle: unknown): void {
    this.intervals.delete(handle as number);
  }

  now(): number {
    return this.now_;
  }

  /** Advance time by `ms` and run every interval once. */
  fire(ms = 1000): void {
    this.now_ += ms;
    for (const { fn } of [...this.intervals.values()]) fn();
  }
}

/** What the fake probe publishes; tests change it and then refresh. */
export interface ProbeState {
  /** One row per CPU, labelled cpu0, cpu1, ... */
  cpuLoads: number[];
  /** pid -> load */
  processLoads: Map<number, number>;
  refreshes: number;
}

/** Received updates per policy path: "port value-text". */
export type UpdateLog = Map<string, string[]>;

export interface Fakes {
  probeState: ProbeState;
  updates: UpdateLog;
  probe: ProbeType;
  probeNotifyUnchanged: ProbeType;
  /** A probe whose only source has value type "memory" (for type mismatch tests). */
  memProbe: ProbeType;
  loadBalancing: PolicyType;
  counter: PolicyType;
  placer: PolicyType;
}

const labelCache = new Map<string, readonly string[]>();
function labels(prefix: string, count: number): readonly string[] {
  const key = `${prefix}:${count}`;
  let l = labelCache.get(key);
  if (!l) {
    l = Object.freeze(Array.from({ length: count }, (_, i) => `${prefix}${i}`));
    labelCache.set(key, l);
  }
  return l;
}

const answerAttribute: AttributeSpec = {
  name: 'answer',
  description: 'what newTaskNode answers: none, refuse, or a node name',
  default: 'none',
  parse(text) {
    const t = text.trim();
    if (!/^[a-z0-9_-]{1,32}$/.test(t)) throw new Error(`answer ${JSON.stringify(t)} is not allowed: must be none, refuse or a node name`);
    return t;
  },
};

export function makeFakes(): Fakes {
  const probeState: ProbeState = { cpuLoads: [0, 0], processLoads: new Map(), refreshes: 0 };
  const updates: UpdateLog = new Map();
  let pidLabels: readonly string[] = [];
  let pidKey = '';
  const refresh = (outputs: readonly Value[]): void => {
    probeState.refreshes++;
    const [node, proc] = outputs;
    node!.setRows(probeState.cpuLoads.length, labels('cpu', probeState.cpuLoads.length));
    probeState.cpuLoads.forEach((l, i) => node!.set(i, 0, l));
    const pids = [...probeState.processLoads.keys()].sort((a, b) => a - b);
    const key = pids.join(',');
    if (key !== pidKey) {
      pidKey = key;
      pidLabels = Object.freeze(pids.map(String));
    }
    proc!.setRows(pids.length, pidLabels);
    pids.forEach((pid, i) => proc!.set(i, 0, probeState.processLoads.get(pid)!));
  };
  const sources = [
    { name: 'node_load', valueType: 'load', description: 'per-CPU load' },
    { name: 'process_load', valueType: 'process_load', description: 'per-process load' },
  ];
  const probe: ProbeType = {
    kind: 'probe',
    name: 'cpu',
    description: 'fake cpu probe',
    defaultPeriodMs: 1000,
    sources,
    create: () => ({ refresh }),
  };
  const probeNotifyUnchanged: ProbeType = { ...probe, name: 'cpu_always', notifyUnchanged: true };
  const memProbe: ProbeType = {
    kind: 'probe',
    name: 'fake_mem',
    description: 'fake memory probe',
    defaultPeriodMs: 0,
    sources: [{ name: 'memory', valueType: 'memory', description: 'memory' }],
    create: () => ({
      refresh([m]) {
        m!.setRows(1);
        m!.set(0, 0, 100);
        m!.set(0, 1, 50);
        m!.set(0, 2, 50);
      },
    }),
  };
  const ports = [
    { name: 'node_load', valueType: 'load', description: 'node loads' },
    { name: 'process_load', valueType: 'process_load', description: 'process loads' },
  ];
  const loadBalancing: PolicyType = {
    kind: 'policy',
    name: 'load_balancing',
    description: 'fake load balancer: records what it receives',
    ports,
    create(ctx) {
      const log: string[] = [];
      updates.set(ctx.path, log);
      return {
        onUpdate(port, value) {
          log.push(`${ports[port]!.name} ${value.format().trim().replace(/\n/g, ', ')}`);
        },
      };
    },
  };
  const counter: PolicyType = {
    kind: 'policy',
    name: 'counter',
    description: 'counts updates on its port',
    ports: [{ name: 'node_load', valueType: 'load', description: 'anything' }],
    create() {
      let count = 0;
      return {
        onUpdate() {
          count++;
        },
        status: () => ({ count }),
      };
    },
  };
  const placer: PolicyType = {
    kind: 'policy',
    name: 'placer',
    description: 'answers what its answer attribute says',
    ports: [],
    attributes: [answerAttribute],
    create(ctx) {
      return {
        newTaskNode() {
          const a = ctx.attrs.answer as string;
          if (a === 'none') return null;
          if (a === 'refuse') return { refuse: `${ctx.path} refuses` };
          return a;
        },
      };
    },
  };
  return { probeState, updates, probe, probeNotifyUnchanged, memProbe, loadBalancing, counter, placer };
}

export function makeTree(options: { services?: Partial<FrameworkServices> } = {}): {
  tree: ConfigTree;
  registry: TypeRegistry;
  timers: FakeTimers;
  fakes: Fakes;
} {
  const fakes = makeFakes();
  const types = [fakes.probe, fakes.probeNotifyUnchanged, fakes.memProbe, fakes.loadBalancing, fakes.counter, fakes.placer];
  // The fakes stand in for the built-ins of the same name (cpu): a name is registered once.
  const faked = new Set(types.map((t) => t.name));
  const builtins = Object.fromEntries(Object.entries(BUILTIN_TYPES).filter(([name]) => !faked.has(name)));
  const registry = new TypeRegistry({ builtins, packageRoots: [] });
  for (const t of types) registry.add(t);
  const timers = new FakeTimers();
  const tree = new ConfigTree({ registry, services: { nodeName: 'n1', log: silentLog, ...options.services }, timers });
  return { tree, registry, timers, fakes };
}

/** assert.throws/rejects matcher: a SlicedError with this code and a non-empty sentence. */
export function refusal(code: string, pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(isSlicedError(err), `expected a SlicedError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    assert.ok(err.message.length > 10, 'the refusal carries a sentence');
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

export function assertSound(tree: ConfigTree, step = ''): void {
  assert.deepEqual(tree.checkInvariants(), [], `invariants after ${step}`);
}

export function dirAt(tree: ConfigTree, path: string): DirNode {
  const node = tree.lookup(path, false);
  assert.equal(node.kind, 'dir', `${path} is a directory`);
  return node as DirNode;
}

export function statusOf(tree: ConfigTree, policyPath: string): Record<string, unknown> {
  return JSON.parse(tree.read(`${policyPath}/status`)) as Record<string, unknown>;
}
