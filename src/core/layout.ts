/**
 * Where slices and domains live in a cgroup hierarchy, relative to sliced's root group:
 * domains are parent groups named "<domain>.domain", slices are leaves named "<slice>.slice".
 * The suffixes keep our directories apart from the kernel's control files.
 */
import type { DesiredState } from './model.js';
import { domainChain, domainPath } from './domains.js';

export const SLICE_SUFFIX = '.slice';
export const DOMAIN_SUFFIX = '.domain';

export function domainGroup(state: DesiredState, domain: string): string[] {
  return domainPath(state, domain).map((d) => d + DOMAIN_SUFFIX);
}

export function sliceGroup(state: DesiredState, slice: string): string[] {
  const spec = state.slices.get(slice);
  const parent = spec?.domain ? domainGroup(state, spec.domain) : [];
  return [...parent, slice + SLICE_SUFFIX];
}

export type GroupKind = { kind: 'slice' | 'domain'; name: string };

/** What a directory name under the root stands for, or null when it is not ours. */
export function parseGroupName(dir: string): GroupKind | null {
  if (dir.endsWith(SLICE_SUFFIX)) return { kind: 'slice', name: dir.slice(0, -SLICE_SUFFIX.length) };
  if (dir.endsWith(DOMAIN_SUFFIX)) return { kind: 'domain', name: dir.slice(0, -DOMAIN_SUFFIX.length) };
  return null;
}

export const USER_PREFIX_PATTERN = /^sl-([a-z0-9]{1,5}-)?$/;
export const USER_PREFIX_ALLOWED = '"sl-", or "sl-" then 1 to 5 lower-case letters or digits then "-"';

/**
 * The Unix user sliced creates for a slice: "<prefix><name>" (prefix "sl-" unless configured) when that is a valid login name of
 * at most 32 characters, otherwise a shortened, lower-cased form with a hash so that
 * different slice names never map to the same user.
 */
export function sliceUserName(slice: string, prefix = 'sl-'): string {
  const direct = `${prefix}${slice}`;
  // A name that already ends like a hashed form ("-" and 8 hex digits) is hashed too, so that
  // e.g. slice "web-1a2b3c4d" cannot get the user hashed for slice "Web".
  if (/^[a-z0-9_-]+$/.test(slice) && direct.length <= 32 && !/-[0-9a-f]{8}$/.test(slice)) return direct;
  const cleaned = slice
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '-')
    .slice(0, 22 - prefix.length);
  return `${prefix}${cleaned}-${fnv1a(slice).toString(16).padStart(8, '0')}`;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

export const sliceKey = (name: string): string => `slice/${name}`;
export const domainKey = (name: string): string => `domain/${name}`;

/** What a key of sliceKey or domainKey names, or null for any other string. */
export function parseKey(id: string): GroupKind | null {
  if (id.startsWith('slice/')) return { kind: 'slice', name: id.slice('slice/'.length) };
  if (id.startsWith('domain/')) return { kind: 'domain', name: id.slice('domain/'.length) };
  return null;
}

/**
 * Slices and domains whose groups a change from `before` to `next` touches: added, removed
 * or changed specs (compared by reference: changes copy only what they modify), and every
 * member below a changed domain, since a domain's limit and path apply to its members too.
 */
export function affectedIds(before: DesiredState, next: DesiredState): Set<string> {
  const ids = new Set<string>();
  const changedDomains: string[] = [];
  for (const name of new Set([...[...before.slices.keys()], ...[...next.slices.keys()]])) {
    if (before.slices.get(name) !== next.slices.get(name)) ids.add(sliceKey(name));
  }
  for (const name of new Set([...[...before.domains.keys()], ...[...next.domains.keys()]])) {
    if (before.domains.get(name) !== next.domains.get(name)) {
      ids.add(domainKey(name));
      changedDomains.push(name);
    }
  }
  if (changedDomains.length > 0) {
    for (const state of [before, next]) {
      const inside = (domain: string | null): boolean => domainChain(state, domain).some((d) => changedDomains.includes(d));
      for (const slice of [...state.slices.values()]) if (inside(slice.domain)) ids.add(sliceKey(slice.name));
      for (const domain of [...state.domains.values()]) if (inside(domain.parent)) ids.add(domainKey(domain.name));
    }
  }
  return ids;
}
