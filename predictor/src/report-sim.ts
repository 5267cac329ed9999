/**
 * The simulated gain of prefetching with a predictor. Its held-out sequences (read back from the traces
 * named in predictor.json) are replayed by the simulator at cache 16 per layer, batch 1, LRU, misses
 * fetched (the setting) and, as a second view, run on the CPU: without prefetch, with the oracle (the true experts, the bound for lookahead 1), with the
 * predictor's top-k, and with the top-k gated by confidence.
 *
 * Why a gate: in this cost model the copy engine is the bottleneck at cache 16, so a wrong prefetch costs
 * a whole expert transfer while a right one only moves a transfer earlier. The gate (minimum predicted
 * probability) is chosen on the run's validation sequences, never on the test sequences it is reported on.
 */
import { existsSync } from 'node:fs';
import { readTrace } from '../../traces/src/reader.js';
import { toSequences, type RoutingCorpus } from '../../traces/src/sequences.js';
import { calibrationLabel, defaultCalibration, runSimulation, type CostModel, type SimConfig, type SimResult } from '../../sim/src/index.js';
import { applyPredictions, rankPredictions } from './annotate.js';
import type { PartFile } from './dataset.js';
import type { PredictorRuntime } from './infer.js';
import type { PredictorManifest } from './predictor-dir.js';

export const SIM_SETTINGS = { policy: 'lru', cacheSize: 16, batch: 1 } as const;
/** 'fetch' (the setting: a miss copies the expert) first; 'cpu' (a miss runs on the CPU) as a second view. */
export const SIM_MISS_MODES = ['fetch', 'cpu'] as const;
export type SimMiss = (typeof SIM_MISS_MODES)[number];
/** Minimum predicted probabilities tried on the validation sequences (0 = the plain top-k). */
export const GATE_GRID = [0, 0.5, 0.7, 0.8, 0.9, 0.95] as const;

export interface SimPoint {
  hitRate: number;
  timePerTokenMs: number;
  prefetchPrecision: number;
  prefetchIssued: number;
  /** Share of the step during which the host-to-device copy engine is busy. */
  copyBusyShare: number;
}

export interface SimGain {
  miss: SimMiss;
  tokens: number;
  sequences: number;
  budget: number;
  calibration: string;
  /** Gate chosen on validation, and what each gate gave there. */
  gate: number;
  validation: { tokens: number; none: SimPoint; gates: { gate: number; result: SimPoint }[] };
  none: SimPoint;
  oracle: SimPoint;
  topK: SimPoint;
  gated: SimPoint;
}

/** The sequences of a split part, read back from their trace files, or why that is impossible. */
export function partCorpus(parts: PartFile[]): RoutingCorpus | string {
  let merged: RoutingCorpus | undefined;
  for (const part of parts) {
    if (!existsSync(part.path)) return `${part.path} is no longer there`;
    const c = toSequences(readTrace(part.path));
    const keep = new Set(part.seqs);
    const sequences = c.sequences.filter((s) => keep.has(s.seq));
    // Sequence ids repeat across files; the simulator needs them distinct within one corpus.
    const offset = merged ? Math.max(...merged.sequences.map((s) => s.seq)) + 1 : 0;
    for (const s of sequences) s.seq += offset;
    if (!merged) merged = { ...c, sequences };
    else merged.sequences.push(...sequences);
  }
  return merged ?? 'the run names no sequences for it';
}

export function heldOutCorpus(m: PredictorManifest): RoutingCorpus | string {
  return partCorpus(m.training.split.test);
}

function point(r: SimResult): SimPoint {
  return {
    hitRate: r.hitRate,
    timePerTokenMs: r.timePerTokenMs.mean,
    prefetchPrecision: r.prefetch.precision ?? 0,
    prefetchIssued: r.prefetch.issued,
    copyBusyShare: r.breakdown.stepMs > 0 ? r.breakdown.copyBusyMs / r.breakdown.stepMs : 0,
  };
}

const tokensOf = (c: RoutingCorpus) => c.sequences.reduce((n, s) => n + s.length, 0);

/** One simulation per miss mode; predictions are computed once and shared. */
export function simulateGain(m: PredictorManifest, runtime: PredictorRuntime, log: (line: string) => void = () => {}): SimGain[] | string {
  const test = partCorpus(m.training.split.test);
  if (typeof test === 'string') return `test sequences: ${test}`;
  const val = partCorpus(m.training.split.val);
  if (typeof val === 'string') return `validation sequences: ${val}`;
  const budget = m.geometry.topK;
  const calibration: CostModel = defaultCalibration();
  const valRanked = rankPredictions(val, runtime, budget);
  const ranked = rankPredictions(test, runtime, budget);
  return SIM_MISS_MODES.map((miss) => {
    const sim = (corpus: RoutingCorpus, prefetch: SimConfig['prefetch']) => point(runSimulation(corpus, { ...SIM_SETTINGS, miss, prefetch, calibration }));
    log(`  miss ${miss}: choosing the confidence gate on ${val.sequences.length} validation sequences`);
    const gates = GATE_GRID.map((gate) => {
      applyPredictions(val, valRanked, gate);
      return { gate, result: sim(val, 'predicted') };
    });
    const best = gates.reduce((a, b) => (b.result.timePerTokenMs < a.result.timePerTokenMs ? b : a));
    log(`  miss ${miss}: simulating ${test.sequences.length} held-out sequences (gate ${best.gate})`);
    applyPredictions(test, ranked, 0);
    const topK = sim(test, 'predicted');
    applyPredictions(test, ranked, best.gate);
    const gated = sim(test, 'predicted');
    return {
      miss,
      tokens: tokensOf(test),
      sequences: test.sequences.length,
      budget,
      calibration: calibrationLabel(calibration),
      gate: best.gate,
      validation: { tokens: tokensOf(val), none: sim(val, 'none'), gates },
      none: sim(test, 'none'),
      oracle: sim(test, 'oracle'),
      topK,
      gated,
    };
  });
}
