// Bundles each entry point (the daemon, the CLI) with its dependencies into an ES module
// under dist/bundle/ (the CLI's with chunks beside it, below), after tsc has built dist/.
// Node resolves and loads each module file on its own: the daemon's ~600 files (fastify,
// zod, pino, ...) cost 1 s at every start on a host and over 10 s under emulation; one file
// costs a fraction of that. The bundles sit one folder below dist/, as the modules they are
// made of do, so paths a module derives from its own location (the package root, defaults/)
// stay the same.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';
import { build } from 'esbuild';
import { nodeBundle } from './esbuild-node.mjs';

rmSync('dist/bundle', { recursive: true, force: true });
await build({ ...nodeBundle, entryPoints: { sliced: 'dist/daemon/main.js' }, outdir: 'dist/bundle', legalComments: 'none' });
// slicectl is split: what it loads for one command only (the simulator, with the component
// modules and yaml) is a chunk file beside it, read when that command runs instead of parsed
// at every start (each slicectl call in the VM paid for it). The daemon stays one file: it
// loads its components at start, and one file reads faster than many.
await build({
  ...nodeBundle,
  entryPoints: { slicectl: 'dist/cli/main.js' },
  outdir: 'dist/bundle',
  splitting: true,
  chunkNames: 'slicectl-[name]-[hash]',
  legalComments: 'none',
});

// The dashboard's page (src/web): one script and one style sheet for the browser, minified,
// with index.html beside them, each also stored gzip- and brotli-compressed (the server sends
// what the browser accepts without compressing at every request).
rmSync('dist/web', { recursive: true, force: true });
mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: { app: 'src/web/main.ts' },
  outdir: 'dist/web',
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome120', 'firefox120'],
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync('src/web/index.html', 'dist/web/index.html');
for (const name of readdirSync('dist/web')) {
  if (!/\.(js|css|html)$/.test(name)) continue;
  const body = readFileSync(`dist/web/${name}`);
  writeFileSync(`dist/web/${name}.gz`, gzipSync(body, { level: 9 }));
  writeFileSync(`dist/web/${name}.br`, brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
}
