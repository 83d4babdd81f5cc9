/**
 * The tree as a YAML document (`slicectl dump`) and back (`slicectl apply`).
 *
 * Document shape: a mapping per directory; scalars are configuration attributes
 * (`probe_period: 1000`, `threshold: 100`); a string `"-> /probes/cpu/node_load"` is a link;
 * a list under process_set (`single_processes: [1234]`) names members. Read-only files
 * (value, collected_value, status) and the read-only views (/slices, /domains, /nodes) are
 * not part of it, nor are process-set members whose processes have ended (they could not be
 * created again; the tree drops them at the next start).
 *
 * apply computes a plan that makes the tree equal to the document, in a safe order: remove
 * links, remove directories (deepest first), create directories (parents first), write
 * attributes, create links. The service checks every step first (plan-check.ts) and refuses
 * a plan with problems; if a step still fails (a rule between two attributes), the steps
 * already done are undone in reverse, so a bad document changes nothing.
 */
import { stringify as stringifyYaml } from 'yaml';
import { parseYamlText } from '../core/yaml-text.js';
import { SlicedError } from '../core/errors.js';
import { ConfigTree, fail, pathOf, splitPath, type DirNode, type Role } from './tree.js';
import type { TypeRegistry } from './registry.js';

export type TreeDocument = { [name: string]: TreeDocumentValue };
export type TreeDocumentValue = TreeDocument | string | number | boolean | null | Array<string | number>;

export type PlanStep =
  | { op: 'rm'; path: string; target: string }
  | {
      op: 'rmdir';
      path: string;
      /** Its attributes, to restore them if the plan is undone. */ attrs: Array<[string, string]>;
      /** Its attach order, restored too. */ seq?: number;
    }
  | { op: 'mkdir'; path: string }
  | { op: 'write'; path: string; value: string; previous: string | null }
  | { op: 'ln'; path: string; target: string };

const LINK_PREFIX = '->';
const INFO_DIRS = new Set(['slices', 'domains', 'nodes']);

export function dumpTree(tree: ConfigTree): TreeDocument {
  const out: TreeDocument = {};
  for (const [name, child] of tree.root.children) {
    if (child.kind !== 'dir' || INFO_DIRS.has(name)) continue;
    out[name] = dumpDir(tree, child);
  }
  return out;
}

function dumpDir(tree: ConfigTree, dir: DirNode): TreeDocument {
  const out: TreeDocument = {};
  for (const [name, child] of dir.children) {
    if (child.kind === 'file') {
      if (!child.config) continue;
      const text = child.read().replace(/\n$/, '');
      // handle_all is the only attribute of a default group; leave it out while it is off.
      if (name === 'handle_all' && text === '0') continue;
      out[name] = /^-?\d+(\.\d+)?$/.test(text) && String(Number(text)) === text ? Number(text) : text;
    } else if (child.kind === 'link') {
      out[name] = `${LINK_PREFIX} ${child.target}`;
    } else if (child.role === 'pset_list') {
      const members = [...child.children.keys()].filter((m) => tree.memberAlive(child.list!, m));
      // A slice named "0123" stays a string: only names that read back the same become numbers.
      if (members.length > 0) out[name] = members.map((m) => (/^\d+$/.test(m) && String(Number(m)) === m ? Number(m) : m));
    } else {
      const sub = dumpDir(tree, child);
      if (child.userMade || Object.keys(sub).length > 0) out[name] = sub;
    }
  }
  return out;
}

export function treeToYaml(tree: ConfigTree): string {
  return stringifyYaml(dumpTree(tree), { lineWidth: 0 });
}

export function parseTreeYaml(text: string, origin: string): TreeDocument {
  const doc = parseYamlText(text, origin);
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new SlicedError('EINVAL', `${origin} must be a YAML mapping with probes: and schedulers:`);
  return doc as TreeDocument;
}

// ---- flattening ----------------------------------------------------------------------------

interface Flat {
  /** Directory paths in document order (parents before children). */
  dirs: string[];
  attrs: Map<string, string>;
  links: Map<string, string>;
}

function flattenDocument(doc: TreeDocument): Flat {
  const flat: Flat = { dirs: [], attrs: new Map(), links: new Map() };
  const visit = (node: TreeDocument, prefix: string, depth: number): void => {
    if (depth > 64) throw new SlicedError('EINVAL', `${prefix}: the document nests deeper than 64 levels`);
    for (const [name, value] of Object.entries(node)) {
      const path = `${prefix}/${name}`;
      splitPath(path); // validates the component
      if (prefix === '' && INFO_DIRS.has(name))
        throw new SlicedError('EINVAL', `/${name} is a read-only view and cannot appear in a document`);
      if (value === null || (typeof value === 'object' && !Array.isArray(value))) {
        flat.dirs.push(path);
        visit((value ?? {}) as TreeDocument, path, depth + 1);
      } else if (Array.isArray(value)) {
        flat.dirs.push(path);
        for (const member of value) {
          if (typeof member !== 'string' && typeof member !== 'number')
            throw new SlicedError('EINVAL', `${path}: list items must be pids, session ids or slice names, not ${JSON.stringify(member)}`);
          const memberPath = `${path}/${member}`;
          splitPath(memberPath);
          flat.dirs.push(memberPath);
        }
      } else if (typeof value === 'string' && value.trimStart().startsWith(LINK_PREFIX)) {
        flat.links.set(path, value.trimStart().slice(LINK_PREFIX.length).trim());
      } else if (typeof value === 'boolean') {
        flat.attrs.set(path, value ? '1' : '0');
      } else {
        flat.attrs.set(path, String(value));
      }
    }
  };
  visit(doc, '', 0);
  return flat;
}

function flattenTree(tree: ConfigTree): {
  userDirs: string[];
  allDirs: Set<string>;
  attrs: Map<string, string>;
  links: Map<string, string>;
} {
  const userDirs: string[] = [];
  const allDirs = new Set<string>();
  const attrs = new Map<string, string>();
  const links = new Map<string, string>();
  const visit = (dir: DirNode): void => {
    for (const [name, child] of dir.children) {
      if (dir === tree.root && INFO_DIRS.has(name)) continue;
      const path = pathOf(child);
      if (child.kind === 'dir') {
        allDirs.add(path);
        if (child.userMade) userDirs.push(path);
        visit(child);
      } else if (child.kind === 'link') links.set(path, child.target);
      else if (child.config) attrs.set(path, child.read().replace(/\n$/, ''));
    }
  };
  visit(tree.root);
  return { userDirs, allDirs, attrs, links };
}

// ---- planning ------------------------------------------------------------------------------

/** The steps that make `tree` equal to `doc`. Loads the types the document names (to know their default groups). */
export async function planApply(tree: ConfigTree, registry: TypeRegistry, doc: TreeDocument): Promise<PlanStep[]> {
  const want = flattenDocument(doc);
  const have = flattenTree(tree);
  const steps: PlanStep[] = [];
  const wantDirs = new Set(want.dirs);

  for (const [path, target] of have.links) {
    if (want.links.get(path) !== target || !parentKept(path, wantDirs)) steps.push({ op: 'rm', path, target });
  }
  const removed = have.userDirs.filter((d) => !wantDirs.has(d)).sort((a, b) => depth(b) - depth(a));
  // A scheduler with handle_all on refuses rmdir (ENOTEMPTY): turn it off first.
  for (const path of removed) {
    if (have.attrs.get(`${path}/process_set/handle_all`) === '1')
      steps.push({ op: 'write', path: `${path}/process_set/handle_all`, value: '0', previous: '1' });
  }
  for (const path of removed) {
    const attrs = [...have.attrs].filter(([p]) => p.slice(0, p.lastIndexOf('/')) === path);
    const node = tree.lookup(path, false);
    steps.push({ op: 'rmdir', path, attrs, ...(node.kind === 'dir' ? { seq: node.seq } : {}) });
  }

  // Directories that exist (or will, as default groups of what we create) need no mkdir.
  const existing = new Set([...have.allDirs].filter((d) => !removed.some((r) => d === r || d.startsWith(`${r}/`))));
  const roles = new Map<string, Role>();
  for (const path of existing) roles.set(path, roleOf(tree, path));
  roles.set('/probes', 'probes');
  roles.set('/schedulers', 'schedulers');
  for (const path of want.dirs) {
    if (existing.has(path)) continue;
    const parent = path.slice(0, path.lastIndexOf('/')) || '/';
    const name = path.slice(path.lastIndexOf('/') + 1);
    const parentRole = parent === '/' ? 'root' : roles.get(parent);
    if (parentRole === undefined) throw fail('ENOENT', `${path}: its parent ${parent} is neither in the tree nor created by the document`);
    const created = await predictDirectory(registry, parentRole, name, path);
    steps.push({ op: 'mkdir', path });
    for (const [p, role] of created) {
      existing.add(p);
      roles.set(p, role);
    }
  }
  for (const [path, value] of want.attrs) {
    const current = have.attrs.get(path);
    const dir = path.slice(0, path.lastIndexOf('/'));
    const dirIsNew = !have.allDirs.has(dir) || removed.includes(dir);
    if (current !== value || dirIsNew) steps.push({ op: 'write', path, value, previous: dirIsNew ? null : (current ?? null) });
  }
  for (const [path, target] of want.links) {
    if (have.links.get(path) !== target || steps.some((s) => s.op === 'rm' && s.path === path)) steps.push({ op: 'ln', path, target });
  }
  // handle_all left out of a document means off.
  for (const [path, value] of have.attrs) {
    if (
      path.endsWith('/process_set/handle_all') &&
      value === '1' &&
      !want.attrs.has(path) &&
      wantDirs.has(path.slice(0, path.lastIndexOf('/')))
    ) {
      steps.push({ op: 'write', path, value: '0', previous: '1' });
    }
  }
  return steps;
}

function parentKept(path: string, wantDirs: Set<string>): boolean {
  return wantDirs.has(path.slice(0, path.lastIndexOf('/')));
}

function depth(path: string): number {
  return path.split('/').length;
}

function roleOf(tree: ConfigTree, path: string): Role {
  const node = tree.lookup(path, false);
  return node.kind === 'dir' ? node.role : 'info_item';
}

/** The directory mkdir would create at `path` and its default groups, with their roles. */
async function predictDirectory(registry: TypeRegistry, parentRole: Role, name: string, path: string): Promise<Map<string, Role>> {
  const out = new Map<string, Role>();
  switch (parentRole) {
    case 'probes': {
      const type = await registry.load(name);
      if (type.kind !== 'probe') throw fail('EINVAL', `${path}: ${name} is a ${type.kind}, not a probe`);
      out.set(path, 'probe');
      for (const s of type.sources) out.set(`${path}/${s.name}`, 'source');
      return out;
    }
    case 'schedulers':
      out.set(path, 'scheduler');
      out.set(`${path}/process_set`, 'process_set');
      for (const list of ['single_processes', 'process_sessions', 'slices']) out.set(`${path}/process_set/${list}`, 'pset_list');
      return out;
    case 'scheduler': {
      const type = await registry.load(name);
      if (type.kind !== 'policy') throw fail('EINVAL', `${path}: ${name} is a ${type.kind}, not a scheduling policy`);
      out.set(path, 'policy');
      for (const p of type.ports) out.set(`${path}/${p.name}`, 'port');
      return out;
    }
    case 'port':
    case 'filter': {
      const type = await registry.load(name);
      if (type.kind !== 'filter') throw fail('EINVAL', `${path}: ${name} is a ${type.kind}, not a filter`);
      out.set(path, 'filter');
      for (const p of type.ports ?? []) out.set(`${path}/${p.name}`, 'port');
      return out;
    }
    case 'pset_list':
      out.set(path, 'pset_member');
      return out;
    default:
      throw fail('EPERM', `${path}: nothing can be created under a ${parentRole.replace('_', ' ')} directory`);
  }
}

// ---- execution -----------------------------------------------------------------------------

/** Run the plan; on the first failure undo what was done and rethrow, naming the step. */
export async function executePlan(tree: ConfigTree, steps: readonly PlanStep[]): Promise<void> {
  const done: PlanStep[] = [];
  const queue = [...steps];
  const retried = new Set<PlanStep>();
  for (let i = 0; i < queue.length; i++) {
    const step = queue[i]!;
    try {
      await runStep(tree, step);
      done.push(step);
    } catch (err) {
      // Attributes checked against each other (hysteresis low <= high) may need the other
      // one written first: retry a refused write once, after the later writes to its directory.
      if (step.op === 'write' && !retried.has(step) && err instanceof SlicedError && err.code === 'EINVAL') {
        const dir = step.path.slice(0, step.path.lastIndexOf('/'));
        const last = queue.findLastIndex((s, j) => j > i && s.op === 'write' && s.path.slice(0, s.path.lastIndexOf('/')) === dir);
        if (last > i) {
          retried.add(step);
          queue.splice(last + 1, 0, step);
          continue;
        }
      }
      const undoProblems = await undo(tree, done);
      const message = `step ${steps.indexOf(step) + 1} of ${steps.length} (${describeStep(step)}) failed: ${(err as Error).message}`;
      const code = err instanceof SlicedError ? err.code : 'EIO';
      throw new SlicedError(
        code,
        undoProblems.length === 0
          ? `${message}; nothing was changed`
          : `${message}; undoing the earlier steps also failed: ${undoProblems.join('; ')}`,
      );
    }
  }
}

async function runStep(tree: ConfigTree, step: PlanStep): Promise<void> {
  switch (step.op) {
    case 'rm':
      return tree.unlink(step.path);
    case 'rmdir':
      return tree.rmdir(step.path);
    case 'mkdir':
      return tree.mkdir(step.path);
    case 'write':
      if (tree.read(step.path).replace(/\n$/, '') !== step.value) tree.write(step.path, step.value);
      return;
    case 'ln':
      return tree.symlink(step.target, step.path);
  }
}

async function undo(tree: ConfigTree, done: PlanStep[]): Promise<string[]> {
  const problems: string[] = [];
  for (const step of [...done].reverse()) {
    try {
      if (step.op === 'rm') tree.symlink(step.target, step.path);
      else if (step.op === 'rmdir') {
        // A member whose processes ended meanwhile is restored as it was (never an undo failure).
        await tree.mkdir(step.path, { allowVanished: true, ...(step.seq === undefined ? {} : { seq: step.seq }) });
        for (const [path, value] of step.attrs) tree.write(path, value);
      } else if (step.op === 'mkdir') tree.rmdir(step.path);
      else if (step.op === 'write' && step.previous !== null) tree.write(step.path, step.previous);
      else if (step.op === 'ln') tree.unlink(step.path);
    } catch (err) {
      problems.push(`${describeStep(step)}: ${(err as Error).message}`);
    }
  }
  return problems;
}

export function describeStep(step: PlanStep): string {
  switch (step.op) {
    case 'rm':
      return `rm ${step.path}`;
    case 'rmdir':
      return `rmdir ${step.path}`;
    case 'mkdir':
      return `mkdir ${step.path}`;
    case 'write':
      return `write ${step.path} = ${step.value}`;
    case 'ln':
      return `ln -s ${step.target} ${step.path}`;
  }
}
