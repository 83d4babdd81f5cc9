// Bundles each entry point (the daemon, the CLI) with its dependencies into one ES module
// under dist/bundle/, after tsc has built dist/. Node resolves and loads each module file on
// its own: the daemon's ~600 files (fastify, zod, pino, ...) cost 1 s at every start on a
// host and over 10 s under emulation; one file costs a fraction of that. The bundles sit
// one folder below dist/, as the modules they are made of do, so paths a module derives
// from its own location (the package root, defaults/) stay the same.
import { build } from 'esbuild';

const entries = { sliced: 'dist/daemon/main.js', slicectl: 'dist/cli/main.js' };
await build({
  entryPoints: entries,
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __slicedRequire } from 'node:module'; const require = __slicedRequire(import.meta.url);" },
  // Loaded from node_modules at run time: a native addon (optional), and the etcd client,
  // which reads its .proto files from its own folder.
  external: ['@cocalc/fuse-native', 'etcd3'],
  legalComments: 'none',
  logLevel: 'warning',
});
