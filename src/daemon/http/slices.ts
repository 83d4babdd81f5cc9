/**
 * Slices (registered under /v1/slices): list, create, show, change, delete, attach a
 * process, and the exec plan of `slicectl exec`.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from '../agent.js';
import type { Views } from '../views.js';
import { parseInput, pidSchema, sliceCreateSchema, sliceUpdateSchema } from '../../core/model.js';
import { assertValidName } from '../../core/names.js';
import { withWarnings } from './io.js';
import type { ChangeRunner } from '../changes.js';
import { parsePlacement, type Placement } from '../../core/slivers.js';
import type { PlacementEntry, RemoteSliceView, SliceView } from '../../wire/slices.js';
import { SlicedError } from '../../core/errors.js';

/** Asks the schedulers whether a new task may start (throws when one refuses). */
export type ExecPlacement = (slice: string, parentPid: number) => void;

export interface SliceRoutesOptions {
  agent: SliceAgent;
  changes: ChangeRunner;
  views: Views;
  placement?: ExecPlacement | undefined;
}

const pidBody = z.object({ pid: pidSchema }).strict();

type NameParams = { Params: { name: string } };

export const sliceRoutes: FastifyPluginAsync<SliceRoutesOptions> = async (app, { agent, changes, views, placement }) => {
  const show = (name: string, live: boolean): Promise<SliceView | RemoteSliceView> =>
    withPlacement(changes, 'slice', name, agent.state.slices.has(name), () => views.slice(name, live));
  // '' and not '/': the prefix alone, without also answering /v1/slices/.
  app.get<{ Querystring: { cluster?: string } }>('', async (request) => {
    if (request.query.cluster !== 'true') return views.slices(false);
    return listCatalogue(changes, 'slice');
  });
  app.post('', async (request, reply) => {
    const { body, placement: where } = takePlacement(request.body);
    const input = parseInput(sliceCreateSchema, body, 'slice');
    await changes.run({ kind: 'slice.create', input }, where);
    return reply.code(201).send(withWarnings(await show(input.name, false), input));
  });
  app.get<NameParams>('/:name', async (request) => show(assertValidName('slice', request.params.name), true));
  app.patch<NameParams>('/:name', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const input = parseInput(sliceUpdateSchema, request.body, 'slice');
    await changes.run({ kind: 'slice.update', name, input }, null);
    return withWarnings(await show(name, false), input);
  });
  app.delete<NameParams>('/:name', async (request) => {
    const name = assertValidName('slice', request.params.name);
    await changes.run({ kind: 'slice.delete', name }, null);
    return { deleted: name };
  });
  app.post<NameParams>('/:name/attach', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const { pid } = parseInput(pidBody, request.body, 'attach');
    await agent.attach(name, pid);
    return { slice: name, pid };
  });
  app.post<NameParams>('/:name/exec-plan', async (request) => {
    const name = assertValidName('slice', request.params.name);
    const { pid } = parseInput(pidBody, request.body, 'exec');
    placement?.(name, pid);
    await agent.net?.settle(); // the command's traffic is counted from its first packet
    return agent.execPlan(name, pid);
  });
};

/** A create's body without its `placement` (which the slice's schema does not know), and the placement. */
export function takePlacement(body: unknown): { body: unknown; placement: Placement | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('placement' in body)) return { body, placement: null };
  const { placement, ...rest } = body as Record<string, unknown>;
  return { body: rest, placement: parsePlacement(placement) };
}

/**
 * This node's view of a slice or domain (`local`, which refuses an unknown name), with its
 * nodes in a cluster; one that is only on other nodes shows its nodes alone. Without etcd
 * (fail-static) the node still shows what it runs, and says why the nodes are missing.
 */
export async function withPlacement<V extends object>(
  changes: ChangeRunner,
  kind: 'slice' | 'domain',
  name: string,
  here: boolean,
  local: () => V,
): Promise<V | RemoteSliceView> {
  const cluster = await changes.placementOf(kind, name).catch((err: Error) => err);
  if (cluster instanceof Error) {
    if (!here) throw cluster;
    return { ...local(), clusterError: `cannot read the cluster's catalogue: ${cluster.message}` };
  }
  if (here) return { ...local(), ...(cluster ? { cluster } : {}) };
  return cluster ? { name, cluster } : local();
}

/** `?cluster=true`: every slice (or domain) of the cluster with its nodes; refused on a node alone. */
export async function listCatalogue(changes: ChangeRunner, kind: 'slice' | 'domain'): Promise<PlacementEntry[]> {
  const entries = await changes.catalogue(kind);
  if (entries === null)
    throw new SlicedError('EINVAL', `this node is not in a cluster: ${kind}s of the cluster are listed only with sliced --cluster`);
  return entries;
}
