/** Domains (registered under /v1/domains): list, create, show, change, delete, and moving members in and out. */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { SliceAgent } from '../agent.js';
import type { Views } from '../views.js';
import { domainCreateSchema, domainUpdateSchema, parseInput } from '../../core/model.js';
import { assertValidName } from '../../core/names.js';
import { SlicedError } from '../../core/errors.js';
import { withWarnings } from './io.js';

export interface DomainRoutesOptions {
  agent: SliceAgent;
  views: Views;
}

const memberBody = z.object({ member: z.string() }).strict();

type NameParams = { Params: { name: string } };

export const domainRoutes: FastifyPluginAsync<DomainRoutesOptions> = async (app, { agent, views }) => {
  // '' and not '/': the prefix alone, without also answering /v1/domains/.
  app.get('', async () => views.domains(false));
  app.post('', async (request, reply) => {
    const input = parseInput(domainCreateSchema, request.body, 'domain');
    const spec = await agent.createDomain(input);
    return reply.code(201).send(withWarnings(views.domain(spec.name, false), input));
  });
  app.get<NameParams>('/:name', async (request) => views.domain(assertValidName('domain', request.params.name), true));
  app.patch<NameParams>('/:name', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const input = parseInput(domainUpdateSchema, request.body, 'domain');
    await agent.updateDomain(name, input);
    return withWarnings(views.domain(name, false), input);
  });
  app.delete<NameParams>('/:name', async (request) => {
    const name = assertValidName('domain', request.params.name);
    await agent.deleteDomain(name);
    return { deleted: name };
  });
  app.post<NameParams>('/:name/members', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const { member } = parseInput(memberBody, request.body, 'domain member');
    await agent.moveMember(assertValidName('member', member), name);
    return views.domain(name, false);
  });
  app.delete<{ Params: { name: string; member: string } }>('/:name/members/:member', async (request) => {
    const name = assertValidName('domain', request.params.name);
    const member = assertValidName('member', request.params.member);
    const domain = views.domain(name, false);
    if (!domain.members.slices.includes(member) && !domain.members.domains.includes(member)) {
      throw new SlicedError('ENOENT', `${member} is not a member of domain ${name}`);
    }
    await agent.moveMember(member, agent.state.domains.get(name)!.parent);
    return views.domain(name, false);
  });
};
