// Bundles test or benchmark files, each with everything it imports, into one ES module per
// file for scripts/test-v2: inside the emulated guest, compiling TypeScript at run time
// (tsx: esbuild, and a WebAssembly lexer that crashes there now and then with "memory access
// out of bounds") costs seconds per process, and Node loads hundreds of module files one by
// one. Each module's import.meta.url and import.meta.dirname are replaced with its own
// source's, so paths derived from them (the checkout's root, defaults/) stay the same
// wherever the bundle is written.
//
//   node scripts/bundle-tests.mjs OUT-DIR FILE...   writes OUT-DIR/<FILE without .ts>.mjs
import { readFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { nodeBundle } from './esbuild-node.mjs';

const [outDir, ...files] = process.argv.slice(2);
if (!outDir || files.length === 0) {
  console.error('usage: node scripts/bundle-tests.mjs OUT-DIR FILE...');
  process.exit(2);
}
const root = resolve(import.meta.dirname, '..');
const ownLocation = {
  name: 'own-location',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const contents = text
        .replaceAll('import.meta.dirname', JSON.stringify(dirname(args.path)))
        .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href));
      return { contents, loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};
await build({
  ...nodeBundle,
  entryPoints: files.map((f) => ({ in: resolve(f), out: relative(root, resolve(f)).replace(/\.ts$/, '') })),
  outdir: outDir,
  plugins: [ownLocation],
});
