// Bundles each entry point (the daemon, the CLI) with its dependencies into one ES module
// under dist/bundle/, after tsc has built dist/. Node resolves and loads each module file on
// its own: the daemon's ~600 files (fastify, zod, pino, ...) cost 1 s at every start on a
// host and over 10 s under emulation; one file costs a fraction of that. The bundles sit
// one folder below dist/, as the modules they are made of do, so paths a module derives
// from its own location (the package root, defaults/) stay the same.
import { build } from 'esbuild';
import { nodeBundle } from './esbuild-node.mjs';

const entries = { sliced: 'dist/daemon/main.js', slicectl: 'dist/cli/main.js' };
await build({ ...nodeBundle, entryPoints: entries, outdir: 'dist/bundle', legalComments: 'none' });
