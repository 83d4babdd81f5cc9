/**
 * Effective CPU limits: a member of a domain can never use more than any enclosing domain's
 * limit, so its effective limit is the smallest limit on its path to the node level.
 */
import type { DesiredState } from './model.js';
import { domainChain } from './domains.js';

export function minLimit(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

export function effectiveDomainLimit(state: DesiredState, domain: string | null): number | null {
  let limit: number | null = null;
  for (const name of domainChain(state, domain)) {
    const spec = state.domains.get(name);
    if (!spec) break;
    limit = minLimit(limit, spec.cpu.limit);
  }
  return limit;
}

export function effectiveSliceLimit(state: DesiredState, slice: string): number | null {
  const spec = state.slices.get(slice);
  if (!spec) return null;
  return minLimit(spec.cpu.limit, effectiveDomainLimit(state, spec.domain));
}
