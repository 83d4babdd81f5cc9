/**
 * The one path every change takes: resolve what only the machine knows (users, block
 * devices), check it with the pure planChange (src/core: the next state, or a refusal with
 * numbers), apply it to the kernel and store it (change-queue.ts: one at a time, durable
 * before acknowledged), publish it, and log it. If the kernel refuses, the change is rolled
 * back in both places. A kind differs from the others only in the table below.
 */
import type { Logger } from 'pino';
import type { NodeCapacity } from '../../core/admission.js';
import * as changes from '../../core/changes.js';
import { planChange, type ChangeKind, type ChangeResults, type PlannedChange, type StateChange } from '../../core/change-kinds.js';
import { resolveIoInput } from '../../core/io.js';
import type { DesiredState, DomainCreateInput, SliceCreateInput, SliceUpdateInput } from '../../core/model.js';
import { localState, sameObjects } from '../../core/slivers.js';
import type { ChangeQueue } from './change-queue.js';
import type { Reconciler } from './reconciler.js';
import type { SliceUsers } from './users.js';

/** The payload of each change kind as the API takes it (user and devices not yet resolved). */
export interface ChangeRequests {
  'slice.create': { input: SliceCreateInput };
  'slice.update': { name: string; input: SliceUpdateInput };
  'slice.delete': { name: string };
  'domain.create': { input: DomainCreateInput };
  'domain.update': { name: string; input: SliceUpdateInput };
  'domain.delete': { name: string };
  'member.move': { member: string; domain: string | null };
  'port.reserve': { input: changes.ReservationInput };
  'port.release': { input: Omit<changes.ReservationInput, 'slice'> };
}

/** A change of kind K as the API takes it. */
export type Change<K extends ChangeKind = ChangeKind> = { [P in K]: { kind: P } & ChangeRequests[P] }[K];

export interface ChangeContext {
  node: NodeCapacity;
  log: Logger;
  queue: ChangeQueue;
  reconciler: Reconciler;
  users: SliceUsers;
  /** Device lookup for io.max (path or MAJ:MIN to MAJ:MIN). */
  resolveDevice: (name: string) => { device: string; path: string | null };
  /** The desired state in the kernel now. */
  current(): DesiredState;
  /** Make `next` the current state and tell the listeners. */
  publish(next: DesiredState): void;
}

/** How a change reaches the kernel and the store, beyond "kernel, then store behind it". */
interface CommitSteps {
  /** Store the change before the kernel is touched (and the old state again if the kernel refuses). */
  storeFirst?: boolean;
  /** False: what the kernel did cannot be undone (processes stopped); a refusal is reported as is. */
  rollback?: boolean;
  beforeKernel?: () => void;
  afterKernel?: () => void;
  /** Undo beforeKernel when the kernel refused. */
  undo?: () => void;
}

interface KindHandler<K extends ChangeKind> {
  /** Resolve users and devices; a missing one is refused here, before anything changes. */
  resolve(ctx: ChangeContext, state: DesiredState, change: Change<K>): StateChange<K>;
  steps?(ctx: ChangeContext, change: StateChange<K>, planned: PlannedChange<K>): CommitSteps;
  /** The log line of an applied change. */
  report(change: Change<K>, result: ChangeResults[K]): [fields: object, message: string];
}

type Handlers = { [K in ChangeKind]: KindHandler<K> };

/** Devices named in io.max become MAJ:MIN; a missing or non-block device is refused. */
const resolveIo = (ctx: ChangeContext, io: SliceUpdateInput['io']): ReturnType<typeof resolveIoInput> =>
  resolveIoInput(io, ctx.resolveDevice);

const handlers: Handlers = {
  'slice.create': {
    resolve: (ctx, state, { input }) => {
      changes.assertNameFree(state, input.name);
      const { user, userCreated } = ctx.users.choose(state, input.name, input.user);
      return { kind: 'slice.create', input: { ...input, io: resolveIo(ctx, input.io), user, userCreated } };
    },
    steps: (ctx, { input }, { result }) => ({
      // A user made for the slice is stored first: a crash right after useradd must not
      // leave a user that no stored slice would ever remove.
      storeFirst: input.userCreated,
      beforeKernel: () => ctx.users.ensure(result),
      undo: () => {
        if (input.userCreated) ctx.users.removeIfMade(input.user);
      },
    }),
    report: (_change, spec) => [
      { slice: spec.name, user: spec.user, cpu: spec.cpu, memory: spec.memory, io: spec.io, pids: spec.pids, domain: spec.domain },
      'slice created',
    ],
  },
  'slice.update': {
    resolve: (ctx, _state, { name, input }) => ({ kind: 'slice.update', name, input: { ...input, io: resolveIo(ctx, input.io) } }),
    report: ({ name }, spec) => [{ slice: name, cpu: spec.cpu, memory: spec.memory, io: spec.io, pids: spec.pids }, 'slice updated'],
  },
  'slice.delete': {
    resolve: (_ctx, _state, change) => change,
    // Kernel first: if the daemon dies half-way, the slice is still in the store and the
    // next start finishes the job from there instead of leaking a user or a group.
    steps: (ctx, _change, { result: spec }) => ({
      rollback: false,
      afterKernel: () => {
        if (spec.userCreated) ctx.users.remove(spec.user);
      },
    }),
    report: ({ name }) => [{ slice: name }, 'slice deleted'],
  },
  'domain.create': {
    resolve: (ctx, _state, { input }) => ({ kind: 'domain.create', input: { ...input, io: resolveIo(ctx, input.io) } }),
    report: ({ input }, spec) => [{ domain: input.name, cpu: spec.cpu }, 'domain created'],
  },
  'domain.update': {
    resolve: (ctx, _state, { name, input }) => ({ kind: 'domain.update', name, input: { ...input, io: resolveIo(ctx, input.io) } }),
    report: ({ name }, spec) => [{ domain: name, cpu: spec.cpu }, 'domain updated'],
  },
  'domain.delete': {
    resolve: (_ctx, _state, change) => change,
    report: ({ name }) => [{ domain: name }, 'domain deleted'],
  },
  'member.move': {
    resolve: (_ctx, _state, change) => change,
    report: ({ member, domain }) => [{ member, domain }, domain === null ? 'moved to node level' : 'moved into domain'],
  },
  'port.reserve': {
    resolve: (_ctx, _state, change) => change,
    report: (_change, added) => [{ ...added }, 'port reserved'],
  },
  'port.release': {
    resolve: (_ctx, _state, change) => change,
    report: (_change, released) => [{ ...released }, 'port released'],
  },
};

/** Run one change of any kind; resolves to what the kind reports once the change is durable. */
export function runChange<K extends ChangeKind>(ctx: ChangeContext, change: Change<K>): Promise<ChangeResults[K]> {
  return ctx.queue.run(async () => {
    const handler: Handlers[K] = handlers[change.kind];
    const before = ctx.current();
    const resolved = handler.resolve(ctx, before, change);
    const planned = planChange(before, resolved, ctx.node);
    await commit(ctx, before, planned.next, handler.steps?.(ctx, resolved, planned) ?? {});
    const [fields, message] = handler.report(change, planned.result);
    ctx.log.info(fields, message);
    return planned.result;
  });
}

/**
 * Make the node's state `target`, a state planned and admitted elsewhere (a cluster's state
 * for this node, src/cluster/slice-catalog.ts): the users of new slices are made here under
 * this node's naming, those of deleted slices removed, and whatever did not change is not
 * touched. A new slice whose named user does not exist here is left out (and reported), so
 * that it does not hold up the node's other slices. A kernel refusal rolls it all back, as
 * for any change. Resolves to the slices left out, with the reason, by name.
 */
export function realiseState(ctx: ChangeContext, target: DesiredState): Promise<Map<string, string>> {
  return ctx.queue.run(async () => {
    const before = ctx.current();
    const next = localState(before, target, (slice) => ctx.users.localName(slice));
    const failed = new Map<string, string>();
    for (const spec of [...next.slices.values()]) {
      if (before.slices.has(spec.name) || spec.userCreated || ctx.users.find(spec.user) !== null) continue;
      failed.set(spec.name, `user ${spec.user} does not exist on this node`);
      next.slices.delete(spec.name);
      for (const [key, r] of [...next.reservations]) if (r.slice === spec.name) next.reservations.delete(key);
    }
    if (sameObjects(before, next)) return failed;
    const changed = [...next.slices.values()].filter((s) => before.slices.get(s.name) !== s);
    const removed = [...before.slices.values()].filter((s) => !next.slices.has(s.name));
    await commit(ctx, before, next, {
      // As for a slice created on a node alone: a user made here is stored first, so that a
      // crash right after useradd cannot leave a user no stored slice would ever remove (the
      // cluster may have deleted the slice by the time this node starts again).
      storeFirst: changed.some((s) => s.userCreated && !before.slices.has(s.name)),
      beforeKernel: () => changed.forEach((s) => ctx.users.ensure(s)),
      afterKernel: () => removed.filter((s) => s.userCreated).forEach((s) => ctx.users.remove(s.user)),
      undo: () => changed.filter((s) => s.userCreated && !before.slices.has(s.name)).forEach((s) => ctx.users.removeIfMade(s.user)),
    });
    ctx.log.info(
      {
        slices: next.slices.size,
        domains: next.domains.size,
        changedSlices: changed.map((s) => s.name),
        removedSlices: removed.map((s) => s.name),
        ...(failed.size > 0 ? { leftOut: Object.fromEntries(failed) } : {}),
      },
      "cluster's state realised",
    );
    return failed;
  });
}

/**
 * Apply `next` to the kernel, publish it, and queue its store write (acknowledged when
 * durable, see ChangeQueue.run()). If the kernel refuses, undo the kernel side and rethrow
 * the kernel's reason; nothing was stored.
 */
async function commit(ctx: ChangeContext, before: DesiredState, next: DesiredState, steps: CommitSteps): Promise<void> {
  const { queue, reconciler } = ctx;
  const apply = async (): Promise<void> => {
    steps.beforeKernel?.();
    await reconciler.applyChange(before, next);
  };
  if (steps.rollback === false) {
    await apply();
  } else {
    if (steps.storeFirst) await queue.storeFirst(before, next);
    try {
      await apply();
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message }, 'kernel refused a change; rolling back');
      reconciler.forgetWrittenLimits(); // the kernel may hold some of the new values: rewrite everything
      try {
        steps.undo?.();
        await reconciler.applyChange(next, before);
      } catch (undoErr) {
        ctx.log.error({ err: (undoErr as Error).message }, 'rollback incomplete; the next start will reconcile');
      }
      if (steps.storeFirst) await queue.storeBack(next, before);
      throw err;
    }
  }
  steps.afterKernel?.();
  if (!steps.storeFirst) queue.storeBehind(before, next);
  ctx.publish(next);
}
