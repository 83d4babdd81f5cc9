/**
 * Walking up the domain tree. Every question about a domain's ancestors (its cgroup path,
 * the caps it inherits, whether a change touches it, whether it would contain itself) goes
 * through domainChain, with one depth limit.
 */
import type { DesiredState } from './model.js';

/** Domains nest at most this deep (admission refuses deeper nesting). */
export const MAX_DOMAIN_DEPTH = 8;

/**
 * `domain`, its parent, its parent's parent ... up to the top (empty for null). The walk ends
 * after a domain that does not exist, at the first name seen twice (a cycle: that name ends
 * the chain, so a caller can name the loop), or after MAX_DOMAIN_DEPTH + 1 names (so a caller
 * can tell a chain that is too deep).
 */
export function domainChain(state: DesiredState, domain: string | null): string[] {
  const chain: string[] = [];
  for (let current = domain; current !== null && chain.length <= MAX_DOMAIN_DEPTH;) {
    const repeated = chain.includes(current);
    chain.push(current);
    if (repeated) break;
    current = state.domains.get(current)?.parent ?? null;
  }
  return chain;
}

/** The domains from the top down to `domain`: the nesting of its cgroup. */
export function domainPath(state: DesiredState, domain: string | null): string[] {
  return domainChain(state, domain).reverse();
}
