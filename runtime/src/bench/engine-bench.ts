import { performance } from 'node:perf_hooks';
import type { Engine } from '../engine/index.js';
import type { GridPoint } from './grid.js';
import { summarize, type Summary } from './stats.js';
import { heartbeatMs } from '../../../core/src/progress.js';

/** Figures of one grid point on the engine (all times in milliseconds, wall clock, end to end). */
export interface PointResult extends GridPoint {
  repeats: number;
  /** begin(): prefill of every prompt plus sampling of the first tokens */
  prefillMs: Summary;
  /** one decode step: one new token for every sequence (the time per output token of each) */
  msPerToken: Summary;
  /** batch / mean decode step time */
  decodeTokensPerSecond: number;
  /** all generated tokens / whole generation time (prefill included) */
  endToEndTokensPerSecond: number;
  /** the device's own figures after this point (CUDA: engine and device memory, bytes) */
  device: Record<string, unknown>;
}

interface OneRun {
  prefillMs: number;
  stepMs: number[];
  totalMs: number;
}


/** One generation with timestamps at the end of the prefill and of every decode step. */
async function timedGeneration(engine: Engine, prompts: number[][], newTokens: number, what: string, log: ((line: string) => void) | undefined, keepLogits: boolean): Promise<OneRun> {
  const t0 = performance.now();
  let last = t0;
  let prefillMs = 0;
  let index = -1;
  const stepMs: number[] = [];
  // A heartbeat every few seconds (a long prompt's prefill takes minutes on the CPU; never more often, so the
  // timings are not disturbed); unref: never keeps the process alive.
  const timer = log
    ? setInterval(() => {
        const s = ((performance.now() - t0) / 1e3).toFixed(0);
        log(`bench: ${what}: ${index < 0 ? `prefill of ${prompts.length} x ${prompts[0].length} tokens` : `decode step ${index}/${newTokens - 1}`}, ${s} s so far`);
      }, heartbeatMs())
    : undefined;
  timer?.unref();
  try {
    // Sequences advance in lockstep (no eos stop) and each step yields sequence 0 first, so the
    // arrival of sequence 0's token k marks the end of step k.
    for await (const t of engine.generate({ prompts, maxNewTokens: newTokens, stopOnEos: false, keepLogits })) {
      if (t.sequence !== 0 || t.index === index) continue;
      const now = performance.now();
      if (t.index === 0) prefillMs = now - t0;
      else stepMs.push(now - last);
      last = now;
      index = t.index;
    }
  } finally {
    clearInterval(timer);
  }
  return { prefillMs, stepMs, totalMs: performance.now() - t0 };
}

export interface BenchPointOptions {
  /** called between the warm-up and the timed generations (e.g. to read the engine's counters there) */
  afterWarmup?: () => void;
  /** 'host': every step's logits come to the host and are sampled there (GenerateOptions.keepLogits); default 'device' */
  sampleOn?: 'device' | 'host';
}

/** Warm-up generations first (graph capture, buffer growth), then `repeats` timed ones. */
export async function benchPoint(engine: Engine, point: GridPoint, prompts: number[][], repeats: number, warmup: number, log?: (line: string) => void, o: BenchPointOptions = {}): Promise<PointResult> {
  const name = `batch ${point.batch} prompt ${point.prompt} new ${point.newTokens}`;
  const keep = o.sampleOn === 'host';
  for (let i = 0; i < warmup; i++) await timedGeneration(engine, prompts, point.newTokens, `${name}, warm-up ${i + 1}/${warmup}`, log, keep);
  o.afterWarmup?.();
  const runs: OneRun[] = [];
  for (let i = 0; i < repeats; i++) runs.push(await timedGeneration(engine, prompts, point.newTokens, `${name}, timed run ${i + 1}/${repeats}`, log, keep));
  const steps = runs.flatMap((r) => r.stepMs);
  const msPerToken = summarize(steps);
  const totalMs = runs.reduce((a, r) => a + r.totalMs, 0);
  return {
    ...point,
    repeats,
    prefillMs: summarize(runs.map((r) => r.prefillMs)),
    msPerToken,
    decodeTokensPerSecond: (point.batch * 1e3) / msPerToken.mean,
    endToEndTokensPerSecond: (point.batch * point.newTokens * runs.length * 1e3) / totalMs,
    device: engine.deviceInfo(),
  };
}
