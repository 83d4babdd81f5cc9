/**
 * fs_space: free and total bytes of the filesystem under `path` (scratch space). "{node}" in
 * the path is this node's name, so one tree gives each node a folder of its own.
 */
import { textAttribute, type ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const fsSpace: ProbeType = {
  kind: 'probe',
  name: 'fs_space',
  description: 'free and total bytes of the filesystem under `path` ("{node}" in it: this node\'s name)',
  defaultPeriodMs: 1000,
  attributes: [
    textAttribute('path', 'the folder whose filesystem is measured; "{node}" is replaced by the node name', '/tmp', (path) =>
      path.startsWith('/') && !path.includes('\0') && path.length <= 4096 ? null : 'must be an absolute path',
    ),
  ],
  sources: [{ name: 'space', valueType: 'space', description: 'free and total bytes (no row while the path cannot be read)' }],
  create(ctx) {
    const filesystems = need(ctx, 'filesystems');
    return {
      refresh([out]) {
        const path = (ctx.attrs.path as string).replaceAll('{node}', ctx.services.nodeName);
        const space = filesystems.space(path);
        if (!space) return out!.setRows(0);
        out!.setRows(1);
        out!.set(0, 0, space.freeBytes);
        out!.set(0, 1, space.totalBytes);
      },
    };
  },
};

export default fsSpace;
