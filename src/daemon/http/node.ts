/** The node's view and the status of everything (registered under /v1): GET /v1/node, GET /v1/status. */
import type { FastifyPluginAsync } from 'fastify';
import type { Views } from '../views.js';

export interface NodeRoutesOptions {
  views: Views;
}

export const nodeRoutes: FastifyPluginAsync<NodeRoutesOptions> = async (app, { views }) => {
  app.get('/node', async () => views.node());
  app.get('/status', async () => ({ node: views.node(), slices: views.slices(true), domains: views.domains(true) }));
};
