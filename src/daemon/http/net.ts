/**
 * Slice networking (registered under /v1/net): the node's network settings, per-slice and
 * node accounts, and port reservations. Only the root-only API socket serves them; a slice's read-only
 * socket has none of them, so a slice's own user can never change a reservation.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from '../agent.js';
import type { ChangeRunner } from '../changes.js';
import type { SliceNetworks } from '../net.js';
import { parseInput } from '../../core/model.js';
import { assertValidName } from '../../core/names.js';
import { SlicedError } from '../../core/errors.js';
import { COLUMNS, summary, totalOf, type SliceAccount } from '../../core/accounting.js';
import { formatRate } from '../../core/net.js';
import type { AccountRow, AccountsDocument } from '../../wire/net.js';

const reservationBody = z
  .object({ slice: z.string(), address: z.string(), protocol: z.string(), port: z.union([z.number(), z.string()]) })
  .strict();

function networks(agent: SliceAgent): SliceNetworks {
  if (!agent.net) throw new SlicedError('EINVAL', 'slice networking is off on this node (net: false in the daemon settings)');
  return agent.net;
}

function accountRow(agent: SliceAgent, account: SliceAccount): AccountRow {
  const spec = agent.state.slices.get(account.slice);
  const row: AccountRow = {
    slice: account.slice,
    deleted: account.deleted,
    network: spec ? (spec.net ? 'namespace' : 'host') : null,
  } as AccountRow;
  for (const column of COLUMNS) row[column] = totalOf(account, column);
  return row;
}

export async function readAccounts(agent: SliceAgent): Promise<AccountsDocument> {
  const net = networks(agent);
  await net.foldCounters(agent.state);
  const all = net.accounts.all();
  return { slices: all.map((a) => accountRow(agent, a)), summary: summary(all) };
}

export interface NetRoutesOptions {
  agent: SliceAgent;
  /** Where reservations go (the agent, or the cluster's catalogue). */
  changes: ChangeRunner;
}

type SliceParams = { Params: { slice: string } };

export const netRoutes: FastifyPluginAsync<NetRoutesOptions> = async (app, { agent, changes }) => {
  // '' and not '/': the prefix alone, without also answering /v1/net/.
  app.get('', async () => {
    const net = networks(agent);
    const { settings, names } = net;
    return {
      bridge: names.bridge,
      pool4: settings.pool.v4.text,
      pool6: settings.pool.v6.text,
      capacity: formatRate(settings.capacity),
      table: names.table,
      conntrackMax: settings.conntrackMax,
    };
  });

  app.get('/accounts', async () => readAccounts(agent));
  app.get<SliceParams>('/accounts/:slice', async (request) => {
    const slice = assertValidName('slice', request.params.slice);
    const doc = await readAccounts(agent);
    const row = doc.slices.find((r) => r.slice === slice);
    if (!row) {
      if (agent.state.slices.has(slice)) return accountRow(agent, { slice, columns: {}, deleted: false });
      throw new SlicedError('ENOENT', `slice ${JSON.stringify(slice)} does not exist and has no counts`);
    }
    return row;
  });
  app.delete<SliceParams>('/accounts/:slice', async (request) => {
    const slice = assertValidName('slice', request.params.slice);
    const net = networks(agent);
    await agent.betweenChanges((state) => net.removeAccount(slice, state));
    return { removed: slice };
  });

  app.get('/reservations', async () => [...agent.state.reservations.values()]);
  app.post('/reservations', async (request, reply) => {
    const body = parseInput(reservationBody, request.body, 'reservation');
    networks(agent);
    const reservation = await changes.run({ kind: 'port.reserve', input: { ...body, slice: assertValidName('slice', body.slice) } }, null);
    return reply.code(201).send(reservation);
  });
  app.delete<{ Params: { protocol: string; address: string; port: string } }>('/reservations/:protocol/:address/:port', async (request) => {
    networks(agent);
    return changes.run({ kind: 'port.release', input: request.params }, null);
  });
};
