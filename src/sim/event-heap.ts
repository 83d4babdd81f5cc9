/**
 * The simulator's pending events: a binary min-heap of (time, node, version) in typed arrays,
 * ties broken by insertion order so that a run is the same for a seed. An event whose version
 * is no longer its node's is stale and skipped by the caller.
 */
export class EventHeap {
  private time = new Float64Array(1024);
  private seq = new Float64Array(1024);
  private node = new Int32Array(1024);
  private version = new Int32Array(1024);
  private size = 0;
  private nextSeq = 0;

  get length(): number {
    return this.size;
  }

  /** Time of the earliest event (Infinity when there is none). */
  peekTime(): number {
    return this.size > 0 ? this.time[0]! : Infinity;
  }

  push(time: number, node: number, version: number): void {
    if (this.size === this.time.length) this.grow();
    let i = this.size++;
    const seq = this.nextSeq++;
    // Sift up.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(time, seq, parent)) break;
      this.move(parent, i);
      i = parent;
    }
    this.set(i, time, seq, node, version);
  }

  /** Remove the earliest event; `out` gets its node and version. */
  pop(out: { time: number; node: number; version: number }): void {
    out.time = this.time[0]!;
    out.node = this.node[0]!;
    out.version = this.version[0]!;
    const last = --this.size;
    if (last === 0) return;
    const [time, seq, node, version] = [this.time[last]!, this.seq[last]!, this.node[last]!, this.version[last]!];
    let i = 0;
    // Sift down.
    for (;;) {
      const left = 2 * i + 1;
      if (left >= last) break;
      const right = left + 1;
      const child = right < last && this.less(right, left) ? right : left;
      if (!this.before(this.time[child]!, this.seq[child]!, -1, time, seq)) break;
      this.move(child, i);
      i = child;
    }
    this.set(i, time, seq, node, version);
  }

  /** Whether (time, seq) comes before the entry at `at` (or before (t2, s2) when at < 0). */
  private before(time: number, seq: number, at: number, t2 = this.time[at]!, s2 = this.seq[at]!): boolean {
    return time < t2 || (time === t2 && seq < s2);
  }

  private less(a: number, b: number): boolean {
    return this.before(this.time[a]!, this.seq[a]!, b);
  }

  private move(from: number, to: number): void {
    this.set(to, this.time[from]!, this.seq[from]!, this.node[from]!, this.version[from]!);
  }

  private set(i: number, time: number, seq: number, node: number, version: number): void {
    this.time[i] = time;
    this.seq[i] = seq;
    this.node[i] = node;
    this.version[i] = version;
  }

  private grow(): void {
    const n = this.time.length * 2;
    const grow = <T extends Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.time = grow(this.time, (k) => new Float64Array(k));
    this.seq = grow(this.seq, (k) => new Float64Array(k));
    this.node = grow(this.node, (k) => new Int32Array(k));
    this.version = grow(this.version, (k) => new Int32Array(k));
  }
}
