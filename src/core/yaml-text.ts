/**
 * YAML from outside (the config file, `slicectl apply` documents): parsed to plain data, or
 * refused with EINVAL naming where it came from. The parser's warnings (an unknown tag or
 * directive) are refusals too: otherwise they would be printed on the daemon's stderr by
 * whoever sends a document, and the value would silently be something else than written.
 * Alias expansion is bounded (a "billion laughs" document is refused, not expanded).
 */
import { parseDocument } from 'yaml';
import { SlicedError } from './errors.js';

const MAX_ALIAS_COUNT = 100;

export function parseYamlText(text: string, origin: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) throw new SlicedError('EINVAL', `${origin} is not valid YAML: ${problem.message.split('\n')[0]}`);
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    throw new SlicedError('EINVAL', `${origin} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}
