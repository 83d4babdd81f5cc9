/**
 * The registry of component types. A type's module is loaded the first time its name is
 * used (`mkdir /probes/cpu` loads the cpu probe), from, in this order: the built-ins (a list
 * the host hands over: src/components/builtins.ts in the daemon), the plugin folders
 * configured in the daemon (`<folder>/<type>.js` or `.mjs`), and installed npm packages
 * named `sliced-plugin-*` whose package.json lists the type under `"sliced": {"types": [...]}`.
 * Plugin code runs as root inside the daemon, so plugin folders and files must belong to
 * root and not be writable by group or others. A type name
 * is registered once: a second registration (built-in list, add(), a module exporting it) is
 * an error naming both sources.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SlicedError } from '../core/errors.js';
import { BUILTIN_VALUE_TYPES, type ValueType } from './value.js';
import type { ComponentType, PluginExport } from './types.js';

export const TYPE_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** Built-in component modules by type name, each loaded on first use. */
export type BuiltinTypes = Readonly<Record<string, () => Promise<{ default: PluginExport }>>>;

export interface RegistryOptions {
  /** The built-in types (the daemon passes src/components/builtins.ts); none when absent. */
  builtins?: BuiltinTypes;
  pluginDirs?: readonly string[];
  /** Folders holding node_modules with sliced-plugin-* packages; defaults to sliced's own. */
  packageRoots?: readonly string[];
  /** Refuse plugin files not owned by root or writable by others (off only in unit tests). */
  checkOwnership?: boolean;
}

export class TypeRegistry {
  private readonly types = new Map<string, ComponentType>();
  /** Where each registered type name comes from, for the duplicate error. */
  private readonly sources = new Map<string, string>();
  private readonly valueTypes = new Map<string, ValueType>();
  private readonly loading = new Map<string, Promise<ComponentType>>();
  private packageIndex: Map<string, string> | null = null;
  private readonly opts: Required<RegistryOptions>;

  constructor(options: RegistryOptions = {}) {
    this.opts = {
      builtins: options.builtins ?? {},
      pluginDirs: options.pluginDirs ?? [],
      packageRoots: options.packageRoots ?? [defaultPackageRoot()],
      checkOwnership: options.checkOwnership ?? true,
    };
    for (const vt of BUILTIN_VALUE_TYPES) this.valueTypes.set(vt.name, vt);
    for (const name of Object.keys(this.opts.builtins)) this.sources.set(name, `built-in ${name}`);
  }

  /** Register a type directly (hosts and tests); `source` names the registrant in errors. */
  add(type: ComponentType, source = 'registry.add()'): void {
    this.assertFree(type.name, source);
    this.register(type, source);
  }

  /** EEXIST naming both sources when `name` is already registered by someone else. */
  private assertFree(name: string, source: string): void {
    const first = this.sources.get(name);
    // A built-in's name is reserved from the start; only its own module may then fill it in.
    const builtinLoading = first === `built-in ${name}` && source === first && !this.types.has(name);
    if (first !== undefined && !builtinLoading) {
      throw new SlicedError(
        'EEXIST',
        `component type ${name} is registered twice: by ${first} and by ${source}; a type name may be registered once`,
      );
    }
  }

  private register(type: ComponentType, source: string): void {
    this.sources.set(type.name, source);
    this.types.set(type.name, type);
  }

  addValueType(type: ValueType): void {
    const known = this.valueTypes.get(type.name);
    if (known && known.columns.join() !== type.columns.join()) {
      throw new SlicedError('EINVAL', `value type ${type.name} is already declared with columns ${known.columns.join(', ')}`);
    }
    this.valueTypes.set(type.name, type);
  }

  valueType(name: string): ValueType {
    const type = this.valueTypes.get(name);
    if (!type)
      throw new SlicedError('EINVAL', `unknown value type ${JSON.stringify(name)}; known: ${[...this.valueTypes.keys()].join(', ')}`);
    return type;
  }

  /** A type already loaded, or undefined. */
  peek(name: string): ComponentType | undefined {
    return this.types.get(name);
  }

  /** Every type name that can be loaded (built-ins, plugin folders, packages). */
  available(): string[] {
    const names = new Set<string>([...Object.keys(this.opts.builtins), ...this.types.keys()]);
    for (const dir of this.opts.pluginDirs) {
      if (!existsSync(dir)) continue;
      for (const file of readdirSync(dir)) {
        const m = /^([a-z][a-z0-9_]*)\.m?js$/.exec(file);
        if (m) names.add(m[1]!);
      }
    }
    for (const name of this.packages().keys()) names.add(name);
    return [...names].sort();
  }

  /** The type called `name`, loading its module on first use; ENOENT when nobody provides it. */
  async load(name: string): Promise<ComponentType> {
    const known = this.types.get(name);
    if (known) return known;
    if (!TYPE_NAME.test(name)) {
      throw new SlicedError('ENOENT', `${JSON.stringify(name)} is not a component type: type names are lower-case letters, digits and "_"`);
    }
    let pending = this.loading.get(name);
    if (!pending) {
      pending = this.loadModule(name).finally(() => this.loading.delete(name));
      this.loading.set(name, pending);
    }
    return pending;
  }

  private async loadModule(name: string): Promise<ComponentType> {
    const builtin = Object.hasOwn(this.opts.builtins, name) ? this.opts.builtins[name] : undefined;
    if (builtin) return this.install(name, await builtin(), `built-in ${name}`);
    for (const dir of this.opts.pluginDirs) {
      for (const ext of ['.js', '.mjs']) {
        const file = join(dir, `${name}${ext}`);
        if (!existsSync(file)) continue;
        this.assertTrusted(dir);
        this.assertTrusted(file);
        return this.install(name, (await import(pathToFileURL(file).href)) as { default: PluginExport }, file);
      }
    }
    const pkg = this.packages().get(name);
    if (pkg) {
      this.assertTrusted(pkg);
      return this.install(name, (await import(pathToFileURL(pkg).href)) as { default: PluginExport }, pkg);
    }
    throw new SlicedError(
      'ENOENT',
      `no component type ${JSON.stringify(name)}: not built in, not in the plugin folders, not in a sliced-plugin-* package`,
    );
  }

  private install(name: string, module: { default: PluginExport }, origin: string): ComponentType {
    const exported = module.default;
    if (!exported || typeof exported !== 'object')
      throw new SlicedError('EINVAL', `${origin} has no default export describing component types`);
    const list = 'types' in exported ? exported.types : [exported];
    if ('types' in exported) for (const vt of exported.valueTypes ?? []) this.addValueType(vt);
    // Check every type before registering any, so a refused module leaves nothing behind.
    const seen = new Set<string>();
    for (const type of list) {
      validateType(type, origin);
      for (const vt of referencedValueTypes(type)) this.valueType(vt);
      this.assertFree(type.name, origin);
      if (seen.has(type.name))
        throw new SlicedError(
          'EEXIST',
          `component type ${type.name} is registered twice: ${origin} exports it twice; a type name may be registered once`,
        );
      seen.add(type.name);
    }
    for (const type of list) this.register(type, origin);
    const found = this.types.get(name);
    if (!found) throw new SlicedError('EINVAL', `${origin} does not export a component type named ${name}`);
    return found;
  }

  private packages(): Map<string, string> {
    if (this.packageIndex) return this.packageIndex;
    const index = new Map<string, string>();
    for (const root of this.opts.packageRoots) {
      const modules = join(root, 'node_modules');
      if (!existsSync(modules)) continue;
      for (const entry of readdirSync(modules)) {
        if (!entry.startsWith('sliced-plugin-')) continue;
        try {
          const dir = join(modules, entry);
          const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { main?: string; sliced?: { types?: string[] } };
          const main = resolve(dir, manifest.main ?? 'index.js');
          for (const type of manifest.sliced?.types ?? []) if (TYPE_NAME.test(type)) index.set(type, main);
        } catch {
          // A broken package offers nothing; loading its types reports ENOENT.
        }
      }
    }
    this.packageIndex = index;
    return index;
  }

  private assertTrusted(path: string): void {
    if (!this.opts.checkOwnership) return;
    const st = statSync(path);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new SlicedError(
        'EPERM',
        `refusing to load plugin code from ${path}: it must belong to root and not be writable by group or others (owner uid ` +
          `${st.uid}, mode ${(st.mode & 0o777).toString(8)})`,
      );
    }
  }
}

function defaultPackageRoot(): string {
  // dist/framework/registry.js or src/framework/registry.ts -> the package root.
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function referencedValueTypes(type: ComponentType): string[] {
  if (type.kind === 'probe') return type.sources.map((s) => s.valueType);
  const ports = (type.ports ?? []).flatMap((p) => [p.valueType, ...(p.alsoLinks ?? [])]);
  return type.kind === 'policy' ? ports : [...(type.accepts ?? []), ...ports];
}

function validateType(type: ComponentType, origin: string): void {
  if (!type || !TYPE_NAME.test(type.name) || !['probe', 'filter', 'policy'].includes(type.kind) || typeof type.create !== 'function') {
    throw new SlicedError(
      'EINVAL',
      `${origin} exports an invalid component type: it needs a name (lower-case letters, digits, "_"), a kind (probe, filter or ` +
        `policy) and create()`,
    );
  }
  const names = new Set<string>();
  const children = type.kind === 'probe' ? type.sources : (type.ports ?? []);
  for (const item of [...(type.attributes ?? []), ...children]) {
    if (!TYPE_NAME.test(item.name) || names.has(item.name) || RESERVED_ENTRIES.has(item.name)) {
      throw new SlicedError(
        'EINVAL',
        `${origin}: type ${type.name} declares an invalid or duplicate attribute/port/source name ${JSON.stringify(item.name)}`,
      );
    }
    names.add(item.name);
  }
}

/** Entries the framework itself puts into component directories. */
export const RESERVED_ENTRIES = new Set(['value', 'collected_value', 'probe_period', 'type', 'description', 'status', 'process_set']);
