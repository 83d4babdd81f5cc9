/**
 * Where slices and domains live in a cgroup hierarchy, relative to sliced's root group:
 * domains are parent groups named "<domain>.domain", slices are leaves named "<slice>.slice".
 * The suffixes keep our directories apart from the kernel's control files.
 */
import type { DesiredState } from './model.js';
import { domainPath } from './changes.js';

export const SLICE_SUFFIX = '.slice';
export const DOMAIN_SUFFIX = '.domain';

export function domainGroup(state: DesiredState, domain: string): string[] {
  return domainPath(state, domain).map((d) => d + DOMAIN_SUFFIX);
}

export function sliceGroup(state: DesiredState, slice: string): string[] {
  const spec = state.slices[slice];
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

/**
 * The Unix user sliced creates for a slice: "sl-<name>" when that is a valid login name of
 * at most 32 characters, otherwise a shortened, lower-cased form with a hash so that
 * different slice names never map to the same user.
 */
export function sliceUserName(slice: string): string {
  const direct = `sl-${slice}`;
  // A name that already ends like a hashed form ("-" and 8 hex digits) is hashed too, so that
  // e.g. slice "web-1a2b3c4d" cannot get the user hashed for slice "Web".
  if (/^[a-z0-9_-]+$/.test(slice) && direct.length <= 32 && !/-[0-9a-f]{8}$/.test(slice)) return direct;
  const cleaned = slice.toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 19);
  return `sl-${cleaned}-${fnv1a(slice).toString(16).padStart(8, '0')}`;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
