/**
 * JSON views of slices, domains and the node, as the API, the per-slice sockets and the
 * metrics exporter show them (their shapes are the wire types, src/wire/slices.ts). CPU figures
 * are millicores, memory figures bytes.
 */
import type { SliceAgent } from './agent.js';
import type { CpuController } from './controller.js';
import { effectiveDomainLimit, effectiveSliceLimit } from '../core/limits.js';
import { getDomain, getSlice, reservationsOf } from '../core/changes.js';
import { membersOf } from '../core/admission.js';
import type { DesiredState, IoAllocation, IoDeviceLimit, PidsAllocation } from '../core/model.js';
import { effectivePidsMax } from '../core/task-limits.js';
import { readTaskCount } from '../kernel/node-stats.js';
import { effectiveIoCaps, ioWeightNotes } from '../core/io.js';
import { listBlockDevices, weightConditions, type BlockDevice } from '../kernel/block-devices.js';
import { domainGroup, domainKey, sliceGroup, sliceKey } from '../core/layout.js';
import type { StoreHealth } from '../cluster/embedded-store.js';
import { fsSpace } from '../kernel/fs-space.js';
import type { DomainView, IoView, LiveView, PidsView, SliceView, StateView } from '../wire/slices.js';
import type { NodeLoad } from '../wire/nodes.js';
import { countersOf, readGroupStats } from './slice-counters.js';

/** Where the state is kept, for status and metrics. */
export interface StateSource {
  dir: string;
  health(): StoreHealth;
}

/** How long a reading of the block devices' schedulers serves the views. */
const DEVICES_TTL_MS = 1000;

/** Loop statistics cover this many most recent control-loop passes. */
export const RECENT_PASSES = 100;

export class Views {
  /** Effective caps of the last state seen: one computation per change, not one per view. */
  private ioCaps: { state: DesiredState; caps: Map<string, IoDeviceLimit[]> } | null = null;
  private blockDevices: { at: number; devices: BlockDevice[] } | null = null;

  constructor(
    private readonly agent: SliceAgent,
    private readonly controller: CpuController,
    private readonly stateSource: StateSource | null = null,
  ) {}

  /** Space and health of the state directory (read now), or null when not known. */
  state(): StateView | null {
    if (!this.stateSource) return null;
    const space = fsSpace(this.stateSource.dir);
    const health = this.stateSource.health();
    return {
      dir: this.stateSource.dir,
      freeBytes: space?.freeBytes ?? null,
      availableBytes: space?.availableBytes ?? null,
      totalBytes: space?.totalBytes ?? null,
      freeInodes: space?.freeInodes ?? null,
      writable: health.error === null,
      error: health.error,
      since: health.since,
    };
  }

  private ioView(io: IoAllocation, id: string): IoView {
    const state = this.agent.state;
    if (this.ioCaps?.state !== state) this.ioCaps = { state, caps: effectiveIoCaps(state, this.agent.backend.hierarchicalIoCaps) };
    const effectiveMax = this.ioCaps.caps.get(id) ?? [];
    const notes = ioWeightNotes(
      effectiveMax.map((c) => c.device),
      this.devices(),
      weightConditions(this.agent.backend.ioWeightUnavailable()),
    );
    return { ...io, effectiveMax, ...(notes.length > 0 ? { weightNoEffect: notes } : {}) };
  }

  /** The node's block devices, read at most once a second (a status lists every slice). */
  private devices(): BlockDevice[] {
    const now = Date.now();
    if (!this.blockDevices || now - this.blockDevices.at > DEVICES_TTL_MS) this.blockDevices = { at: now, devices: listBlockDevices() };
    return this.blockDevices.devices;
  }

  /** Read the devices afresh at the next view (a scheduler was switched). */
  forgetDevices(): void {
    this.blockDevices = null;
  }

  private pidsView(pids: PidsAllocation): PidsView {
    const unavailable = this.agent.backend.pidsUnavailable();
    return { ...pids, effectiveMax: effectivePidsMax(pids, this.agent.node), ...(unavailable !== null ? { unavailable } : {}) };
  }

  slice(name: string, live: boolean): SliceView {
    const state = this.agent.state;
    const spec = getSlice(state, name);
    const path = sliceGroup(state, name);
    const view: SliceView = {
      name,
      user: spec.user,
      uid: this.agent.uidOf(spec),
      userCreated: spec.userCreated,
      domain: spec.domain,
      cpu: { ...spec.cpu, effectiveLimit: effectiveSliceLimit(state, name) },
      memory: spec.memory,
      io: this.ioView(spec.io, sliceKey(name)),
      pids: this.pidsView(spec.pids),
      cgroup: path.join('/'),
      net: spec.net
        ? {
            ...spec.net,
            addresses: this.agent.net?.addresses(spec) ?? null,
            netns: this.agent.net?.netnsPath(spec) ?? null,
            veth: this.agent.net?.vethOf(spec) ?? null,
            reservations: reservationsOf(state, name),
          }
        : null,
    };
    if (live) view.live = this.live(sliceKey(name), path, name);
    return view;
  }

  slices(live: boolean): SliceView[] {
    return [...this.agent.state.slices.keys()].sort().map((name) => this.slice(name, live));
  }

  domain(name: string, live: boolean): DomainView {
    const state = this.agent.state;
    const spec = getDomain(state, name);
    const members = membersOf(state, name);
    const path = domainGroup(state, name);
    const view: DomainView = {
      name,
      parent: spec.parent,
      cpu: { ...spec.cpu, effectiveLimit: effectiveDomainLimit(state, name) },
      memory: spec.memory,
      io: this.ioView(spec.io, domainKey(name)),
      pids: this.pidsView(spec.pids),
      members: {
        slices: members
          .filter((m) => m.kind === 'slice')
          .map((m) => m.name)
          .sort(),
        domains: members
          .filter((m) => m.kind === 'domain')
          .map((m) => m.name)
          .sort(),
      },
      cgroup: path.join('/'),
    };
    if (live) view.live = this.live(domainKey(name), path);
    return view;
  }

  domains(live: boolean): DomainView[] {
    return [...this.agent.state.domains.keys()].sort().map((name) => this.domain(name, live));
  }

  /** What the node's slices use together in the last control period, and have reserved (millicores). */
  load(): NodeLoad {
    const top = membersOf(this.agent.state, null);
    const sample = this.controller.snapshot()?.nodes;
    const used = top.reduce((sum, m) => sum + (sample?.get(m.kind === 'slice' ? sliceKey(m.name) : domainKey(m.name))?.usage ?? 0), 0);
    return { slicesCpuMillicores: Math.round(used), reservedMillicores: this.reserved() };
  }

  /** Millicores the node's top-level slices and domains reserve. */
  private reserved(): number {
    return membersOf(this.agent.state, null).reduce((sum, m) => sum + m.cpu.reservation, 0);
  }

  node(): Record<string, unknown> {
    const node = this.agent.node;
    const snapshot = this.controller.snapshot();
    // Figures over the most recent passes, so they describe the loop as it is now.
    const durations = this.controller.loopDurations().slice(-RECENT_PASSES);
    const reserved = this.reserved();
    return {
      cpu: {
        capacity: node.cpuMillicores,
        systemReserve: node.systemReserveMillicores,
        reserved,
        available: node.cpuMillicores - node.systemReserveMillicores - reserved,
      },
      memoryBytes: node.memoryBytes,
      pids: this.nodePids(),
      backend: this.agent.backend.kind,
      cgroupRoots: this.agent.backend.rootDirectories(),
      cpuControl: this.controller.mode,
      controlPeriodMs: this.controller.periodMs,
      control: snapshot
        ? {
            at: new Date(snapshot.at).toISOString(),
            intervalMs: round(snapshot.intervalMs),
            sliceCapacity: round(snapshot.capacity),
            systemUsage: round(snapshot.systemUsage),
          }
        : null,
      loop: {
        window: durations.length,
        p50Ms: round(percentile(durations, 50)),
        p99Ms: round(percentile(durations, 99)),
        maxMs: round(Math.max(0, ...durations)),
      },
      slices: this.agent.state.slices.size,
      domains: this.agent.state.domains.size,
      state: this.state(),
    };
  }

  /** The node's PID space, tasks on it now, the slices' default limit, and whether limits are enforced. */
  private nodePids(): Record<string, unknown> {
    const pids = this.agent.node.pids;
    let inUse: number | null = null;
    try {
      inUse = readTaskCount();
    } catch {
      // No /proc/loadavg (a test fixture): shown as unknown.
    }
    const unavailable = this.agent.backend.pidsUnavailable();
    return {
      space: pids?.space ?? null,
      inUse,
      sliceDefault: pids?.sliceDefault ?? null,
      defaultSetting: pids?.setting ?? null,
      enforced: unavailable === null,
      ...(unavailable !== null ? { reason: unavailable } : {}),
    };
  }

  /** A slice's (`slice` given) or a domain's live figures; a slice's counters include its earlier groups'. */
  private live(id: string, path: string[], slice?: string): LiveView {
    const backend = this.agent.backend;
    const sample = this.controller.snapshot()?.nodes.get(id);
    const view: LiveView = {
      procs: 0,
      usage: round(sample?.usage ?? 0),
      demand: round(sample?.demand ?? 0),
      entitlement: round(sample?.entitlement ?? 0),
      weight: sample?.weight ?? 0,
      cpuSeconds: 0,
      throttledPeriods: 0,
      throttledSeconds: 0,
      memoryBytes: 0,
      oomKills: null,
      io: null,
      pressure: { cpu: null, memory: null, io: null },
      pids: null,
    };
    try {
      view.procs = countProcs(this.agent, path);
      const stats = readGroupStats(backend, path);
      const reading = countersOf(stats);
      const counts = slice === undefined ? reading : this.agent.counters.total(slice, path, reading);
      view.cpuSeconds = round((counts.cpuNs ?? 0) / 1e9);
      view.throttledPeriods = counts.throttledPeriods ?? 0;
      view.throttledSeconds = round((counts.throttledNs ?? 0) / 1e9);
      view.memoryBytes = stats.memory?.currentBytes ?? 0;
      view.oomKills = counts.oomKills ?? null;
      view.io =
        reading.ioReadBytes === undefined
          ? null
          : {
              readBytes: counts.ioReadBytes ?? 0,
              writeBytes: counts.ioWriteBytes ?? 0,
              readOps: counts.ioReadOps ?? 0,
              writeOps: counts.ioWriteOps ?? 0,
            };
      view.pressure = {
        cpu: backend.readPressure(path, 'cpu'),
        memory: backend.readPressure(path, 'memory'),
        io: backend.readPressure(path, 'io'),
      };
      view.pids = stats.pids ? { ...stats.pids, refused: counts.pidsRefused ?? stats.pids.refused } : null;
    } catch {
      // Group is being created or removed; show what the controller knows.
    }
    return view;
  }
}

function countProcs(agent: SliceAgent, path: string[]): number {
  let count = agent.backend.procs(path).length;
  for (const child of agent.backend.children(path)) count += countProcs(agent, [...path, child]);
  return count;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
