/**
 * What the dashboard may ask of the admin API (its requests go to it as they are, under
 * /api): views that show the node, the cluster and vsys to an operator, and a few admin
 * actions. Task output, vsys payloads, exec and the tree's writes stay on the admin socket.
 */

export type WebAccess = 'read' | 'admin';

const NAME = '[^/]+';
const TASK = '[0-9a-f]{12}';

const READ: readonly RegExp[] = [
  /^\/v1\/(status|node)$/,
  new RegExp(`^/v1/(slices|domains|nodes)(/${NAME})?$`),
  /^\/v1\/io\/devices$/,
  /^\/v1\/net(\/accounts|\/reservations)?$/,
  new RegExp(`^/v1/tasks(/${TASK})?$`),
  /^\/v1\/tree\/(ls|cat|stat|readlink|tree|dump)$/,
  /^\/v1\/vsys(\/services|\/log)?$/,
  new RegExp(`^/v1/simulations(/${NAME}(/${NAME}\\.svg)?)?$`),
];

const ADMIN: ReadonlyArray<readonly [string, RegExp]> = [
  ['POST', /^\/v1\/slices$/],
  ['PATCH', new RegExp(`^/v1/slices/${NAME}$`)],
  ['DELETE', new RegExp(`^/v1/slices/${NAME}$`)],
  ['PATCH', new RegExp(`^/v1/nodes/${NAME}$`)],
  ['POST', new RegExp(`^/v1/nodes/${NAME}/drain$`)],
  ['POST', new RegExp(`^/v1/tasks/${TASK}/stop$`)],
  ['DELETE', new RegExp(`^/v1/simulations/${NAME}$`)],
];

/** How a request to the admin API (`path` without the query) may be made from the dashboard, or null when it may not. */
export function webAccess(method: string, path: string): WebAccess | null {
  if (method === 'GET' || method === 'HEAD') return READ.some((r) => r.test(path)) ? 'read' : null;
  return ADMIN.some(([m, r]) => m === method && r.test(path)) ? 'admin' : null;
}
