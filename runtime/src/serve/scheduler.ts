/**
 * The one owner of the engine while serving: a FIFO queue of jobs, bounded, in front of a continuous
 * batch of `--max-batch` slots. Between engine steps it removes the sequences that left (finished,
 * cancelled by a disconnect or a stop string, or shut down) and admits queued jobs into free slots;
 * their prefill runs in the next step beside the others' decode rows. Nothing here knows HTTP.
 */
import type { ContinuousBatch, SlotFinish } from '../engine/continuous-batch.js';
import type { Sampling } from '../engine/options.js';
import { ApiError } from './api-error.js';
import type { ServeMetrics } from './metrics.js';

/** Why a job ended. */
export type JobEnd =
  | { kind: 'finished'; reason: SlotFinish }
  /** the job asked to stop (stop string) or its client went away */
  | { kind: 'cancelled' }
  | { kind: 'shutdown' }
  | { kind: 'error'; error: Error };

export interface Job {
  prompt: number[];
  maxTokens: number;
  sampling: Sampling;
  /** each generated token, in order; not called after cancel() */
  onToken(token: number, index: number): void;
  /** called once, last */
  onEnd(end: JobEnd): void;
}

export interface SchedulerOptions {
  /** jobs that may wait for a slot; past it submit() refuses with 429 */
  maxQueue: number;
  metrics: ServeMetrics;
  /** routing replay: admitted job g replays trace sequence g mod traceSequences */
  traceSequences?: number;
  /** Retry-After seconds sent with 429 */
  retryAfterSeconds?: number;
  /**
   * prompt tokens admitted into one step (bounds the largest forward, which the GPU workspace is sized
   * for); one job is always admitted when none is prefilling, whatever its length
   */
  maxPrefillTokens?: number;
}

interface Entry {
  job: Job;
  arrived: number;
  lastToken: number;
  cancelled: boolean;
  ended: boolean;
  slot: number;
}

export class Scheduler {
  private readonly queue: Entry[] = [];
  private readonly bySlot = new Map<number, Entry>();
  private readonly entries = new Map<Job, Entry>();
  private admitted = 0;
  private stopping = false;
  private stepping = false;
  private wake: (() => void) | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly loopDone: Promise<void>;

  constructor(
    private readonly batch: ContinuousBatch,
    private readonly o: SchedulerOptions,
  ) {
    o.metrics.maxBatch.value = batch.slots;
    this.loopDone = this.loop();
  }

  get queued(): number {
    return this.queue.length;
  }

  get running(): number {
    return this.bySlot.size;
  }

  /** Queues a job; throws ApiError 503 while shutting down, 429 when the queue is full. */
  submit(job: Job): void {
    if (this.stopping) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    const free = this.batch.slots - this.bySlot.size;
    if (this.queue.length >= free + this.o.maxQueue) {
      this.o.metrics.rejected.inc();
      const after = String(this.o.retryAfterSeconds ?? 1);
      throw new ApiError(429, `the server is at capacity (${this.batch.slots} running, ${this.queue.length} queued, --max-queue ${this.o.maxQueue}); retry after ${after} s`, 'rate_limit_error', null, 'rate_limit_exceeded', { 'Retry-After': after });
    }
    const e: Entry = { job, arrived: performance.now(), lastToken: 0, cancelled: false, ended: false, slot: -1 };
    this.entries.set(job, e);
    this.queue.push(e);
    this.o.metrics.queueDepth.value = this.queue.length;
    this.kick();
  }

  /** The job leaves: at once when queued, at the next step boundary when running. No more tokens reach it. */
  cancel(job: Job): void {
    const e = this.entries.get(job);
    if (!e || e.cancelled || e.ended) return;
    e.cancelled = true;
    const q = this.queue.indexOf(e);
    if (q >= 0) {
      this.queue.splice(q, 1);
      this.o.metrics.queueDepth.value = this.queue.length;
      this.end(e, { kind: 'cancelled' });
    }
    this.kick();
  }

  /** Runs `fn` when no engine step is in flight (the native engine answers nothing during one). */
  betweenSteps<T>(fn: () => T): Promise<T> {
    // Synchronously, right here or right after the step settles: a microtask later the loop may have
    // started the next step.
    const attempt = (): Promise<T> => {
      try {
        return Promise.resolve(fn());
      } catch (err) {
        return Promise.reject(err);
      }
    };
    if (!this.stepping) return attempt();
    return new Promise<T>((resolve, reject) => this.idleWaiters.push(() => attempt().then(resolve, reject)));
  }

  /** Refuses new jobs, ends queued and running ones ('shutdown'), and resolves when the loop has stopped. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    for (const e of this.queue.splice(0)) this.end(e, { kind: 'shutdown' });
    this.o.metrics.queueDepth.value = 0;
    this.kick();
    await this.loopDone;
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private end(e: Entry, end: JobEnd): void {
    if (e.ended) return;
    e.ended = true;
    this.entries.delete(e.job);
    if (end.kind !== 'finished' && e.slot >= 0) this.o.metrics.cancelled.inc();
    try {
      e.job.onEnd(end);
    } catch {
      // A job's callback failing must not stop the loop that serves every other job.
    }
  }

  /** Frees the slots of sequences that left; admits queued jobs into free slots. */
  private rebalance(): void {
    for (const [slot, e] of this.bySlot) {
      if (!e.cancelled && !e.ended && !this.stopping) continue;
      this.batch.remove(slot);
      this.bySlot.delete(slot);
      this.end(e, this.stopping && !e.cancelled ? { kind: 'shutdown' } : { kind: 'cancelled' });
    }
    let prefill = 0;
    const budget = this.o.maxPrefillTokens ?? Infinity;
    while (!this.stopping && this.queue.length > 0 && this.batch.free > 0) {
      if (prefill > 0 && prefill + this.queue[0].job.prompt.length > budget) break;
      const e = this.queue.shift()!;
      const trace = this.o.traceSequences ? this.admitted % this.o.traceSequences : undefined;
      try {
        e.slot = this.batch.add({ prompt: e.job.prompt, maxNewTokens: e.job.maxTokens, sampling: e.job.sampling, stopOnEos: true, traceSequence: trace });
      } catch (err) {
        this.end(e, { kind: 'error', error: err as Error });
        continue;
      }
      this.admitted++;
      prefill += e.job.prompt.length;
      this.bySlot.set(e.slot, e);
      this.o.metrics.promptTokens.inc({}, e.job.prompt.length);
    }
    this.o.metrics.queueDepth.value = this.queue.length;
    this.o.metrics.batchSize.value = this.bySlot.size;
  }

  private async loop(): Promise<void> {
    for (;;) {
      try {
        if (await this.iteration()) return;
      } catch (err) {
        // A bug or an engine in a bad state: the running jobs get the error, the loop goes on serving.
        this.failRunning(err as Error);
      }
    }
  }

  private failRunning(err: Error): void {
    for (const [slot, e] of this.bySlot) {
      try {
        this.batch.remove(slot);
      } catch {
        // the slot is gone already
      }
      this.end(e, { kind: 'error', error: err });
    }
    this.bySlot.clear();
    this.o.metrics.batchSize.value = 0;
  }

  /** One turn: rebalance, then wait for work or run a step. True when the loop is over (shutdown). */
  private async iteration(): Promise<boolean> {
    this.rebalance();
    if (this.bySlot.size === 0) {
      if (this.stopping) return true;
      await new Promise<void>((r) => (this.wake = r));
      return false;
    }
    const t0 = performance.now();
    let tokens;
    this.stepping = true;
    try {
      tokens = await this.batch.step();
    } catch (err) {
      // The step failed as a whole (a native error): every running job gets it; the slots are freed.
      this.stepping = false;
      this.failRunning(err as Error);
      return false;
    } finally {
      this.stepping = false;
      for (const r of this.idleWaiters.splice(0)) r();
    }
    const now = performance.now();
    this.o.metrics.steps.inc();
    this.o.metrics.stepSeconds.observe((now - t0) / 1000);
    for (const t of tokens) {
      const e = this.bySlot.get(t.slot);
      if (!e || e.cancelled || e.ended) continue;
      this.o.metrics.completionTokens.inc();
      if (t.index === 0) this.o.metrics.ttft.observe((now - e.arrived) / 1000);
      else this.o.metrics.tpot.observe((now - e.lastToken) / 1000);
      e.lastToken = now;
      try {
        e.job.onToken(t.token, t.index);
      } catch (err) {
        e.cancelled = true;
        this.end(e, { kind: 'error', error: err as Error });
      }
      if (t.finished && !e.cancelled) {
        this.batch.remove(t.slot);
        this.bySlot.delete(t.slot);
        this.end(e, { kind: 'finished', reason: t.finished });
      }
    }
    return false;
  }
}
