/**
 * Saved simulations (registered under /v1/simulations), on the admin socket and read by the
 * dashboard: list, show, the charts as SVG, save (PUT, what `slicectl simulate --save` sends)
 * and delete.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { SimulationStore } from '../simulations.js';
import type { SavedSimulation, SimulationEntry } from '../../wire/simulations.js';

export interface SimulationRoutesOptions {
  simulations: SimulationStore;
}

/** A saved run with 16 policies' series is about 300 KB; more than this is not the simulator's. */
const SAVE_BODY_LIMIT = 4 * 1024 * 1024;

type NameParams = { Params: { name: string } };

export const simulationRoutes: FastifyPluginAsync<SimulationRoutesOptions> = async (app, { simulations }) => {
  app.get('', async (): Promise<{ simulations: SimulationEntry[] }> => ({ simulations: await simulations.list() }));
  app.get<NameParams>('/:name', async (request): Promise<SavedSimulation> => simulations.get(request.params.name));
  app.get<{ Params: { name: string; chart: string } }>('/:name/:chart', async (request, reply) => {
    const svg = await simulations.chart(request.params.name, request.params.chart);
    return reply.header('content-type', 'image/svg+xml; charset=utf-8').send(svg);
  });
  app.put<NameParams>('/:name', { bodyLimit: SAVE_BODY_LIMIT }, async (request, reply) => {
    const { entry, replaced } = await simulations.save(request.params.name, request.body);
    return reply.code(replaced ? 200 : 201).send({ ...entry, replaced });
  });
  app.delete<NameParams>('/:name', async (request) => {
    await simulations.delete(request.params.name);
    return { deleted: request.params.name };
  });
};
