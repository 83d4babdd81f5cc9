/**
 * The rooms of src/ and what each may import (docs/ARCHITECTURE.md, "Rooms"). Run by the
 * test command (npm run lint:deps). Type-only imports count: a room that needs another's
 * types depends on it.
 */
const room = (name) => `^src/${name}/`;
const notRooms = (...names) => `^src/(?!(${names.join('|')})/)`;

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'A cycle ties modules into one unit that can only be read, tested and changed together.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'core-is-pure',
      comment: 'core is pure logic: it imports nothing else of ours (and no I/O).',
      severity: 'error',
      from: { path: room('core') },
      to: { path: notRooms('core') },
    },
    {
      name: 'core-no-io',
      comment: 'core has no I/O: no file system, processes or sockets.',
      severity: 'error',
      from: { path: room('core') },
      to: { dependencyTypes: ['core'], path: '^(node:)?(fs|child_process|net|dgram|http|https|os|fs/promises)$' },
    },
    {
      name: 'kernel-imports-core-only',
      comment: 'kernel is the only kernel-touching code; it builds on core alone.',
      severity: 'error',
      from: { path: room('kernel') },
      to: { path: notRooms('core', 'kernel') },
    },
    {
      name: 'framework-not-components-daemon-cli',
      comment: 'The component runtime knows no built-in component, no daemon wiring and no CLI.',
      severity: 'error',
      from: { path: room('framework') },
      to: { path: '^src/(components|daemon|cli)/' },
    },
    {
      name: 'components-framework-core-only',
      comment: 'Components get everything else through the typed services the framework hands them.',
      severity: 'error',
      from: { path: room('components') },
      to: { path: notRooms('components', 'framework', 'core') },
    },
    {
      name: 'cluster-not-above',
      comment: 'The store and membership layer sits below the framework, the daemon and the CLI.',
      severity: 'error',
      from: { path: room('cluster') },
      to: { path: '^src/(framework|components|daemon|cli|vsys)/' },
    },
    {
      name: 'vsys-not-above',
      comment: 'vsys builds on core and kernel; the daemon wires it.',
      severity: 'error',
      from: { path: room('vsys') },
      to: { path: '^src/(framework|components|daemon|cli|cluster)/' },
    },
    {
      name: 'cli-through-the-api',
      comment: 'The CLI talks to the daemon only through the API client and the shared wire types.',
      severity: 'error',
      from: { path: room('cli') },
      to: { path: '^src/(daemon|framework|components|vsys|cluster)/' },
    },
    {
      name: 'wire-is-types',
      comment: 'The wire types (the JSON the API sends and receives) build on core alone, so daemon and CLI can share them.',
      severity: 'error',
      from: { path: room('wire') },
      to: { path: notRooms('core', 'wire') },
    },
    {
      name: 'web-is-a-page',
      comment: 'The dashboard page runs in a browser: it talks to the daemon over HTTP and shares only pure code and wire types.',
      severity: 'error',
      from: { path: room('web') },
      to: { path: notRooms('core', 'wire', 'web') },
    },
    {
      name: 'sim-runs-components',
      comment: 'The simulator runs the framework and its components on simulated nodes: no kernel, store, daemon or CLI below it.',
      severity: 'error',
      from: { path: room('sim') },
      to: { path: notRooms('core', 'framework', 'components', 'sim') },
    },
    {
      name: 'nothing-imports-daemon',
      comment: 'The daemon wires the rooms together; no room below it imports it.',
      severity: 'error',
      from: { path: notRooms('daemon') },
      to: { path: room('daemon') },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
