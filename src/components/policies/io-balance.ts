/**
 * io_balance (the Kerrighed slides' "disk I/O balancing"): a new task goes to the node whose
 * disks move the fewest bytes per second (disk_io through rate, and remote_cache for the others).
 */
import { figurePolicy } from './nodes.js';

export default figurePolicy({
  name: 'io_balance',
  description: 'new-task placement: each new task goes to the node with the least block I/O (bytes read and written per second)',
  port: {
    name: 'node_io',
    valueType: 'io_usage',
    description: 'block I/O rates of the nodes: /probes/disk_io/io through rate, then remote_cache',
  },
  columns: [0, 1], // read_bytes + write_bytes
  prefer: 'smallest',
});
