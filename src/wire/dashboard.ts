/**
 * The dashboard's live frames: one per control period, what the page charts and lists. Built
 * from the views the API gives (cumulative counters) and the previous frame's inputs, so that
 * rates (I/O, network) and events (throttling, OOM kills) are computed once on the daemon and
 * not by every open page. Pure: no I/O.
 */
import type { AccountsDocument } from './net.js';
import type { DomainView, LiveView, SliceView } from './slices.js';

/** One slice or domain in a frame. CPU in millicores, memory in bytes, rates in bytes per second. */
export interface FrameRow {
  name: string;
  kind: 'slice' | 'domain';
  /** The enclosing domain, or null at the top. */
  parent: string | null;
  reservation: number;
  limit: number | null;
  shares: number;
  usage: number;
  entitlement: number;
  demand: number;
  memoryBytes: number;
  memoryLimit: number | null;
  ioReadRate: number | null;
  ioWriteRate: number | null;
  netSentRate: number | null;
  netReceivedRate: number | null;
  procs: number;
  throttledPeriods: number;
  oomKills: number | null;
}

export interface FrameEvent {
  at: number;
  name: string;
  kind: 'throttled' | 'oom';
  /** Throttled periods, or OOM kills, since the previous frame. */
  count: number;
}

export interface LiveFrame {
  /** ms since the epoch when the views were read. */
  at: number;
  periodMs: number;
  node: {
    capacity: number;
    systemReserve: number;
    reserved: number;
    systemUsage: number | null;
    memoryBytes: number;
    backend: string;
  };
  rows: FrameRow[];
  events: FrameEvent[];
}

export interface FrameInput {
  at: number;
  /**
   * When the counters (I/O, network, throttling, OOM kills) and memory were read, if not at
   * `at`: on a large node they are read every few passes and CPU figures at every one. A
   * frame whose counters are the previous frame's keeps that frame's rates and has no events.
   */
  countersAt?: number;
  periodMs: number;
  node: LiveFrame['node'];
  slices: readonly SliceView[];
  domains: readonly DomainView[];
  /** Packet accounts (null without slice networking). */
  accounts: AccountsDocument | null;
}

/** The cumulative counters of the previous reading and the rates they gave, by row key. */
export interface FrameMemory {
  at: number;
  counters: Map<string, Counters>;
  rates: Map<string, Rates>;
}

type Rates = Pick<FrameRow, 'ioReadRate' | 'ioWriteRate' | 'netSentRate' | 'netReceivedRate'>;

interface Counters {
  ioRead: number | null;
  ioWrite: number | null;
  netSent: number | null;
  netReceived: number | null;
  throttledPeriods: number;
  oomKills: number | null;
}

/** Build a frame; `previous` is what the last call returned as `memory` (null at first). */
export function buildFrame(input: FrameInput, previous: FrameMemory | null): { frame: LiveFrame; memory: FrameMemory } {
  const countersAt = input.countersAt ?? input.at;
  if (previous && countersAt === previous.at) return { frame: sameCounters(input, previous), memory: previous };
  const seconds = previous ? (countersAt - previous.at) / 1000 : 0;
  const rates = new Map<string, Rates>();
  const accounts = new Map((input.accounts?.slices ?? []).map((a) => [a.slice, a]));
  const counters = new Map<string, Counters>();
  const rows: FrameRow[] = [];
  const events: FrameEvent[] = [];
  const rate = (now: number | null, before: number | null | undefined): number | null =>
    now === null || before === null || before === undefined || seconds <= 0 ? null : Math.max(0, (now - before) / seconds);

  const add = (
    kind: FrameRow['kind'],
    name: string,
    parent: string | null,
    view: SliceView | DomainView,
    account: { sent: number; received: number } | null,
  ): void => {
    const live: LiveView | undefined = view.live;
    if (!live) return;
    const key = `${kind}/${name}`;
    const now: Counters = {
      ioRead: live.io?.readBytes ?? null,
      ioWrite: live.io?.writeBytes ?? null,
      netSent: account?.sent ?? null,
      netReceived: account?.received ?? null,
      throttledPeriods: live.throttledPeriods,
      oomKills: live.oomKills,
    };
    counters.set(key, now);
    const before = previous?.counters.get(key);
    if (before) {
      const throttled = now.throttledPeriods - before.throttledPeriods;
      if (throttled > 0) events.push({ at: input.at, name: key, kind: 'throttled', count: throttled });
      const oom = (now.oomKills ?? 0) - (before.oomKills ?? 0);
      if (oom > 0) events.push({ at: input.at, name: key, kind: 'oom', count: oom });
    }
    const rowRates: Rates = {
      ioReadRate: roundOrNull(rate(now.ioRead, before?.ioRead)),
      ioWriteRate: roundOrNull(rate(now.ioWrite, before?.ioWrite)),
      netSentRate: roundOrNull(rate(now.netSent, before?.netSent)),
      netReceivedRate: roundOrNull(rate(now.netReceived, before?.netReceived)),
    };
    rates.set(key, rowRates);
    rows.push(rowOf(kind, name, parent, view, live, rowRates));
  };

  for (const domain of input.domains) add('domain', domain.name, domain.parent, domain, null);
  for (const slice of input.slices) {
    const account = accounts.get(slice.name);
    add('slice', slice.name, slice.domain, slice, account ? { sent: account.sent.bytes, received: account.received.bytes } : null);
  }
  return {
    frame: { at: input.at, periodMs: input.periodMs, node: input.node, rows, events },
    memory: { at: countersAt, counters, rates },
  };
}

const NO_RATES: Rates = { ioReadRate: null, ioWriteRate: null, netSentRate: null, netReceivedRate: null };

/** A frame between two readings of the counters: new CPU figures, the last rates, no events. */
function sameCounters(input: FrameInput, previous: FrameMemory): LiveFrame {
  const rows: FrameRow[] = [];
  const add = (kind: FrameRow['kind'], name: string, parent: string | null, view: SliceView | DomainView): void => {
    if (view.live) rows.push(rowOf(kind, name, parent, view, view.live, previous.rates.get(`${kind}/${name}`) ?? NO_RATES));
  };
  for (const domain of input.domains) add('domain', domain.name, domain.parent, domain);
  for (const slice of input.slices) add('slice', slice.name, slice.domain, slice);
  return { at: input.at, periodMs: input.periodMs, node: input.node, rows, events: [] };
}

function rowOf(
  kind: FrameRow['kind'],
  name: string,
  parent: string | null,
  view: SliceView | DomainView,
  live: LiveView,
  rates: Rates,
): FrameRow {
  return {
    name,
    kind,
    parent,
    reservation: view.cpu.reservation,
    limit: view.cpu.effectiveLimit,
    shares: view.cpu.shares,
    usage: round(live.usage),
    entitlement: round(live.entitlement),
    demand: Number.isFinite(live.demand) ? round(live.demand) : -1,
    memoryBytes: live.memoryBytes,
    memoryLimit: view.memory.limit,
    ...rates,
    procs: live.procs,
    throttledPeriods: live.throttledPeriods,
    oomKills: live.oomKills,
  };
}

/** What rows sort by, in the page's table and `slicectl top`. */
export type FrameSort = 'cpu' | 'entitlement' | 'memory' | 'io' | 'net' | 'procs' | 'name';

/** Largest first by `sort` (by name alone for 'name'), equal ones by name. */
export function compareRows(sort: FrameSort): (a: FrameRow, b: FrameRow) => number {
  const value = (r: FrameRow): number => {
    switch (sort) {
      case 'cpu':
        return r.usage || 0;
      case 'entitlement':
        return r.entitlement || 0;
      case 'memory':
        return r.memoryBytes;
      case 'io':
        return (r.ioReadRate ?? 0) + (r.ioWriteRate ?? 0);
      case 'net':
        return (r.netSentRate ?? 0) + (r.netReceivedRate ?? 0);
      case 'procs':
        return r.procs;
      case 'name':
        return 0;
    }
  };
  return (a, b) => value(b) - value(a) || a.name.localeCompare(b.name);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function roundOrNull(n: number | null): number | null {
  return n === null ? null : round(n);
}
