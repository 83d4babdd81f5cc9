/**
 * constant_filter (Kerrighed's): its value is `constant`, whatever comes in (nothing needs to:
 * Kerrighed's memory-balancing setup puts one under diff_filter as the node's total memory).
 */
import { numberAttribute, type FilterType } from '../../framework/types.js';
import type { Value } from '../../framework/value.js';

const constantFilter: FilterType = {
  kind: 'filter',
  name: 'constant_filter',
  description: "Kerrighed's constant_filter: always `constant`, with or without an input",
  accepts: ['ulong'],
  attributes: [numberAttribute('constant', 'the value it gives', { default: 0, min: 0, max: 2 ** 64 - 1 })],
  create(ctx) {
    const fill = (output: Value): boolean => {
      output.setRows(1);
      output.set(0, 0, ctx.attrs.constant as number);
      return true;
    };
    return { update: (_input, output) => fill(output), produce: fill };
  },
};

export default constantFilter;
