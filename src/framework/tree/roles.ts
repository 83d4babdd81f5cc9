/**
 * The registration of every role, and placement: which role mkdir creates in a directory of
 * which role. A new role is one file (its node type, added to DirNodes, and its RoleSpec) and
 * one line here; the type below refuses a role left out.
 */
import type { RoleSpec } from './host.js';
import type { DirNode, DirNodes, Role } from './nodes.js';
import { filterRole } from './filter.js';
import { policyRole } from './policy.js';
import { portRole } from './port.js';
import { probeRole } from './probe.js';
import { processSetRole, psetListRole, psetMemberRole } from './process-set.js';
import { probesRole, rootRole, schedulersRole } from './root.js';
import { schedulerRole } from './scheduler.js';
import { sourceRole } from './source.js';
import { infoItemRole, infoRole } from './view.js';

const ROLES: { readonly [R in Role]: RoleSpec<DirNodes[R]> } = {
  root: rootRole,
  probes: probesRole,
  schedulers: schedulersRole,
  info: infoRole,
  info_item: infoItemRole,
  probe: probeRole,
  source: sourceRole,
  scheduler: schedulerRole,
  process_set: processSetRole,
  pset_list: psetListRole,
  pset_member: psetMemberRole,
  policy: policyRole,
  port: portRole,
  filter: filterRole,
};

/** The spec of a node's role; its methods take that node. */
export function roleOf(node: DirNode): RoleSpec {
  return ROLES[node.role];
}

/** Parent role → the role mkdir creates there. */
const PLACEMENT = new Map<Role, RoleSpec>();
for (const spec of Object.values<RoleSpec>(ROLES)) {
  for (const parent of spec.under ?? []) {
    const taken = PLACEMENT.get(parent);
    if (taken) throw new Error(`roles ${taken.role} and ${spec.role} are both made by mkdir in a ${parent}: placement must be one role`);
    PLACEMENT.set(parent, spec);
  }
}

/** The role of a directory made by mkdir in `parent`, or undefined where mkdir makes nothing. */
export function childRole(parent: DirNode): RoleSpec | undefined {
  return PLACEMENT.get(parent.role);
}

export function canMkdirIn(dir: DirNode): boolean {
  return PLACEMENT.has(dir.role);
}
