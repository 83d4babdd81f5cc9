/**
 * scratch_balance (the Kerrighed slides' "scratch space balancing"): a new task goes to the
 * node with the most free space under its scratch folder (fs_space, through remote_cache).
 */
import { figurePolicy } from './nodes.js';

export default figurePolicy({
  name: 'scratch_balance',
  description: 'new-task placement: each new task goes to the node with the most free scratch space',
  port: { name: 'node_space', valueType: 'space', description: 'scratch space of the nodes: /probes/fs_space/space, through remote_cache' },
  columns: [0], // free
  prefer: 'largest',
});
