/**
 * memory_affinity (the Kerrighed slides' "memory affinity"): a new task goes to the node with
 * the most memory available on its node_memory port: what the node has not promised its slices
 * (mem_alloc), or what the kernel says is free (mem), through remote_cache for the others.
 */
import { figurePolicy } from './nodes.js';

export default figurePolicy({
  name: 'memory_affinity',
  description: 'new-task placement: each new task goes to the node with the most available memory',
  port: {
    name: 'node_memory',
    valueType: 'memory',
    description: 'memory of the nodes: /probes/mem_alloc/memory or /probes/mem/memory, through remote_cache',
  },
  columns: [1], // available
  prefer: 'largest',
});
