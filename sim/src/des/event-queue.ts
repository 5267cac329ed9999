/**
 * The simulator's event queue: a binary heap ordered by (time, priority, sequence number), so equal-time
 * events run in a fixed order whatever the heap does. Events are (kind, arg) integer pairs stored in typed
 * arrays: pushing and popping allocate nothing (the arrays grow by doubling, rarely).
 */
export class EventQueue {
  private time = new Float64Array(1024);
  private prio = new Int32Array(1024);
  private seq = new Float64Array(1024);
  private kind = new Int32Array(1024);
  private arg = new Int32Array(1024);
  private n = 0;
  private nextSeq = 0;
  /** Fields of the event last popped. */
  t = 0;
  k = 0;
  a = 0;
  /** Events pushed since creation (the benchmark's events per second). */
  pushed = 0;

  get size(): number {
    return this.n;
  }

  push(time: number, priority: number, kind: number, arg: number): void {
    if (!(time >= 0) || !Number.isFinite(time)) throw new Error(`event time must be finite and non-negative, got ${time}`);
    if (this.n === this.time.length) this.grow();
    let i = this.n++;
    const s = this.nextSeq++;
    this.pushed++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(time, priority, s, p)) break;
      this.move(p, i);
      i = p;
    }
    this.time[i] = time;
    this.prio[i] = priority;
    this.seq[i] = s;
    this.kind[i] = kind;
    this.arg[i] = arg;
  }

  /** Pops the first event into t, k, a; false when empty. */
  pop(): boolean {
    if (this.n === 0) return false;
    this.t = this.time[0];
    this.k = this.kind[0];
    this.a = this.arg[0];
    const last = --this.n;
    if (last > 0) {
      const lt = this.time[last];
      const lp = this.prio[last];
      const ls = this.seq[last];
      const lk = this.kind[last];
      const la = this.arg[last];
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= last) break;
        if (c + 1 < last && this.lessAt(c + 1, c)) c++;
        if (!this.less(this.time[c], this.prio[c], this.seq[c], -1, lt, lp, ls)) break;
        this.move(c, i);
        i = c;
      }
      this.time[i] = lt;
      this.prio[i] = lp;
      this.seq[i] = ls;
      this.kind[i] = lk;
      this.arg[i] = la;
    }
    return true;
  }

  /** (t, p, s) < event at index j, or < (jt, jp, js) when j is -1. */
  private less(t: number, p: number, s: number, j: number, jt = this.time[j], jp = this.prio[j], js = this.seq[j]): boolean {
    if (t !== jt) return t < jt;
    if (p !== jp) return p < jp;
    return s < js;
  }

  private lessAt(i: number, j: number): boolean {
    return this.less(this.time[i], this.prio[i], this.seq[i], j);
  }

  private move(from: number, to: number): void {
    this.time[to] = this.time[from];
    this.prio[to] = this.prio[from];
    this.seq[to] = this.seq[from];
    this.kind[to] = this.kind[from];
    this.arg[to] = this.arg[from];
  }

  private grow(): void {
    const n = this.time.length * 2;
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.time = f64(this.time);
    this.seq = f64(this.seq);
    this.prio = i32(this.prio);
    this.kind = i32(this.kind);
    this.arg = i32(this.arg);
  }
}
