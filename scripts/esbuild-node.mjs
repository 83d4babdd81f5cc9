// What every bundle of sliced has in common: one ES module for Node 20, with its dependencies
// inside, except those loaded from node_modules at run time: a native addon (optional), and
// the etcd client, which reads its .proto files from its own folder.
export const nodeBundle = {
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __slicedRequire } from 'node:module'; const require = __slicedRequire(import.meta.url);" },
  external: ['@cocalc/fuse-native', 'etcd3'],
  logLevel: 'warning',
};
