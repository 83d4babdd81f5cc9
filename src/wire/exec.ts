/**
 * The answer of `POST /v1/slices/NAME/exec-plan`: what slicectl exec needs to start a command
 * in the slice itself (the kernel's spawn takes the same plan, hence its home in core).
 */
export type { SliceProcessPlan as ExecPlan } from '../core/exec-plan.js';
