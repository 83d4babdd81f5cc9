/**
 * diff_filter (Kerrighed's): its input minus what its second_value port reads, never below 0
 * (Kerrighed's values are unsigned). An update on either side gives a new difference.
 */
import type { FilterType } from '../../framework/types.js';
import type { Value } from '../../framework/value.js';

const diffFilter: FilterType = {
  kind: 'filter',
  name: 'diff_filter',
  description: "Kerrighed's diff_filter: the input minus the value on its second_value port (at least 0)",
  accepts: ['ulong'],
  ports: [{ name: 'second_value', valueType: 'ulong', description: 'what is subtracted from the input' }],
  create(ctx) {
    const difference = (input: Value | null, output: Value): boolean => {
      const second = ctx.ports!.second_value;
      if (!input || input.rows === 0 || !second || second.rows === 0) return false;
      output.setRows(1);
      output.set(0, 0, Math.max(0, input.get(0, 0) - second.get(0, 0)));
      return true;
    };
    return {
      update: (input, output) => difference(input, output),
      portUpdate: (_port, input, output) => difference(input, output),
    };
  },
};

export default diffFilter;
