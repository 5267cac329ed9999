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
  private jobs = 0;
  /** Total server-busy time (ms), for the breakdown. */
  busyTime = 0;
  /** Sum of durations of waiting jobs (ms) per priority, for the hybrid choice's backlog estimate. */
  private waitingWork: number[] = [];
  /** When each server becomes free, as far as started jobs go. */
  private readonly freeAt: Float64Array;

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
  }

  /** Submits a job; returns its id (the `arg` of its completion event). */
  submit(now: number, duration: number, priority: number): number {
    if (!(duration >= 0)) throw new Error(`${this.name}: negative or NaN duration ${duration}`);
    const id = this.jobs++;
    if (id === this.durations.length) {
      const d = new Float64Array(this.durations.length * 2);
      d.set(this.durations);
      this.durations = d;
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
    let i = 0;
    while (i < this.waiting && this.waitIds[i] !== id) i++;
    if (i === this.waiting || this.waitPrio[i] <= priority) return false;
    this.waitingWork[this.waitPrio[i]] -= this.durations[id];
    this.waitingWork[priority] += this.durations[id];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.waitPrio[p] < priority || (this.waitPrio[p] === priority && this.waitIds[p] < id)) break;
      this.waitIds[i] = this.waitIds[p];
      this.waitPrio[i] = this.waitPrio[p];
      i = p;
    }
    this.waitIds[i] = id;
    this.waitPrio[i] = priority;
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
  estimateFinish(now: number, duration: number, priority = 0): number {
    let earliest = Infinity;
    for (let i = 0; i < this.servers; i++) earliest = Math.min(earliest, Math.max(now, this.freeAt[i]));
    let ahead = 0;
    for (let p = 0; p <= priority && p < this.waitingWork.length; p++) ahead += this.waitingWork[p] ?? 0;
    return earliest + ahead / this.servers + duration;
  }

  private start(now: number, id: number): void {
    this.busy++;
    const d = this.durations[id];
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
    let i = this.waiting++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.waitPrio[p] < prio || (this.waitPrio[p] === prio && this.waitIds[p] < id)) break;
      this.waitIds[i] = this.waitIds[p];
      this.waitPrio[i] = this.waitPrio[p];
      i = p;
    }
    this.waitIds[i] = id;
    this.waitPrio[i] = prio;
  }

  private dequeue(): number {
    const top = this.waitIds[0];
    this.waitingWork[this.waitPrio[0]] -= this.durations[top];
    const last = --this.waiting;
    const lid = this.waitIds[last];
    const lp = this.waitPrio[last];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && (this.waitPrio[c + 1] < this.waitPrio[c] || (this.waitPrio[c + 1] === this.waitPrio[c] && this.waitIds[c + 1] < this.waitIds[c]))) c++;
      if (lp < this.waitPrio[c] || (lp === this.waitPrio[c] && lid < this.waitIds[c])) break;
      this.waitIds[i] = this.waitIds[c];
      this.waitPrio[i] = this.waitPrio[c];
      i = c;
    }
    this.waitIds[i] = lid;
    this.waitPrio[i] = lp;
    return top;
  }
}
