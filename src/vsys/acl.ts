/**
 * vsys ACL files (`NAME.acl` beside a service script), as PlanetLab's vsys read them: one
 * slice per line, optionally followed by a mode `r`, `w` or `rw` (a bare name means `rw`).
 * `#` starts a comment. A first line `#! stateful` declares the service stateful.
 *
 * Pure: the caller reads the file. Bad lines are reported with their line number and
 * ignored; they never grant anything (fail-closed).
 */
import { nameProblem } from '../core/names.js';
import type { AccessMode } from '../wire/vsys.js';

export interface AclProblem {
  line: number;
  message: string;
}

export interface Acl {
  stateful: boolean;
  /** Slice name -> mode, in file order. */
  entries: Map<string, AccessMode>;
  problems: AclProblem[];
}

const MODES: ReadonlySet<string> = new Set(['r', 'w', 'rw']);
const DIRECTIVES: ReadonlySet<string> = new Set(['stateful']);

export function parseAcl(text: string): Acl {
  const acl: Acl = { stateful: false, entries: new Map(), problems: [] };
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    const problem = (message: string): void => void acl.problems.push({ line, message });
    const trimmed = raw.trim();
    if (trimmed.startsWith('#!')) {
      const directive = trimmed.slice(2).trim();
      if (line !== 1) problem(`directive "${trimmed}" is only allowed on the first line; ignored`);
      else if (!DIRECTIVES.has(directive)) problem(`unknown directive "${directive}"; the only one is "#! stateful"`);
      else acl.stateful = true;
      return;
    }
    const content = raw.replace(/#.*$/, '').trim();
    if (content === '') return;
    const fields = content.split(/\s+/);
    if (fields.length > 2) {
      problem(`"${content}" has ${fields.length} fields; a line is a slice name and an optional mode (r, w or rw)`);
      return;
    }
    const [slice, mode = 'rw'] = fields as [string, string?];
    const bad = nameProblem(slice);
    if (bad !== null) {
      problem(`slice name ${JSON.stringify(slice)} ${bad}`);
      return;
    }
    if (!MODES.has(mode)) {
      problem(`mode ${JSON.stringify(mode)} for slice ${slice} must be r, w or rw`);
      return;
    }
    if (acl.entries.has(slice)) {
      problem(`slice ${slice} is listed again; the first line (mode ${acl.entries.get(slice)}) is kept`);
      return;
    }
    acl.entries.set(slice, mode as AccessMode);
  });
  return acl;
}

export function canRead(mode: AccessMode): boolean {
  return mode !== 'w';
}

export function canWrite(mode: AccessMode): boolean {
  return mode !== 'r';
}
