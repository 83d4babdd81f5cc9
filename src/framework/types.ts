/**
 * Component types, declared once: what a probe, filter or scheduling policy offers (value
 * types, attributes with validation, ports) and how to create an instance. The tree checks
 * links against these declarations; instances only implement behaviour.
 *
 * This is also the plugin API: a plugin module's default export is one ComponentType (or an
 * array of them, plus optional value types). See examples/plugins/ and the README.
 */
import type { Value, ValueType } from './value.js';
import type { FrameworkServices, Logger } from './handle.js';

export type { FrameworkServices, Logger } from './handle.js';

export type AttributeValue = number | string;

export interface AttributeSpec {
  name: string;
  description: string;
  default: AttributeValue;
  /** Turn written text into a value, or throw Error with a sentence saying what is allowed. */
  parse(text: string): AttributeValue;
}

/** A task about to be placed: the parent's identity as the kernel knows it. */
export interface NewTask {
  parentPid: number;
  sessionId: number | null;
  slice: string | null;
  /** A cluster task may go only to these nodes (the slice's, up and not cordoned); absent: anywhere the policy knows. */
  nodes?: readonly string[];
}

/** What a placement policy answers: a node name, no opinion (null), or a refusal. */
export type PlacementAnswer = string | null | { refuse: string };

/** The process set of the scheduler a policy belongs to, resolved on demand. */
export interface ProcessSetView {
  handleAll: boolean;
  /** Current member pids (single processes, live members of sessions, processes of slices). */
  pids(): number[];
}

export interface ComponentContext {
  /** Path of the component in the tree, e.g. /probes/cpu. */
  path: string;
  /** Current attribute values (updated in place when someone writes one). */
  attrs: Record<string, AttributeValue>;
  log: Logger;
  /** The host's typed services (src/framework/handle.ts); take a required one with need(ctx, name). */
  services: FrameworkServices;
  /** The value type a filter carries (that of the slot it sits in). */
  valueType?: ValueType;
  /** The scheduler's process set, for policies. */
  processSet?: ProcessSetView;
  /** Values currently collected by this component's ports, by port name (policies, and filters with ports). */
  ports?: Record<string, Value | null>;
  /** Filters: send a new output now, made by the behaviour's produce() (remote_cache after it fetched). */
  republish?: () => void;
}

export interface ProbeBehaviour {
  /** Fill the probe's source values (same order as the type's sources). Must not block. */
  refresh(outputs: readonly Value[], now: number): void;
  destroy?(): void;
}

export interface FilterBehaviour {
  /** Compute the output from a new input; return true to pass the update upward. Must not allocate or block. */
  update(input: Value, output: Value, now: number): boolean;
  /**
   * One of the filter's own ports got an update (diff_filter's second_value): compute the
   * output from it and `input` (what the filter's input last brought, or null); true passes it upward.
   */
  portUpdate?(port: number, input: Value | null, output: Value, now: number): boolean;
  /** A filter with a value of its own (constant_filter): fill `output`, true to pass it; called when made and after each attribute change. */
  produce?(output: Value, now: number): boolean;
  /** An attribute changed (a new threshold, say). */
  configure?(): void;
  destroy?(): void;
}

export interface PolicyBehaviour {
  /** A port received an update. Must not block. */
  onUpdate?(port: number, value: Value, now: number): void;
  /** Where a new task of a process this scheduler holds should run. */
  newTaskNode?(task: NewTask): PlacementAnswer;
  /** Extra read-only information shown under the policy (e.g. last decision). */
  status?(): Record<string, unknown>;
  configure?(): void;
  destroy?(): void;
}

interface TypeBase {
  name: string;
  description: string;
  attributes?: readonly AttributeSpec[];
}

export interface ProbeType extends TypeBase {
  kind: 'probe';
  sources: ReadonlyArray<{ name: string; valueType: string; description: string }>;
  /** probe_period when the probe is created, in milliseconds (0: refresh only when read). */
  defaultPeriodMs: number;
  /** Publish every period even when nothing changed (the slides' has_changed returning 1). */
  notifyUnchanged?: boolean;
  create(ctx: ComponentContext): ProbeBehaviour;
}

export interface FilterType extends TypeBase {
  kind: 'filter';
  /** Value types the filter accepts; absent: any. The output has the input's type. */
  accepts?: readonly string[];
  /** Ports of the filter besides its input (Kerrighed's last_event, second_value), read through ctx.ports in update(). */
  ports?: ReadonlyArray<PortSpec>;
  create(ctx: ComponentContext): FilterBehaviour;
}

/** A port of a policy or a filter: one input slot of a value type. */
export interface PortSpec {
  name: string;
  valueType: string;
  description: string;
  /** Value types a link may also bring (not filters: a filter in the port carries `valueType`). */
  alsoLinks?: readonly string[];
}

export interface PolicyType extends TypeBase {
  kind: 'policy';
  ports: ReadonlyArray<PortSpec>;
  create(ctx: ComponentContext): PolicyBehaviour;
}

export type ComponentType = ProbeType | FilterType | PolicyType;

/** What a plugin module exports by default. */
export type PluginExport = ComponentType | { types: ComponentType[]; valueTypes?: ValueType[] };

// ---- attribute helpers ----------------------------------------------------------------------

export function numberAttribute(
  name: string,
  description: string,
  options: { default: number; min?: number; max?: number; integer?: boolean },
): AttributeSpec {
  const { min = -Infinity, max = Infinity, integer = false } = options;
  const allowed = `${integer ? 'a whole number' : 'a number'}${Number.isFinite(min) ? ` from ${min}` : ''}${Number.isFinite(max) ? ` to ${max}` : ''}`;
  return {
    name,
    description,
    default: options.default,
    parse(text) {
      const trimmed = text.trim();
      const value = trimmed === '' ? NaN : Number(trimmed);
      if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
        throw new Error(`${name} ${JSON.stringify(trimmed)} is not allowed: must be ${allowed}`);
      }
      return value;
    },
  };
}

export function choiceAttribute(name: string, description: string, choices: readonly string[], defaultChoice: string): AttributeSpec {
  return {
    name,
    description,
    default: defaultChoice,
    parse(text) {
      const trimmed = text.trim();
      if (!choices.includes(trimmed))
        throw new Error(`${name} ${JSON.stringify(trimmed)} is not allowed: must be one of ${choices.join(', ')}`);
      return trimmed;
    },
  };
}

/** A text attribute checked by `check` (which returns why a value is refused, or null). */
export function textAttribute(
  name: string,
  description: string,
  defaultText: string,
  check: (text: string) => string | null,
): AttributeSpec {
  return {
    name,
    description,
    default: defaultText,
    parse(text) {
      const trimmed = text.trim();
      const problem = check(trimmed);
      if (problem !== null) throw new Error(`${name} ${JSON.stringify(trimmed)} is not allowed: ${problem}`);
      return trimmed;
    },
  };
}
