/** sliced's version, from the package.json next to the build (dist/<folder>/ or src/<folder>/ are two levels down). */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VERSION: string = (() => {
  try {
    const file = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
    return String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();
