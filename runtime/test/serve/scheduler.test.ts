/**
 * The scheduler against a scripted batch (no engine): the queue bound (429 with Retry-After),
 * FIFO admission into free slots under the prefill budget, cancellation of queued and running jobs
 * (the slot is freed at the next step boundary), trace sequences in admission order, shutdown.
 * Also the stop-string text buffer and the incremental detokenizer.
 */
import { describe, expect, it } from 'vitest';
import type { ContinuousBatch, SequenceOptions, SlotToken } from '../../src/engine/continuous-batch.js';
import { ApiError } from '../../src/serve/api-error.js';
import { ServeMetrics } from '../../src/serve/metrics.js';
import { Scheduler, type Job, type JobEnd } from '../../src/serve/scheduler.js';
import { StopText } from '../../src/serve/stop-text.js';
import { Detokenizer } from '../../src/serve/detokenizer.js';

/** Each running slot emits token 100 + slot per step, finishing after maxNewTokens. */
class FakeBatch {
  readonly added: SequenceOptions[] = [];
  readonly removed: number[] = [];
  readonly stepRows: number[] = [];
  private seqs: ({ left: number; index: number } | null)[];
  private gate: (() => void) | null = null;
  held = false;
  constructor(readonly slots: number) {
    this.seqs = Array.from({ length: slots }, () => null);
  }
  get free(): number {
    return this.seqs.filter((s) => s === null).length;
  }
  get running(): number {
    return this.seqs.filter((s) => s && s.left > 0).length;
  }
  add(o: SequenceOptions): number {
    const slot = this.seqs.indexOf(null);
    this.seqs[slot] = { left: o.maxNewTokens, index: 0 };
    this.added.push(o);
    return slot;
  }
  remove(slot: number): void {
    this.seqs[slot] = null;
    this.removed.push(slot);
  }
  /** while held, step() waits for release() */
  release(): void {
    this.held = false;
    const g = this.gate;
    this.gate = null;
    g?.();
  }
  async step(): Promise<SlotToken[]> {
    if (this.held) await new Promise<void>((r) => (this.gate = r));
    const out: SlotToken[] = [];
    this.seqs.forEach((s, slot) => {
      if (!s || s.left === 0) return;
      s.left--;
      out.push({ slot, token: 100 + slot, index: s.index++, finished: s.left === 0 ? 'length' : null });
    });
    this.stepRows.push(out.length);
    return out;
  }
  close(): void {}
}

function job(prompt: number[], maxTokens: number): Job & { tokens: number[]; end: Promise<JobEnd> } {
  let done!: (e: JobEnd) => void;
  const end = new Promise<JobEnd>((r) => (done = r));
  const tokens: number[] = [];
  return { prompt, maxTokens, sampling: 'greedy', tokens, end, onToken: (t) => tokens.push(t), onEnd: (e) => done(e) };
}

const make = (slots: number, maxQueue: number, extra: Record<string, unknown> = {}) => {
  const batch = new FakeBatch(slots);
  const sched = new Scheduler(batch as unknown as ContinuousBatch, { maxQueue, metrics: new ServeMetrics(), retryAfterSeconds: 2, ...extra });
  return { batch, sched };
};

describe('scheduler', () => {
  it('runs jobs to the end and refuses past the queue bound with 429 and Retry-After', async () => {
    const { batch, sched } = make(2, 1);
    batch.held = true;
    const jobs = [job([1], 3), job([2], 3), job([3], 3)];
    jobs.forEach((j) => sched.submit(j));
    let refused: unknown;
    try {
      sched.submit(job([4], 1));
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ status: 429, code: 'rate_limit_exceeded', headers: { 'Retry-After': '2' } });
    batch.release();
    const ends = await Promise.all(jobs.map((j) => j.end));
    expect(ends).toEqual(jobs.map(() => ({ kind: 'finished', reason: 'length' })));
    expect(jobs.map((j) => j.tokens.length)).toEqual([3, 3, 3]);
    // FIFO: the third job took a slot freed by the first two.
    expect(batch.added.map((a) => a.prompt[0])).toEqual([1, 2, 3]);
    await sched.shutdown();
  });

  it('frees a cancelled running job\'s slot at the next step boundary, a queued one at once', async () => {
    const { batch, sched } = make(1, 4);
    const running = job([1], 50);
    const queued = job([2], 2);
    const next = job([3], 2);
    batch.held = true;
    sched.submit(running);
    sched.submit(queued);
    sched.submit(next);
    sched.cancel(queued);
    expect(await queued.end).toEqual({ kind: 'cancelled' });
    await new Promise((r) => setTimeout(r, 0));
    sched.cancel(running); // while its first step is in flight
    batch.release();
    expect(await running.end).toEqual({ kind: 'cancelled' });
    expect(running.tokens).toEqual([]); // the token of the step in flight is not delivered
    expect(await next.end).toEqual({ kind: 'finished', reason: 'length' });
    expect(batch.added.map((a) => a.prompt[0])).toEqual([1, 3]);
    await sched.shutdown();
  });

  it('gives trace sequences in admission order, admits under the prefill budget, and shuts down', async () => {
    const { batch, sched } = make(4, 8, { traceSequences: 3, maxPrefillTokens: 5 });
    batch.held = true;
    const jobs = [job([1, 1, 1], 2), job([2, 2], 2), job([3, 3], 2), job([4], 2), job([5], 40)];
    jobs.forEach((j) => sched.submit(j));
    await new Promise((r) => setTimeout(r, 0));
    // 3 + 2 tokens fill the budget: the first step prefills two jobs only.
    expect(batch.added.length).toBe(2);
    batch.release();
    await Promise.all(jobs.slice(0, 4).map((j) => j.end));
    expect(batch.added.map((a) => a.traceSequence)).toEqual([0, 1, 2, 0, 1]);
    const stopping = sched.shutdown();
    expect(await jobs[4].end).toEqual({ kind: 'shutdown' });
    await stopping;
    expect(() => sched.submit(job([1], 1))).toThrow(/shutting down/);
  });
});

describe('stop strings', () => {
  it('holds back a possible start of a stop string and ends before it', () => {
    const s = new StopText(['END', 'xy']);
    expect(s.push('abc E')).toEqual({ text: 'abc ', stopped: false });
    expect(s.push('N')).toEqual({ text: '', stopped: false });
    expect(s.push('Dzzz')).toEqual({ text: '', stopped: true });
    expect(s.all).toBe('abc ');
    const t = new StopText(['END']);
    expect(t.push('abc E')).toEqual({ text: 'abc ', stopped: false });
    expect(t.push('x')).toEqual({ text: 'Ex', stopped: false });
    expect(t.push('yE')).toEqual({ text: 'y', stopped: false });
    expect(t.flush()).toBe('E');
    const u = new StopText([]);
    expect(u.push('END')).toEqual({ text: 'END', stopped: false });
  });
});

describe('incremental detokenizer', () => {
  it('streams byte tokens into whole characters, equal to decoding everything at once', () => {
    const text = 'héllo € 𝄞 end';
    const bytes = Array.from(new TextEncoder().encode(text));
    const decode = (ids: number[]) => new TextDecoder().decode(Uint8Array.from(ids));
    const d = new Detokenizer(decode);
    const pieces = bytes.map((b) => d.push(b));
    expect(pieces.join('') + d.flush()).toBe(text);
    expect(pieces.every((p) => !p.includes('\uFFFD'))).toBe(true);
    // A trailing incomplete character comes out at the end, as the decoder renders it.
    const e = new Detokenizer(decode);
    const cut = Array.from(new TextEncoder().encode('a€')).slice(0, 3);
    expect(cut.map((b) => e.push(b)).join('') + e.flush()).toBe(decode(cut));
  });
});
