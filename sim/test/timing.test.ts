/**
 * The timing model on a hand-made trace with round-number costs, worked out by hand; and the invariant that
 * with prefetch none the simulator's hits and requests are the canonical replay's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTrace } from '../../traces/src/reader.js';
import { toSequences } from '../../traces/src/sequences.js';
import { TraceWriter } from '../../traces/src/writer.js';
import { attachPredictedColumn, defaultCalibration, replayCorpus, runSimulation, type CostModel } from '../src/index.js';
import { handCorpus } from './helpers.js';

/** copy 1 ms, GPU expert 0.5, MoE-layer other 1, dense 2, head 1, CPU expert `cpuMs`. */
function roundCosts(cpuMs = 3): CostModel {
  return {
    schema: 'moe-offload.calibration', version: 1, name: 'round', label: 'test: round numbers', measured: false,
    device: 'test', model: 'test', expertBytes: 1_000_000,
    transfer: { h2dGBps: 1, perCopyMs: 0, copyEngines: 1 },
    gpu: { expertMs: [[1, 0.5]], moeLayerOtherMs: [[1, 1]], denseLayerMs: [[1, 2]], headMs: [[1, 1]] },
    cpu: { workers: 1, expertMs: [[1, cpuMs]], activationCopyMs: 0 },
  };
}

// One sequence, two tokens, one MoE layer (plus one dense layer), top-2: token 0 -> {1,2}, token 1 -> {1,3}.
const corpus = handCorpus([[[[1, 2]], [[1, 3]]]]);
const base = { policy: 'lru' as const, cacheSize: 2, batch: 1 };

describe('timing model, worked by hand (C = 2, lru)', () => {
  it('fetch: misses wait for their copy', () => {
    // step 0: dense 0-2, other 2-3; 1 and 2 miss: copies 3-4, 4-5; GPU 4-4.5, 5-5.5; head 5.5-6.5. -> 6.5 ms
    // step 1: dense 6.5-8.5, other 8.5-9.5; 1 hit: GPU 9.5-10; 3 misses, evicts 2: copy 9.5-10.5, GPU 10.5-11;
    //         head 11-12. -> 5.5 ms
    const r = runSimulation(corpus, { ...base, prefetch: 'none', miss: 'fetch', calibration: roundCosts() });
    expect([r.hits, r.requests, r.bytesMoved]).toEqual([1, 4, 3_000_000]);
    expect(r.totalMs).toBeCloseTo(12, 9);
    expect(r.timePerTokenMs.mean).toBeCloseTo(6, 9);
    expect(r.timePerTokenMs.p50).toBeCloseTo(5.5, 9);
    expect(r.timePerTokenMs.p99).toBeCloseTo(6.5, 9);
    expect(r.throughputTokensPerS).toBeCloseTo(2 / 0.012, 6);
    // GPU busy: dense 4 + other 2 + head 2 + experts 2 = 10 of 12 ms -> per step 5 busy, 1 idle.
    expect(r.breakdown.gpuIdleMs).toBeCloseTo(1, 9);
    expect(r.breakdown.gpuNonExpertMs + r.breakdown.gpuExpertMs).toBeCloseTo(5, 9);
    // per step, the experts' GPU time (two 0.5 ms experts each step)
    const kept = runSimulation(corpus, { ...base, prefetch: 'none', miss: 'fetch', calibration: roundCosts(), keepSteps: true });
    expect(Array.from(kept.perStep!.expertGpuMs)).toEqual([1, 1]);
  });

  it('cpu: misses run on the single CPU worker while their copy fills the slot in the background', () => {
    // step 0: other 2-3; 1 on CPU 3-6 (copy 3-4), 2 on CPU 6-9 (copy 4-5); head 9-10. -> 10
    // step 1: dense 10-12, other 12-13; 1 hit (ready) GPU 13-13.5; 3 on CPU 13-16 (copy 13-14); head 16-17. -> 7
    const r = runSimulation(corpus, { ...base, prefetch: 'none', miss: 'cpu', calibration: roundCosts() });
    expect([r.hits, r.cpuExperts, r.bytesMoved]).toEqual([1, 3, 3_000_000]);
    expect(r.totalMs).toBeCloseTo(17, 9);
  });

  it('hybrid: each miss goes where it is estimated to finish first', () => {
    // CPU expert 1.2 ms; the layer's misses are decided together (sim/src/cost/miss-rule.ts), fills queue
    // after the layer's demand copies and do not enter its estimates.
    // step 0 at 3: expert 1 via copy 0+1+0.5 = 1.5 vs CPU 1.2 -> CPU 3-4.2; expert 2 via copy 1.5 vs CPU
    //   1.2+1.2 = 2.4 -> fetched: copy 3-4, GPU 4-4.5; then expert 1's fill copy 4-5. head 4.5-5.5.
    // step 1 at 5.5: dense -7.5, other -8.5; 1 hit (its fill landed at 5) GPU 8.5-9; 3 misses, evicts 2:
    //   via copy 1.5 vs CPU 1.2 -> CPU 8.5-9.7 (fill 8.5-9.5); head 9.7-10.7.
    const r = runSimulation(corpus, { ...base, prefetch: 'none', miss: 'hybrid', calibration: roundCosts(1.2) });
    expect([r.hits, r.cpuExperts, r.readyHits]).toEqual([1, 2, 1]);
    expect(r.totalMs).toBeCloseTo(10.7, 9);
    // With a slow CPU (3 ms) every miss is fetched and hybrid equals fetch.
    const slow = runSimulation(corpus, { ...base, prefetch: 'none', miss: 'hybrid', calibration: roundCosts(3) });
    expect([slow.cpuExperts, slow.totalMs]).toEqual([0, 12]);
  });

  it('oracle prefetch: copies start at the step start and overlap the dense layer', () => {
    // step 0 at 0: prefetch 1 (copy 0-1), 2 (copy 1-2); dense 0-2; other 2-3; 1, 2 hit ready: GPU 3-3.5, 3.5-4; head 4-5.
    // step 1 at 5: prefetch 3 evicts 2 (not in P={1,3}): copy 5-6; dense 5-7, other 7-8; GPU 8-8.5, 8.5-9; head 9-10.
    const r = runSimulation(corpus, { ...base, prefetch: 'oracle', miss: 'fetch', calibration: roundCosts() });
    expect([r.hits, r.readyHits, r.lateHits, r.requests]).toEqual([4, 4, 0, 4]);
    expect(r.totalMs).toBeCloseTo(10, 9);
    expect(r.prefetch).toMatchObject({ issued: 3, useful: 3, precision: 1, recall: 1, lookahead: 1 });
  });
});

describe('prefetch from a trace predicted column', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sim-pred-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  it('fills predictions from the column and the predicted prefetcher uses them', () => {
    // Predictions: token 0 -> {1,2} (right), token 1 -> {3,0} (3 right, 0 wrong).
    // step 0: as oracle. step 1 at 5: P={0,3}, cache {1,2}: 0 evicts the lru of {1,2} = 1 (copy 5-6), 3 evicts 2
    // (copy 6-7). Demand R={1,3}: 3 hit (ready at 7 < 8), 1 misses with candidates {0} -> evict 0, copy 8-9.
    // issued 4 (1,2,0,3), useful 3 (1,2,3); needed: step 0: 2, step 1: 3 not cached -> 1 -> recall 3/3.
    const f = join(tmp, 'pred.arrow');
    const w = TraceWriter.create(
      f,
      { ...corpus.meta, routingSource: 'imported' },
      { predicted: true },
    );
    w.append({ step: [0, 1], phase: [1, 1], layer: [1, 1], seq: [0, 0], pos: [0, 1], experts: [1, 2, 1, 3], weights: [0.5, 0.5, 0.5, 0.5], predicted: [[1, 2], [3, 0]] });
    w.close();
    const table = readTrace(f);
    const c = toSequences(table);
    expect(attachPredictedColumn(table, c)).toBe(true);
    const r = runSimulation(c, { ...base, prefetch: 'predicted', miss: 'fetch', calibration: roundCosts() });
    expect(r.prefetch).toMatchObject({ issued: 4, useful: 3, precision: 0.75, recall: 1 });
    expect([r.hits, r.requests]).toEqual([3, 4]);
  });
});

describe('prefetch copies yield to demand copies (worked by hand)', () => {
  // copy 1 ms per expert (three pieces of 1/3 when prefetched), GPU expert 0.5, dense 0.7, MoE-layer other 0.5,
  // head 1: the router's choice is known at 1.2. One token, one MoE layer, top-2, cache 4.
  const costs = (): CostModel => ({ ...roundCosts(), gpu: { expertMs: [[1, 0.5]], moeLayerOtherMs: [[1, 0.5]], denseLayerMs: [[1, 0.7]], headMs: [[1, 1]] } });
  const predicted = (routed: number[], predictedIds: number[]) => {
    const c = handCorpus([[[routed]]]);
    c.sequences[0].predictions = { lookahead: 1, width: 2, ids: Uint16Array.from(predictedIds) };
    return runSimulation(c, { policy: 'lru', cacheSize: 4, batch: 1, prefetch: 'predicted', miss: 'fetch', calibration: costs() });
  };

  it('a demand miss waits for one piece of a prefetch on the link, not the whole expert', () => {
    // P = {1, 5} issued at 0: pieces of 1 at 0-1/3-2/3-1, of 5 at 1-4/3-5/3-2. R = {1, 2} at 1.2: 1 hit (ready
    // at 1), GPU 1.2-1.7; 2 misses while 5's first piece runs: its copy 4/3-7/3, GPU 7/3-17/6; 5's other pieces
    // 7/3-3. Head 17/6-23/6. (A whole-expert prefetch would hold the link to 2: the token would end at 4.5.)
    const r = predicted([1, 2], [1, 5]);
    expect([r.hits, r.readyHits, r.prefetch.issued, r.prefetch.useful]).toEqual([1, 1, 2, 1]);
    expect(r.totalMs).toBeCloseTo(23 / 6, 9);
    expect(r.bytesMoved).toBe(3_000_000);
  });

  it('a late hit on a prefetch still queued promotes its pieces to demand priority', () => {
    // P = {1, 6} at 0: pieces of 1 at 0-1, of 6 queued from 1. At 1.2, R = {4, 6}: 4 misses (demand copy queued);
    // 6 is a late hit: its first piece runs (1-4/3), the two queued pieces become demand work and, submitted
    // first, go before 4: 4/3-5/3-2; 6 GPU 2-2.5; 4 copies 2-3, GPU 3-3.5; head 3.5-4.5.
    const r = predicted([4, 6], [1, 6]);
    expect([r.hits, r.lateHits, r.prefetch.issued, r.prefetch.useful]).toEqual([1, 1, 2, 1]);
    expect(r.prefetch.promoted).toBe(1);
    expect(r.totalMs).toBeCloseTo(4.5, 9);
  });
});

describe('only prefetches are promoted', () => {
  it('a late hit on a background fill (misses on the CPU) keeps its priority', () => {
    // dense, other and head 0.1 ms, CPU expert 0.1, copy 1. Step 0: 1 and 2 run on the CPU (0.2-0.4); their
    // background fills: 1 at 0.2-1.2, 2 queued to 1.2-2.2. Step 1 at 0.5 routes {2, 3} at 0.7: 2 is a late
    // hit on a background fill that has not started, which stays background work; 3 runs on the CPU.
    const costs: CostModel = { ...roundCosts(0.1), gpu: { expertMs: [[1, 0.5]], moeLayerOtherMs: [[1, 0.1]], denseLayerMs: [[1, 0.1]], headMs: [[1, 0.1]] } };
    const r = runSimulation(handCorpus([[[[1, 2]], [[2, 3]]]]), { policy: 'lru', cacheSize: 4, batch: 1, prefetch: 'none', miss: 'cpu', calibration: costs });
    expect([r.hits, r.lateHits, r.cpuExperts]).toEqual([1, 1, 3]);
    expect(r.prefetch.promoted).toBe(0);
  });
});

describe('with prefetch none, hits and requests are the canonical replay', () => {
  const sample = toSequences(readTrace(resolve(import.meta.dirname, '..', '..', 'traces', 'samples', 'synthetic-zipf-sticky.arrow')));
  for (const policy of ['lru', 'lfu', 'fifo', 'lfru', 'belady', 'static'] as const) {
    it(policy, () => {
      const want = replayCorpus(sample, { policy, cacheSize: 12, batch: 3 });
      for (const miss of ['fetch', 'cpu', 'hybrid'] as const) {
        const got = runSimulation(sample, { policy, cacheSize: 12, batch: 3, prefetch: 'none', miss, calibration: defaultCalibration() });
        expect([got.hits, got.requests]).toEqual([want.hits, want.requests]);
      }
    });
  }
});

describe('predictions are checked', () => {
  it('refuses predicted ids outside the expert range', () => {
    const c = handCorpus([[[[1, 2]], [[1, 3]]]]);
    c.sequences[0].predictions = { lookahead: 1, width: 2, ids: Uint16Array.from([1, 2, 3, 99]) };
    expect(() => runSimulation(c, { ...base, prefetch: 'predicted', miss: 'fetch', calibration: roundCosts() })).toThrow(/predicts expert 99, but the trace has 8 experts/);
  });
});

describe('the in-line predictor is host work after each predicting layer (predictorMs)', () => {
  // One sequence, 3 tokens, two MoE layers, top-2; the predictor (lookahead 1) names layer 1's experts at layer 0.
  // All four experts fit (C = 4): after step 0 every request hits, and the predictor's time is the only change
  // on the critical path: each step waits predictorMs x 1 row after layer 0 (layer 1 predicts nothing).
  const c = handCorpus([[[[1, 2], [3, 4]], [[1, 2], [3, 4]], [[1, 2], [3, 4]]]]);
  const NO = 65535;
  c.sequences[0].predictions = { lookahead: 1, width: 2, ids: Uint16Array.from([NO, NO, 3, 4, NO, NO, 3, 4, NO, NO, 3, 4]) };
  const run = (predictorMs: number, prefetch: 'predicted' | 'oracle' = 'predicted') =>
    runSimulation(c, { policy: 'lru', cacheSize: 4, batch: 1, prefetch, miss: 'fetch', calibration: roundCosts(), predictorMs });
  it('adds predictorMs per row to every step after step 0, and nothing to another prefetcher', () => {
    const base = run(0);
    const slow = run(0.25);
    expect(base.prefetch.useful).toBeGreaterThan(0);
    expect(slow.timePerTokenMs.p50 - base.timePerTokenMs.p50).toBeCloseTo(0.25, 9);
    expect(slow.totalMs - base.totalMs).toBeGreaterThanOrEqual(0.5 - 1e-9);
    expect(slow.totalMs - base.totalMs).toBeLessThanOrEqual(0.75 + 1e-9);
    expect(run(0.25, 'oracle').totalMs).toBeCloseTo(run(0, 'oracle').totalMs, 9);
  });
});
