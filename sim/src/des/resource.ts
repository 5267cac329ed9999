/**
 * A resource of `servers` identical servers (the GPU compute stream: 1; copy engines; CPU workers) with a
 * waiting line ordered by (priority, submission order). A job holds one server for its duration; its
 * completion is an event of kind `doneKind` in the simulation's queue, carrying the job id. The simulation
 * calls `finished(now)` when it handles that event so the next waiting job starts.
 */
import type { EventQueue } from './event-queue.js';

export class Resource {
  private busy = 0;
  /** Waiting jobs: ids, in a small binary heap on (priority, id) (ids grow with submission). */
  private waitIds = new Int32Array(256);
  private waitPrio = new Int32Array(256);
  private waiting = 0;
  private durations = new Float64Array(1024);
  /** Heap position of each waiting job (by id); -1 when it is not waiting. Makes promote O(log n). */
  private heapPos = new Int32Array(1024).fill(-1);
  private jobs = 0;
  /** Total server-busy time (ms), for the breakdown. */
  busyTime = 0;
  /** Sum of durations of waiting jobs (ms) per priority, for the hybrid choice's backlog estimate. */
  private waitingWork: number[] = [];
  /** When each server becomes free, as far as started jobs go. */
  private readonly freeAt: Float64Array;
  /**
   * Optional: a factor on a job's duration, asked when the job starts (a resource slowed by what another
   * is doing at that moment: copies and CPU jobs share host DRAM). Estimates keep the submitted durations.
   */
  startScale: ((id: number) => number) | null = null;

  constructor(
    readonly name: string,
    readonly servers: number,
    private readonly queue: EventQueue,
    private readonly doneKind: number,
    private readonly eventPriority: number,
    /** Expected number of jobs (sizes the job table once; it still grows if exceeded). */
    jobsHint = 1024,
  ) {
    if (!Number.isInteger(servers) || servers < 1) throw new Error(`${name}: servers must be a positive integer`);
    this.freeAt = new Float64Array(servers);
    this.durations = new Float64Array(Math.max(16, jobsHint));
    this.heapPos = new Int32Array(this.durations.length).fill(-1);
  }

  /** Submits a job; returns its id (the `arg` of its completion event). */
  submit(now: number, duration: number, priority: number): number {
    if (!(duration >= 0)) throw new Error(`${this.name}: negative or NaN duration ${duration}`);
    const id = this.jobs++;
    if (id === this.durations.length) {
      const d = new Float64Array(this.durations.length * 2);
      d.set(this.durations);
      this.durations = d;
      const pos = new Int32Array(d.length).fill(-1);
      pos.set(this.heapPos);
      this.heapPos = pos;
    }
    this.durations[id] = duration;
    if (this.busy < this.servers) this.start(now, id);
    else this.enqueue(id, priority);
    return id;
  }

  /**
   * Moves a job that is still waiting to a better (lower) priority, keeping its submission order among
   * equals; returns false when it already started (or already has that priority or better).
   */
  promote(id: number, priority: number): boolean {
    const i = id >= 0 && id < this.jobs ? this.heapPos[id] : -1;
    if (i < 0 || this.waitPrio[i] <= priority) return false;
    this.waitingWork[this.waitPrio[i]] -= this.durations[id];
    this.waitingWork[priority] += this.durations[id];
    this.siftUp(i, id, priority);
    return true;
  }

  /** Called when a completion event of this resource is handled. */
  finished(now: number): void {
    this.busy--;
    if (this.waiting > 0) this.start(now, this.dequeue());
  }

  /**
   * Estimated finish of a new job of this duration and priority submitted now: the earliest server frees
   * up, then the waiting work that goes before it (same or better priority) is shared by the servers.
   */
  /** Each server's remaining busy time at `now` (ms, 0 when idle), into `out`; queued work is not included. */
  serverFreeIn(now: number, out: number[]): number[] {
    out.length = this.servers;
    for (let i = 0; i < this.servers; i++) out[i] = Math.max(0, this.freeAt[i] - now);
    return out;
  }

  estimateFinish(now: number, duration: number, priority = 0): number {
    let earliest = Infinity;
    for (let i = 0; i < this.servers; i++) earliest = Math.min(earliest, Math.max(now, this.freeAt[i]));
    let ahead = 0;
    for (let p = 0; p <= priority && p < this.waitingWork.length; p++) ahead += this.waitingWork[p] ?? 0;
    return earliest + ahead / this.servers + duration;
  }

  /** The id the next submitted job gets (so a caller can tag it before startScale sees it). */
  get nextId(): number {
    return this.jobs;
  }

  /** Servers running a job now. */
  get busyServers(): number {
    return this.busy;
  }

  private start(now: number, id: number): void {
    this.busy++;
    const d = this.startScale ? this.durations[id] * this.startScale(id) : this.durations[id];
    if (!(d >= 0)) throw new Error(`${this.name}: negative or NaN duration ${d} at start`);
    this.busyTime += d;
    let s = 0;
    for (let i = 1; i < this.servers; i++) if (this.freeAt[i] < this.freeAt[s]) s = i;
    this.freeAt[s] = now + d;
    this.queue.push(now + d, this.eventPriority, this.doneKind, id);
  }

  private enqueue(id: number, prio: number): void {
    if (this.waiting === this.waitIds.length) {
      const a = new Int32Array(this.waitIds.length * 2);
      a.set(this.waitIds);
      this.waitIds = a;
      const b = new Int32Array(this.waitPrio.length * 2);
      b.set(this.waitPrio);
      this.waitPrio = b;
    }
    if (prio < 0 || !Number.isInteger(prio)) throw new Error(`${this.name}: priority must be a non-negative integer`);
    while (this.waitingWork.length <= prio) this.waitingWork.push(0);
    this.waitingWork[prio] += this.durations[id];
    this.siftUp(this.waiting++, id, prio);
  }

  /** Places (id, prio) at heap position i or above, moving worse entries down. */
  private siftUp(i: number, id: number, prio: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.waitPrio[p] < prio || (this.waitPrio[p] === prio && this.waitIds[p] < id)) break;
      this.place(i, this.waitIds[p], this.waitPrio[p]);
      i = p;
    }
    this.place(i, id, prio);
  }

  private place(i: number, id: number, prio: number): void {
    this.waitIds[i] = id;
    this.waitPrio[i] = prio;
    this.heapPos[id] = i;
  }

  private dequeue(): number {
    const top = this.waitIds[0];
    this.waitingWork[this.waitPrio[0]] -= this.durations[top];
    this.heapPos[top] = -1;
    const last = --this.waiting;
    if (last === 0) return top;
    const lid = this.waitIds[last];
    const lp = this.waitPrio[last];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && (this.waitPrio[c + 1] < this.waitPrio[c] || (this.waitPrio[c + 1] === this.waitPrio[c] && this.waitIds[c + 1] < this.waitIds[c]))) c++;
      if (lp < this.waitPrio[c] || (lp === this.waitPrio[c] && lid < this.waitIds[c])) break;
      this.place(i, this.waitIds[c], this.waitPrio[c]);
      i = c;
    }
    this.place(i, lid, lp);
    return top;
  }
}
