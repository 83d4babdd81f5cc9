/**
 * What apply will check, run before anything changes: each step of a plan is tried on a
 * model of the tree (directories with their roles and value types, attributes with the
 * validation their write runs, links), so `apply --dry-run` reports the problems apply would
 * meet and apply refuses a plan that has any, with nothing changed. The model uses the
 * tree's own checks where they need no live component: process-set members
 * (ConfigTree.checkMember), attribute values (each file's `check`, or the type's parser for a
 * component the plan creates), names, types and their kinds.
 *
 * Not modelled: rules between two attributes of one component (hysteresis low <= high),
 * which only the component can check; apply meets those when it runs and undoes the steps.
 *
 * It also finds what an operator should confirm or know: a plan that stops the daemon's own
 * CPU control loop (/schedulers/cpu), and members kept although their processes have ended.
 */
import { SlicedError, type ErrorCode } from '../core/errors.js';
import { nameProblem } from '../core/names.js';
import { RESERVED_ENTRIES, type TypeRegistry } from './registry.js';
import {
  MAX_DEPTH,
  fail,
  parseAttribute,
  parseHandleAll,
  parseProbePeriod,
  pathOf,
  splitPath,
  type ConfigTree,
  type DirNode,
  type PsetList,
  type Role,
} from './tree.js';
import type { FilterInstance } from './instances.js';
import type { ComponentType, PortSpec } from './types.js';
import { describeStep, type PlanStep } from './document.js';

export interface PlanProblem {
  /** 1-based, as in "step 3 of 9". */
  step: number;
  code: ErrorCode;
  message: string;
}

export interface PlanCheck {
  problems: PlanProblem[];
  /** Worth knowing; apply goes ahead. */
  warnings: string[];
  /** Apply goes ahead only when confirmed (force). */
  confirm: string[];
}

/** The scheduler that runs the daemon's CPU control loop (defaults/tree.yaml). */
export const CONTROL_LOOP = '/schedulers/cpu';

const INFO_DIRS = new Set(['slices', 'domains', 'nodes']);

interface ModelDir {
  role: Role;
  userMade: boolean;
  /** A port's or filter's slot type, a probe source's output type. */
  valueType?: string;
  /** Types a link into this port may bring besides valueType. */
  alsoLinks?: readonly string[];
  list?: PsetList;
}

interface ModelFile {
  writable: boolean;
  check?: (text: string) => void;
  value: string;
}

class TreeModel {
  readonly dirs = new Map<string, ModelDir>();
  readonly files = new Map<string, ModelFile>();
  readonly links = new Map<string, string>();

  static of(tree: ConfigTree): TreeModel {
    const model = new TreeModel();
    model.dirs.set('', { role: 'root', userMade: false });
    const visit = (dir: DirNode): void => {
      for (const [name, child] of dir.children) {
        if (dir === tree.root && INFO_DIRS.has(name)) continue;
        const path = pathOf(child);
        if (child.kind === 'link') model.links.set(path, child.target);
        else if (child.kind === 'file') {
          let value = '';
          if (child.config) value = child.read().replace(/\n$/, '');
          model.files.set(path, { writable: child.write !== undefined, ...(child.check ? { check: child.check } : {}), value });
        } else {
          const valueType = valueTypeOf(child);
          const alsoLinks = child.role === 'port' ? child.slot!.linkTypes.slice(1).map((t) => t.name) : [];
          model.dirs.set(path, {
            role: child.role,
            userMade: child.userMade,
            ...(valueType ? { valueType } : {}),
            ...(alsoLinks.length > 0 ? { alsoLinks } : {}),
            ...(child.list ? { list: child.list } : {}),
          });
          visit(child);
        }
      }
    };
    visit(tree.root);
    return model;
  }

  childDirs(path: string): Array<[string, ModelDir]> {
    return [...this.dirs].filter(([p]) => parentPath(p) === path && p !== '');
  }

  /** A port or filter has at most one source: a link or a filter directory. */
  slotTaken(path: string): boolean {
    return [...this.links.keys()].some((p) => parentPath(p) === path) || this.childDirs(path).some(([, d]) => d.role === 'filter');
  }

  remove(path: string): void {
    const under = (p: string): boolean => p === path || p.startsWith(`${path}/`);
    for (const map of [this.dirs, this.files, this.links] as Array<Map<string, unknown>>)
      for (const p of [...map.keys()]) if (under(p)) map.delete(p);
  }

  addFile(path: string, writable: boolean, value = '', check?: (text: string) => void): void {
    this.files.set(path, { writable, value, ...(check ? { check } : {}) });
  }

  /** The control loop runs while its policy exists and every port of it has a source. */
  controlLoopRuns(): boolean {
    const policy = this.childDirs(CONTROL_LOOP).find(([, d]) => d.role === 'policy');
    if (!policy) return false;
    return this.childDirs(policy[0])
      .filter(([, d]) => d.role === 'port')
      .every(([p]) => this.slotTaken(p));
  }
}

function valueTypeOf(dir: DirNode): string | undefined {
  if (dir.role === 'port') return dir.slot!.valueType.name;
  if (dir.role === 'filter') return (dir.slot as FilterInstance).valueType.name;
  if (dir.role === 'source') return dir.probe!.outputs[dir.sourceIndex!]!.value.type.name;
  return undefined;
}

function parentPath(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Try every step of `steps` on a model of `tree`; report what would fail and what needs confirming. */
export async function checkPlan(tree: ConfigTree, registry: TypeRegistry, steps: readonly PlanStep[]): Promise<PlanCheck> {
  const model = TreeModel.of(tree);
  const loopRan = model.controlLoopRuns();
  const problems: PlanProblem[] = [];
  // A directory whose creation fails: what the plan puts inside it is not reported again.
  const failed: string[] = [];
  for (const [i, step] of steps.entries()) {
    const inFailed = (p: string): boolean => failed.some((f) => p === f || p.startsWith(`${f}/`));
    if (inFailed(parentPath(step.path)) || (step.op === 'ln' && inFailed(step.target))) continue;
    try {
      await tryStep(tree, registry, model, step);
    } catch (err) {
      const code = err instanceof SlicedError ? err.code : 'EIO';
      problems.push({ step: i + 1, code, message: (err as Error).message });
      if (step.op === 'mkdir') failed.push(step.path);
    }
  }

  const confirm: string[] = [];
  if (loopRan && !model.controlLoopRuns()) {
    const what = steps.some((s) => s.op === 'rmdir' && s.path === CONTROL_LOOP)
      ? `the plan removes ${CONTROL_LOOP}, the daemon's own CPU control loop`
      : `the plan stops the daemon's own CPU control loop (${CONTROL_LOOP} keeps no policy with all its ports fed)`;
    confirm.push(`${what}: slices' CPU weights stop following their entitlements until it is rebuilt`);
  }
  const warnings: string[] = [];
  for (const [path, dir] of model.dirs) {
    if (dir.role !== 'pset_member' || !tree.exists(path) || tree.memberAlive(dir.list!, baseName(path))) continue;
    warnings.push(
      `${path} is kept, but what it names has ended (it is dropped at the next start); leave it out of the document to remove it now`,
    );
  }
  return { problems, warnings, confirm };
}

/** The message apply gives for a plan with problems (the first one first, as when a step fails). */
export function describeProblems(steps: readonly PlanStep[], problems: readonly PlanProblem[]): string {
  return problems.map((p) => `step ${p.step} of ${steps.length} (${describeStep(steps[p.step - 1]!)}) failed: ${p.message}`).join('; ');
}

async function tryStep(tree: ConfigTree, registry: TypeRegistry, model: TreeModel, step: PlanStep): Promise<void> {
  switch (step.op) {
    case 'rm': {
      if (!model.links.has(step.path)) {
        if (model.dirs.has(step.path)) throw fail('EISDIR', `${step.path} is a directory; use rmdir`);
        throw fail(
          model.files.has(step.path) ? 'EPERM' : 'ENOENT',
          model.files.has(step.path) ? `${step.path} is an attribute and cannot be removed` : `${step.path} does not exist`,
        );
      }
      model.links.delete(step.path);
      return;
    }
    case 'rmdir':
      checkRmdir(model, step.path);
      model.remove(step.path);
      return;
    case 'mkdir':
      await tryMkdir(tree, registry, model, step.path);
      return;
    case 'write': {
      const file = model.files.get(step.path);
      if (!file) {
        if (model.dirs.has(step.path)) throw fail('EISDIR', `${step.path} is a directory`);
        throw fail('ENOENT', `${step.path} does not exist`);
      }
      if (!file.writable) throw fail('EPERM', `${step.path} is read-only`);
      const value = step.value.replace(/\n$/, '');
      if (value !== file.value) file.check?.(value);
      file.value = value;
      return;
    }
    case 'ln':
      tryLink(model, step.target, step.path);
      return;
  }
}

function checkRmdir(model: TreeModel, path: string): void {
  const dir = model.dirs.get(path);
  if (!dir)
    throw fail(
      model.files.has(path) || model.links.has(path) ? 'ENOTDIR' : 'ENOENT',
      `${path} ${model.files.has(path) || model.links.has(path) ? 'is not a directory' : 'does not exist'}`,
    );
  if (!dir.userMade) throw fail('EPERM', `${path} is part of ${parentPath(path) || '/'} and goes away only with it`);
  switch (dir.role) {
    case 'probe': {
      const users = [...model.links.values()].filter((t) => t.startsWith(`${path}/`)).length;
      if (users > 0) throw fail('EBUSY', `${path} is in use: ${users} link(s) point to its sources; remove them first`);
      return;
    }
    case 'scheduler': {
      const policy = model.childDirs(path).find(([, d]) => d.role === 'policy');
      if (policy) throw fail('ENOTEMPTY', `${path} still holds policy ${baseName(policy[0])}; remove it first`);
      const members = [...model.dirs].some(([p, d]) => d.role === 'pset_member' && p.startsWith(`${path}/process_set/`));
      if (members || model.files.get(`${path}/process_set/handle_all`)?.value === '1') {
        throw fail('ENOTEMPTY', `${path}/process_set is not empty; remove its members (and set handle_all to 0) first`);
      }
      return;
    }
    case 'policy':
    case 'filter': {
      if (dir.role === 'filter' && model.slotTaken(path)) throw fail('ENOTEMPTY', `${path} still has a source; remove it first`);
      const linked = model
        .childDirs(path)
        .filter(([p, d]) => d.role === 'port' && model.slotTaken(p))
        .map(([p]) => baseName(p));
      if (linked.length > 0)
        throw fail('ENOTEMPTY', `${path} still has sources on port(s) ${linked.join(', ')}; remove the links and filters first`);
      return;
    }
    case 'pset_member':
      return;
    default:
      throw fail('EPERM', `${path} cannot be removed`);
  }
}

async function tryMkdir(tree: ConfigTree, registry: TypeRegistry, model: TreeModel, path: string): Promise<void> {
  const parts = splitPath(path);
  if (parts.length === 0) throw fail('EEXIST', '/ already exists');
  if (model.dirs.has(path) || model.files.has(path) || model.links.has(path)) throw fail('EEXIST', `${path} already exists`);
  const parentAt = parentPath(path);
  const parent = model.dirs.get(parentAt);
  if (!parent) throw fail('ENOENT', `${parentAt} does not exist`);
  const name = parts[parts.length - 1]!;
  const load = async <K extends ComponentType['kind']>(kind: K): Promise<Extract<ComponentType, { kind: K }>> => {
    const type = await registry.load(name);
    if (type.kind !== kind) throw fail('EINVAL', `${name} is a ${type.kind}, not a ${kind}; it cannot be created under ${parentAt}`);
    return type as Extract<ComponentType, { kind: K }>;
  };
  const attributes = (type: ComponentType): void => {
    for (const spec of type.attributes ?? []) {
      if (RESERVED_ENTRIES.has(spec.name)) continue;
      model.addFile(`${path}/${spec.name}`, true, String(spec.default), (text) => void parseAttribute(path, spec, text));
    }
  };
  const ports = (specs: ReadonlyArray<PortSpec>): void => {
    for (const port of specs) {
      model.dirs.set(`${path}/${port.name}`, {
        role: 'port',
        userMade: false,
        valueType: port.valueType,
        ...(port.alsoLinks ? { alsoLinks: port.alsoLinks } : {}),
      });
      for (const file of ['collected_value', 'type', 'description']) model.addFile(`${path}/${port.name}/${file}`, false);
    }
  };
  switch (parent.role) {
    case 'probes': {
      const type = await load('probe');
      model.dirs.set(path, { role: 'probe', userMade: true });
      model.addFile(`${path}/description`, false);
      model.addFile(`${path}/probe_period`, true, String(type.defaultPeriodMs), (text) => void parseProbePeriod(text));
      attributes(type);
      for (const source of type.sources) {
        model.dirs.set(`${path}/${source.name}`, { role: 'source', userMade: false, valueType: source.valueType });
        for (const file of ['value', 'type', 'description']) model.addFile(`${path}/${source.name}/${file}`, false);
      }
      return;
    }
    case 'schedulers': {
      const problem = nameProblem(name);
      if (problem) throw fail('EINVAL', `scheduler name ${JSON.stringify(name)} ${problem}`);
      model.dirs.set(path, { role: 'scheduler', userMade: true });
      model.dirs.set(`${path}/process_set`, { role: 'process_set', userMade: false });
      model.addFile(`${path}/process_set/handle_all`, true, '0', (text) => void parseHandleAll(text));
      model.addFile(`${path}/process_set/pids`, false);
      for (const list of ['single_processes', 'process_sessions', 'slices'] as const)
        model.dirs.set(`${path}/process_set/${list}`, { role: 'pset_list', userMade: false, list });
      return;
    }
    case 'scheduler': {
      if (name === 'process_set') throw fail('EEXIST', `${path} already exists`);
      const type = await load('policy');
      const other = model.childDirs(parentAt).find(([, d]) => d.role === 'policy');
      if (other)
        throw fail(
          'EBUSY',
          `scheduler ${baseName(parentAt)} already has policy ${baseName(other[0])}; a scheduler holds one policy (remove it to ` +
            `replace it)`,
        );
      model.dirs.set(path, { role: 'policy', userMade: true });
      for (const file of ['description', 'status']) model.addFile(`${path}/${file}`, false);
      attributes(type);
      ports(type.ports);
      return;
    }
    case 'port':
    case 'filter': {
      const type = await load('filter');
      if (model.slotTaken(parentAt)) throw fail('EPERM', `${parentAt} already has a source; remove it first`);
      if (parts.length >= MAX_DEPTH) throw fail('EINVAL', `${path} would nest filters deeper than ${MAX_DEPTH} levels`);
      if (type.accepts && !type.accepts.includes(parent.valueType!)) {
        throw fail(
          'EINVAL',
          `filter ${name} accepts values of type ${type.accepts.join(' or ')}, but ${parentAt} carries ${parent.valueType}`,
        );
      }
      model.dirs.set(path, { role: 'filter', userMade: true, valueType: parent.valueType! });
      for (const file of ['description', 'value', 'collected_value']) model.addFile(`${path}/${file}`, false);
      attributes(type);
      ports(type.ports ?? []);
      return;
    }
    case 'pset_list':
      tree.checkMember(parent.list!, name);
      model.dirs.set(path, { role: 'pset_member', userMade: true });
      return;
    default:
      throw fail(
        'EPERM',
        `cannot create ${path}: ${parentAt || '/'} (${parent.role.replace('_', ' ')}) does not hold directories made with mkdir`,
      );
  }
}

function tryLink(model: TreeModel, target: string, path: string): void {
  const parentAt = parentPath(path);
  const parent = model.dirs.get(parentAt);
  if (!parent) throw fail('ENOENT', `${parentAt} does not exist`);
  if (model.dirs.has(path) || model.files.has(path) || model.links.has(path)) throw fail('EEXIST', `${path} already exists`);
  if (parent.role !== 'port' && parent.role !== 'filter')
    throw fail('EPERM', `cannot link into ${parentAt || '/'}: only ports and filters take a link to a probe source`);
  const name = baseName(path);
  const badName = nameProblem(name);
  if (badName) throw fail('EINVAL', `link name ${JSON.stringify(name)} ${badName}`);
  const parts = splitPath(target);
  for (let i = 1; i <= parts.length; i++) {
    const prefix = `/${parts.slice(0, i).join('/')}`;
    if (!model.dirs.has(prefix) && !model.files.has(prefix) && !model.links.has(prefix)) throw fail('ENOENT', `${prefix} does not exist`);
  }
  const source = model.dirs.get(`/${parts.join('/')}`);
  if (!source || source.role !== 'source')
    throw fail('EINVAL', `${target} is not a probe source: links must point to /probes/<probe>/<source>`);
  if (model.slotTaken(parentAt)) throw fail('EPERM', `${parentAt} already has a source; remove it first`);
  const linkTypes = [parent.valueType, ...(parent.alsoLinks ?? [])];
  if (!linkTypes.includes(source.valueType)) {
    throw fail(
      'EINVAL',
      `cannot link ${target} (values of type ${source.valueType}) to ${parentAt} (expects ${linkTypes.join(' or ')}): value types must be equal`,
    );
  }
  model.links.set(path, `/${parts.join('/')}`);
}
