/**
 * disk_io: this node's block I/O, cumulative (/proc/diskstats): of the device named by
 * `device` ("{node}" in a path is this node's name), or of all its physical disks. Link it
 * through a `rate` filter for bytes and operations per second.
 */
import { textAttribute, type ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const ALL = 'all';

const diskIo: ProbeType = {
  kind: 'probe',
  name: 'disk_io',
  description: "the node's block I/O, cumulative: bytes and operations read and written, of `device` or of all physical disks",
  defaultPeriodMs: 1000,
  // Published every period, changed or not: a rate filter after it says 0 only when told again.
  notifyUnchanged: true,
  attributes: [
    textAttribute(
      'device',
      '"all" (every physical disk), MAJ:MIN, or the path of a block device; "{node}" in a path is replaced by the node name',
      ALL,
      (device) =>
        device === ALL || /^\d+:\d+$/.test(device) || (device.startsWith('/') && !device.includes('\0') && device.length <= 4096)
          ? null
          : 'must be "all", MAJ:MIN or an absolute path',
    ),
  ],
  sources: [
    {
      name: 'io',
      valueType: 'io_usage',
      description: 'read_bytes write_bytes read_ops write_ops, cumulative (no row while the device is missing)',
    },
  ],
  create(ctx) {
    const stats = need(ctx, 'nodeStats');
    return {
      refresh([out]) {
        const device = ctx.attrs.device as string;
        const io = stats.diskIo(device === ALL ? null : device.replaceAll('{node}', ctx.services.nodeName));
        if (!io) return out!.setRows(0);
        out!.setRows(1);
        out!.set(0, 0, io.readBytes);
        out!.set(0, 1, io.writeBytes);
        out!.set(0, 2, io.readOps);
        out!.set(0, 3, io.writeOps);
      },
    };
  },
};

export default diskIo;
