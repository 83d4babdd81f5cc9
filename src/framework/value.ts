/**
 * Typed values that flow from probe sources through filters to policy ports.
 *
 * A value is a small table of float64 cells: `rows` rows of `columns.length` cells in a
 * preallocated Float64Array, with one label per row (a CPU, a slice, a node). Updates write
 * into the existing buffer and never allocate; only a change in the number of rows beyond
 * the capacity (a new slice, say: configuration, not an update) grows the buffer. Labels
 * are immutable arrays replaced as a whole when the set of rows changes, so copying a value
 * shares them instead of copying.
 */
export interface ValueType {
  name: string;
  columns: readonly string[];
  unit: string;
  description: string;
}

const NO_LABELS: readonly string[] = Object.freeze([]);

export class Value {
  readonly type: ValueType;
  readonly width: number;
  data: Float64Array;
  rows = 0;
  labels: readonly string[] = NO_LABELS;

  constructor(type: ValueType, capacityRows = 1) {
    this.type = type;
    this.width = type.columns.length;
    this.data = new Float64Array(Math.max(1, capacityRows) * this.width);
  }

  /** Make room for `rows` rows (allocates only when growing past the capacity). */
  reserve(rows: number): void {
    if (rows * this.width <= this.data.length) return;
    const grown = new Float64Array(Math.max(rows, (this.data.length / this.width) * 2) * this.width);
    grown.set(this.data);
    this.data = grown;
  }

  /** Set the shape: number of rows and their labels (share the array; do not mutate it later). */
  setRows(rows: number, labels: readonly string[] = NO_LABELS): void {
    this.reserve(rows);
    this.rows = rows;
    this.labels = labels;
  }

  get(row: number, column = 0): number {
    return this.data[row * this.width + column]!;
  }

  set(row: number, column: number, cell: number): void {
    this.data[row * this.width + column] = cell;
  }

  /** Largest cell of the first column (the headline figure: the highest load, say). */
  max(): number {
    let best = -Infinity;
    for (let r = 0; r < this.rows; r++) {
      const v = this.data[r * this.width]!;
      if (v > best) best = v;
    }
    return best;
  }

  /** Smallest cell of the first column. */
  min(): number {
    let best = Infinity;
    for (let r = 0; r < this.rows; r++) {
      const v = this.data[r * this.width]!;
      if (v < best) best = v;
    }
    return best;
  }

  copyFrom(other: Value): void {
    const cells = other.rows * other.width;
    if (cells > this.data.length) this.reserve(other.rows);
    // A plain loop: values are small, and subarray() would allocate a view per update.
    const to = this.data;
    const from = other.data;
    for (let i = 0; i < cells; i++) to[i] = from[i]!;
    this.rows = other.rows;
    this.labels = other.labels;
  }

  /** True when shape, labels and every cell equal `other`'s. */
  sameAs(other: Value): boolean {
    if (this.rows !== other.rows || this.labels !== other.labels) return false;
    const cells = this.rows * this.width;
    for (let i = 0; i < cells; i++) if (this.data[i] !== other.data[i]) return false;
    return true;
  }

  /** Text for `cat`: one row per line, "label cell cell..."; a single unlabelled cell alone. */
  format(): string {
    if (this.rows === 0) return '';
    if (this.rows === 1 && this.labels.length === 0 && this.width === 1) return `${formatCell(this.data[0]!)}\n`;
    let out = '';
    for (let r = 0; r < this.rows; r++) {
      const cells: string[] = [];
      for (let c = 0; c < this.width; c++) cells.push(formatCell(this.data[r * this.width + c]!));
      out += `${this.labels[r] ?? String(r)} ${cells.join(' ')}\n`;
    }
    return out;
  }

  /** Plain data for JSON: [{label, column: cell, ...}]. */
  toJSON(): Array<Record<string, number | string>> {
    const out: Array<Record<string, number | string>> = [];
    for (let r = 0; r < this.rows; r++) {
      const row: Record<string, number | string> = { label: this.labels[r] ?? String(r) };
      for (let c = 0; c < this.width; c++) row[this.type.columns[c]!] = this.data[r * this.width + c]!;
      out.push(row);
    }
    return out;
  }
}

function formatCell(cell: number): string {
  return Number.isInteger(cell) ? String(cell) : String(Math.round(cell * 1000) / 1000);
}

/** The value types of the built-in components. Plugins may declare more. */
export const BUILTIN_VALUE_TYPES: readonly ValueType[] = [
  { name: 'load', columns: ['load'], unit: 'millicores', description: 'CPU load: CPU time used per second, per CPU or per node' },
  {
    name: 'loadavg',
    columns: ['load1', 'load5', 'load15', 'runnable'],
    unit: 'tasks',
    description: 'the kernel load averages (/proc/loadavg) and runnable tasks',
  },
  {
    name: 'memory',
    columns: ['total', 'available', 'used_pct'],
    unit: 'bytes',
    description: 'memory of the node (/proc/meminfo): total, available, percentage used',
  },
  {
    name: 'pressure',
    columns: ['some_avg10', 'full_avg10'],
    unit: 'percent',
    description: 'pressure stall information per resource (/proc/pressure)',
  },
  {
    name: 'slice_usage',
    columns: ['usage', 'demand'],
    unit: 'millicores',
    description:
      'per slice (rows slice/<name>) and domain (domain/<name>): CPU used and estimated demand; row "system" holds CPU used outside ' +
      'the slices',
  },
  {
    name: 'io_usage',
    columns: ['read_bytes', 'write_bytes', 'read_ops', 'write_ops'],
    unit: 'bytes, operations',
    description: 'per slice (rows slice/<name>): block I/O since the group was made; a rate filter gives per-second figures',
  },
  {
    name: 'mem_usage',
    columns: ['bytes', 'limit', 'oom_kills'],
    unit: 'bytes, kills',
    description: 'per slice (rows slice/<name>): memory charged, limit (0 = none), processes killed by the OOM killer',
  },
  {
    name: 'slice_pressure',
    columns: ['cpu_some', 'memory_some', 'memory_full', 'io_some', 'io_full'],
    unit: 'percent',
    description: "per slice (rows slice/<name>): avg10 pressure stall information of the slice's group",
  },
  { name: 'process_load', columns: ['load'], unit: 'millicores', description: 'CPU load of single processes, labelled by pid' },
  {
    name: 'ulong',
    columns: ['value'],
    unit: "the source's (Kerrighed's)",
    description:
      "one figure, as Kerrighed's unsigned long values (what its probes give and its filters take); rows per node through remote_cache",
  },
  {
    name: 'ulong_by_pid',
    columns: ['value'],
    unit: "the source's (Kerrighed's)",
    description: "one figure per process, labelled by pid (Kerrighed's values with a pid parameter)",
  },
  { name: 'space', columns: ['free', 'total'], unit: 'bytes', description: 'space of a filesystem: free and total' },
];
