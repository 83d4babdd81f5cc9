/** Domains (registered under /v1/domains): list, create, show, change, delete, and moving members in and out. */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from '../agent.js';
import type { Views } from '../views.js';
import type { DomainView, RemoteDomainView } from '../../wire/slices.js';
import { domainCreateSchema, domainUpdateSchema, parseInput } from '../../core/model.js';
import { assertValidName } from '../../core/names.js';
import { SlicedError } from '../../core/errors.js';
import { withWarnings } from './io.js';
import type { ChangeRunner } from '../changes.js';
import { listCatalogue, takePlacement, withPlacement } from './slices.js';

export interface DomainRoutesOptions {
  agent: SliceAgent;
  changes: ChangeRunner;
  views: Views;
}

const memberBody = z.object({ member: z.string() }).strict();

type NameParams = { Params: { name: string } };

export const domainRoutes: FastifyPluginAsync<DomainRoutesOptions> = async (app, { agent, changes, views }) => {
  const show = (name: string): Promise<DomainView | RemoteDomainView> =>
    withPlacement(changes, 'domain', name, agent.state.domains.has(name), () => views.domain(name, false));
  // '' and not '/': the prefix alone, without also answering /v1/domains/.
  app.get<{ Querystring: { cluster?: string } }>('', async (request) => {
    if (request.query.cluster !== 'true') return views.domains(false);
    return listCatalogue(changes, 'domain');
  });
  app.post('', async (request, reply) => {
    const { body, placement } = takePlacement(request.body);
    const input = parseInput(domainCreateSchema, body, 'domain');
    await changes.run({ kind: 'domain.create', input }, placement);
    return reply.code(201).send(withWarnings(await show(input.name), input));
  });
  app.get<NameParams>('/:name', async (request) => views.domain(assertValidName('domain', request.params.name), true));
  app.patch<NameParams>('/:name', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const input = parseInput(domainUpdateSchema, request.body, 'domain');
    await changes.run({ kind: 'domain.update', name, input }, null);
    return withWarnings(await show(name), input);
  });
  app.delete<NameParams>('/:name', async (request) => {
    const name = assertValidName('domain', request.params.name);
    await changes.run({ kind: 'domain.delete', name }, null);
    return { deleted: name };
  });
  app.post<NameParams>('/:name/members', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const { member } = parseInput(memberBody, request.body, 'domain member');
    await changes.run({ kind: 'member.move', member: assertValidName('member', member), domain: name }, null);
    return show(name);
  });
  app.delete<{ Params: { name: string; member: string } }>('/:name/members/:member', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const member = assertValidName('member', request.params.member);
    const domain = views.domain(name, false);
    if (!domain.members.slices.includes(member) && !domain.members.domains.includes(member)) {
      throw new SlicedError('ENOENT', `${member} is not a member of domain ${name}`);
    }
    await changes.run({ kind: 'member.move', member, domain: agent.state.domains.get(name)!.parent }, null);
    return show(name);
  });
};
