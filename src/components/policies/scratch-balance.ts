/**
 * scratch_balance (the Kerrighed slides' "scratch space balancing"): a new task goes to the
 * node with the most free space under its scratch folder (fs_space, through remote_cache).
 */
import { largestFigurePolicy } from './nodes.js';

export default largestFigurePolicy({
  name: 'scratch_balance',
  description: 'new-task placement: each new task goes to the node with the most free scratch space',
  port: { name: 'node_space', valueType: 'space', description: 'scratch space of the nodes: /probes/fs_space/space, through remote_cache' },
  column: 0, // free
});
