/** What the component roles (probe, policy, filter) share: loading a type, attribute files. */
import { RESERVED_ENTRIES, TYPE_NAME, type TypeRegistry } from '../registry.js';
import type { AttributeSpec, AttributeValue, ComponentContext, ComponentType } from '../types.js';
import { addFile, fail, pathOf, type DirNode } from './nodes.js';

/** The type `name` for a component of `kind` made under `where`: ENOENT for a bad name, EINVAL for another kind. */
export async function loadType<K extends ComponentType['kind']>(
  registry: TypeRegistry,
  name: string,
  kind: K,
  where: string,
): Promise<Extract<ComponentType, { kind: K }>> {
  if (!TYPE_NAME.test(name)) {
    throw fail(
      'ENOENT',
      `${where}/${name}: ${JSON.stringify(name)} is not a ${kind} type (type names are lower-case letters, digits and "_")`,
    );
  }
  const type = await registry.load(name);
  if (type.kind !== kind) throw fail('EINVAL', `${name} is a ${type.kind}, not a ${kind}; it cannot be created under ${where}`);
  return type as Extract<ComponentType, { kind: K }>;
}

/** One file per attribute; a write the component refuses (`changed` throws) restores the old value. */
export function attributeFiles(dir: DirNode, specs: readonly AttributeSpec[], ctx: ComponentContext, changed: () => void): void {
  for (const spec of specs) {
    if (RESERVED_ENTRIES.has(spec.name)) continue;
    addFile(dir, spec.name, () => `${ctx.attrs[spec.name]}\n`, {
      config: true,
      check: (text) => parseAttribute(pathOf(dir), spec, text),
      write: (text) => {
        const value = parseAttribute(pathOf(dir), spec, text);
        const previous = ctx.attrs[spec.name]!;
        ctx.attrs[spec.name] = value;
        try {
          changed();
        } catch (err) {
          ctx.attrs[spec.name] = previous;
          throw fail('EINVAL', `${pathOf(dir)}/${spec.name}: ${(err as Error).message}`);
        }
      },
    });
  }
}

/** A component attribute's value, parsed by its type; EINVAL naming the attribute when refused. */
export function parseAttribute(dirPath: string, spec: AttributeSpec, text: string): AttributeValue {
  try {
    return spec.parse(text);
  } catch (err) {
    throw fail('EINVAL', `${dirPath}/${spec.name}: ${(err as Error).message}`);
  }
}

/** A whole number from min to max; EINVAL saying what is allowed. */
export function parseNumber(text: string, name: string, min: number, max: number, allowed: string): number {
  const trimmed = text.trim();
  const value = /^-?\d+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isInteger(value) || value < min || value > max)
    throw fail('EINVAL', `${name} ${JSON.stringify(trimmed)} is not allowed: must be ${allowed}`);
  return value;
}
