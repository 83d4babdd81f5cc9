/**
 * io_usage: block I/O of every slice, cumulative since its group was made (the kernel's
 * blkio/io.stat counters): bytes and operations read and written. Link it through a `rate`
 * filter for bytes and operations per second.
 */
import type { ProbeType } from '../../framework/types.js';
import { fillRows, sliceGroupsOf } from './slice-groups.js';

const ioUsage: ProbeType = {
  kind: 'probe',
  name: 'io_usage',
  description: 'per slice (rows slice/<name>): block I/O bytes and operations read and written, cumulative',
  defaultPeriodMs: 1000,
  sources: [
    { name: 'io', valueType: 'io_usage', description: 'rows slice/<name>: read_bytes write_bytes read_ops write_ops (cumulative)' },
  ],
  create(ctx) {
    const slices = sliceGroupsOf(ctx);
    return {
      refresh([out]) {
        fillRows(out!, slices, (group, row) => {
          const io = slices!.readIo(group);
          out!.set(row, 0, io?.readBytes ?? 0);
          out!.set(row, 1, io?.writeBytes ?? 0);
          out!.set(row, 2, io?.readOps ?? 0);
          out!.set(row, 3, io?.writeOps ?? 0);
        });
      },
    };
  },
};

export default ioUsage;
