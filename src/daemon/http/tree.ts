/**
 * The config tree (registered under /v1/tree; the same operations as the CLI verbs and the
 * FUSE mount), and new-task placement (registered under /v1/placement):
 *
 *   GET  /v1/tree/ls?path=P   /v1/tree/cat?path=P   /v1/tree/stat?path=P   /v1/tree/readlink?path=P
 *   GET  /v1/tree/tree?path=P (recursive listing)   /v1/tree/dump (YAML)
 *   POST /v1/tree/mkdir {path}   /rmdir {path}   /write {path, value}   /ln {target, path}   /rm {path}
 *   POST /v1/tree/apply {document, dryRun, force}  -> {dryRun, steps, problems, warnings}
 *   GET  /v1/placement?pid=N[&slice=S]  where a new task of process N would be placed
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseInput, pidTextSchema } from '../../core/model.js';
import { SlicedError } from '../../core/errors.js';
import { ADMIN, type TreeService } from '../../framework/service.js';
import { describeStep } from '../../framework/document.js';
import type { ConfigTree } from '../../framework/tree.js';
import type { TreeListing } from '../../wire/tree.js';
import { readSessionOf } from '../../kernel/node-stats.js';

const pathQuery = z.object({ path: z.string().default('/') }).strict();
const pathBody = z.object({ path: z.string() }).strict();
const writeBody = z.object({ path: z.string(), value: z.string().max(64 * 1024, 'must be at most 64 KiB') }).strict();
const linkBody = z.object({ target: z.string(), path: z.string() }).strict();
const applyBody = z
  .object({
    document: z.string().max(1024 * 1024, 'must be at most 1 MiB'),
    dryRun: z.boolean().default(false),
    force: z.boolean().default(false),
  })
  .strict();
const placementQuery = z.object({ pid: pidTextSchema, slice: z.string().optional() }).strict();

export interface TreeRoutesOptions {
  service: TreeService;
}

export const treeRoutes: FastifyPluginAsync<TreeRoutesOptions> = async (app, { service }) => {
  const caller = ADMIN;
  app.get('/ls', async (request) => service.readdir(caller, parseInput(pathQuery, request.query, 'ls').path));
  app.get('/cat', async (request) => {
    const { path } = parseInput(pathQuery, request.query, 'cat');
    return { path, value: service.read(caller, path) };
  });
  app.get('/stat', async (request) => service.stat(caller, parseInput(pathQuery, request.query, 'stat').path));
  app.get('/readlink', async (request) => {
    const { path } = parseInput(pathQuery, request.query, 'readlink');
    return { path, target: service.readlink(caller, path) };
  });
  app.get('/tree', async (request) => listRecursively(service, parseInput(pathQuery, request.query, 'tree').path));
  app.get('/dump', async () => ({ yaml: service.dump(caller) }));
  app.post('/mkdir', async (request) => {
    const { path } = parseInput(pathBody, request.body, 'mkdir');
    await service.mkdir(caller, path);
    return { created: path };
  });
  app.post('/rmdir', async (request) => {
    const { path } = parseInput(pathBody, request.body, 'rmdir');
    await service.rmdir(caller, path);
    return { removed: path };
  });
  app.post('/write', async (request) => {
    const { path, value } = parseInput(writeBody, request.body, 'write');
    await service.write(caller, path, value);
    return { path, value: service.read(caller, path) };
  });
  app.post('/ln', async (request) => {
    const { target, path } = parseInput(linkBody, request.body, 'ln');
    await service.symlink(caller, target, path);
    return { linked: path, target };
  });
  app.post('/rm', async (request) => {
    const { path } = parseInput(pathBody, request.body, 'rm');
    await service.unlink(caller, path);
    return { removed: path };
  });
  app.post('/apply', async (request) => {
    const { document, dryRun, force } = parseInput(applyBody, request.body, 'apply');
    const result = await service.apply(caller, document, dryRun, { force });
    // A dry run answers 200 with the problems apply would meet; apply itself refuses them.
    const problems = result.problems.map((p) => ({ ...p, action: describeStep(result.steps[p.step - 1]!) }));
    return { dryRun, steps: result.steps.map(describeStep), problems, warnings: result.warnings };
  });
};

export interface PlacementRoutesOptions {
  tree: ConfigTree;
}

export const placementRoutes: FastifyPluginAsync<PlacementRoutesOptions> = async (app, { tree }) => {
  // '' and not '/': the prefix alone, without also answering /v1/placement/.
  app.get('', async (request) => {
    const { pid, slice } = parseInput(placementQuery, request.query, 'placement');
    const sessionId = readSessionOf(pid);
    // A task cannot start from a process that does not exist; answering "this node" would hide the typo.
    if (sessionId === null) throw new SlicedError('ESRCH', `process ${pid} does not exist`);
    return tree.placeNewTask({ parentPid: pid, sessionId, slice: slice ?? null });
  });
};

/** The subtree at `path` as nested entries (for `slicectl tree`). */
export function listRecursively(service: TreeService, path: string, depth = 0): TreeListing {
  const stat = service.stat(ADMIN, path);
  const entry: TreeListing = { ...stat, name: path === '/' ? '/' : stat.name };
  if (stat.kind === 'link') entry.target = service.readlink(ADMIN, path);
  if (stat.kind === 'dir' && depth < 64) {
    entry.children = service
      .readdir(ADMIN, path)
      .map((child) => listRecursively(service, `${path === '/' ? '' : path}/${child.name}`, depth + 1));
  }
  return entry;
}
