/**
 * Which slice may use which service, from what the services directory holds. Pure: the
 * scan (src/vsys/services.ts) reads the files; this decides.
 *
 * - A public service `NAME` is granted to the slices its ACL lists; no ACL (or an empty
 *   one) grants it to nobody.
 * - A private service `pvt/<slice>/NAME` is for that slice only: without an ACL it gets
 *   `rw`; with one, the ACL's line for that slice decides (and may say `#! stateful`);
 *   lines naming other slices are ignored.
 * - A private service hides a public one of the same name for its slice.
 */
import type { Acl } from './acl.js';
import type { AccessMode } from '../wire/vsys.js';

export interface ScannedService {
  name: string;
  /** The slice of a private service (pvt/<slice>/NAME); null for a public one. */
  owner: string | null;
  /** Absolute path of the script. */
  script: string;
  /** Changes whenever the script file is replaced or edited (stateful instances restart). */
  version: string;
  acl: Acl | null;
}

export interface Grant {
  service: string;
  mode: AccessMode;
  stateful: boolean;
  script: string;
  version: string;
  private: boolean;
}

/** Grants per existing slice: slice -> service -> grant. Slices with nothing are absent. */
export function grantsBySlice(services: readonly ScannedService[], slices: Iterable<string>): Map<string, Map<string, Grant>> {
  const existing = new Set(slices);
  const result = new Map<string, Map<string, Grant>>();
  const put = (slice: string, grant: Grant): void => {
    let forSlice = result.get(slice);
    if (!forSlice) result.set(slice, (forSlice = new Map()));
    const current = forSlice.get(grant.service);
    if (current?.private && !grant.private) return;
    forSlice.set(grant.service, grant);
  };
  for (const service of services) {
    const base = { service: service.name, stateful: service.acl?.stateful ?? false, script: service.script, version: service.version };
    if (service.owner !== null) {
      if (!existing.has(service.owner)) continue;
      const mode = service.acl === null ? 'rw' : service.acl.entries.get(service.owner);
      if (mode !== undefined) put(service.owner, { ...base, mode, private: true });
      continue;
    }
    for (const [slice, mode] of service.acl?.entries ?? []) {
      if (existing.has(slice)) put(slice, { ...base, mode, private: false });
    }
  }
  return result;
}

/** Two grants that differ here need a new channel (FIFOs may stay). */
export function grantKey(grant: Grant): string {
  return `${grant.mode}|${grant.stateful}|${grant.script}|${grant.version}`;
}
