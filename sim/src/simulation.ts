/**
 * runSimulation: one configuration over one corpus: canonical cache replay inside the timing model.
 * With prefetch 'none' its hits and requests are exactly those of replayCorpus (tested).
 */
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption } from '../../core/src/options.js';
import type { RoutingCorpus } from '../../traces/src/sequences.js';
import { makeLayerCaches } from './cache/replay.js';
import { POLICY_NAMES, type PolicyName } from './cache/types.js';
import { calibrationLabel, type CostModel } from './cost/calibration.js';
import { Costs } from './cost/cost-model.js';
import { prefetchPrecisionRecall } from './prefetch/precision-recall.js';
import { buildPrefetchPlan, PREFETCH_NAMES, type PrefetchName } from './prefetch/sources.js';
import { prepareReplay, staticPinned, type PreparedReplay } from './replay/replay-corpus.js';
import { MISS_MODES, simulateTiming, type MissMode } from './timing/engine.js';
import { CPU_ESTIMATES, DEFAULT_CPU_ESTIMATE, type CpuEstimate } from './cost/cpu-correction.js';

export interface SimConfig {
  policy: PolicyName;
  /** Expert slots per MoE layer. */
  cacheSize: number;
  batch: number;
  prefetch: PrefetchName;
  miss: MissMode;
  calibration: CostModel;
  /** static: popularity source (default: the first half of the corpus's sequences, labelled). */
  warmup?: RoutingCorpus;
  /**
   * Accepted for interface stability; the simulation uses no randomness today (every decision is
   * deterministic), so results do not depend on it.
   */
  seed?: number;
  lfruDecay?: number;
  /** oracle prefetcher's lookahead in layers (default 1). */
  oracleLookahead?: number;
  /** Lanes and request sets built by prepareReplay for this batch (sweeps share them). */
  prepared?: PreparedReplay;
  /** Also return every step's duration and where its first token sits (result.perStep). */
  keepSteps?: boolean;
  /**
   * --miss cpu/hybrid: a CPU-computed expert the cache admitted is copied into its slot in the background
   * (true, default), or its slot stays empty until the GPU needs it (false: "lazy"; a later cache hit on
   * it is a physical miss, decided by the miss rule again). The runtime's --cpu-fill.
   */
  cpuFill?: boolean;
  /** false (--cpu-fill none, the commands' default): a CPU-computed miss is not admitted to the cache, and cpuFill does not apply (timing/engine.ts cpuAdmit; default true). */
  cpuAdmit?: boolean;
  /** --cpu-estimate: the miss rule's CPU times from the profile, or corrected by the run's jobs (timing/engine.ts cpuEstimate; default profile). */
  cpuEstimate?: CpuEstimate;
  /** Steps below this position are prefill and fetch every miss (timing/engine.ts decodeFrom). */
  decodeFrom?: number;
  /** false: no resident steps (timing/engine.ts residentSteps; the runtime's --resident-steps off). Default true. */
  residentSteps?: boolean;
  /** prefetch predicted: the runtime's in-line predictor, ms per (row, layer) prediction (timing/engine.ts predictorMs; default 0). */
  predictorMs?: number;
}

export interface SimResult {
  trace: { dataset: string; routingSource: string; modelId: string; sequences: number; tokens: number; steps: number };
  config: { policy: PolicyName; cacheSize: number; batch: number; prefetch: PrefetchName; miss: MissMode };
  hits: number;
  requests: number;
  hitRate: number;
  /** Hits whose copy had finished when the compute needed the expert (see sim/README.md). */
  readyHits: number;
  /** cpuFill false: cache hits on experts whose slot was never filled (physical misses). */
  unfilledHits: number;
  lateHits: number;
  misses: number;
  bypasses: number;
  cpuExperts: number;
  /** the miss rule's CPU correction factor at the end (cpuEstimate measured; 1 otherwise) */
  cpuFactor: number;
  bytesMoved: number;
  /** Predicted latency of an output token (its step's duration), over tokens, in ms. */
  timePerTokenMs: { mean: number; p50: number; p99: number };
  throughputTokensPerS: number;
  /**
   * promoted: prefetches still queued when a late hit needed them, moved to demand priority (sim/README.md).
   * precision is null when nothing was prefetched and recall when nothing was requested: undefined, not 0.
   */
  prefetch: { issued: number; useful: number; precision: number | null; recall: number | null; dropped: number; promoted: number; lookahead: number | null };
  /** Mean per step, ms: gpuNonExpert + gpuExpert + gpuIdle = step time; copy and cpu are busy times that overlap. */
  breakdown: { gpuNonExpertMs: number; gpuExpertMs: number; gpuIdleMs: number; copyBusyMs: number; cpuBusyMs: number; stepMs: number };
  totalMs: number;
  events: number;
  /** Steps that ran as resident steps (every expert cached: no per-layer host round trip; timing/engine.ts). */
  residentSteps: number;
  calibrationLabel: string;
  warmupLabel?: string;
  /**
   * With keepSteps: step s took ms[s]; its first token is position pos[s] of corpus sequence seq[s];
   * layerHeadMs / layerTailMs / layerTails: its MoE layers split as the runtime's counters split them (summed).
   */
  perStep?: { ms: Float64Array; pos: Int32Array; seq: Int32Array; layerHeadMs: Float64Array; layerTailMs: Float64Array; layerTails: Int32Array; expertGpuMs: Float64Array; resident: Uint8Array };
}

export function validateSimConfig(c: SimConfig): void {
  parseChoiceOption('--policy', c.policy, POLICY_NAMES);
  // 0 slots is naive on-demand loading (every request bypasses): validate's baseline.
  if (!Number.isInteger(c.cacheSize) || c.cacheSize < 0) throw new UserError(`option --cache: ${c.cacheSize} must be an integer >= 0`);
  if (!Number.isInteger(c.batch) || c.batch < 1) throw new UserError(`option --batch: ${c.batch} must be an integer >= 1`);
  parseChoiceOption('--prefetch', c.prefetch, PREFETCH_NAMES);
  parseChoiceOption('--miss', c.miss, MISS_MODES);
  if (c.cpuEstimate !== undefined) parseChoiceOption('--cpu-estimate', c.cpuEstimate, CPU_ESTIMATES);
  if (c.lfruDecay !== undefined && !(c.lfruDecay > 0 && c.lfruDecay <= 1)) throw new UserError(`lfru decay must be in (0, 1], got ${c.lfruDecay}`);
}

/** Token-weighted percentile of step times: the time within which q of the tokens were produced. */
function weightedPercentile(stepMs: Float64Array, stepTokens: Int32Array, q: number): number {
  const order = Array.from(stepMs.keys()).sort((a, b) => stepMs[a] - stepMs[b]);
  let total = 0;
  for (const i of order) total += stepTokens[i];
  let acc = 0;
  for (const i of order) {
    acc += stepTokens[i];
    if (acc >= q * total) return stepMs[i];
  }
  return order.length > 0 ? stepMs[order[order.length - 1]] : 0;
}

export function runSimulation(corpus: RoutingCorpus, config: SimConfig): SimResult {
  validateSimConfig(config);
  if (corpus.sequences.length === 0) throw new UserError('the trace has no sequences');
  const prepared = config.prepared ?? prepareReplay(corpus, config.batch);
  if (prepared.schedule.batch !== config.batch) throw new Error('prepared replay was built for another batch size');
  const { schedule, sets } = prepared;
  let pinned: number[][] | undefined;
  let warmupLabel: string | undefined;
  if (config.policy === 'static') {
    try {
      ({ pinned, label: warmupLabel } = staticPinned(corpus, config.cacheSize, config.warmup));
    } catch (err) {
      throw new UserError(`option --warmup: ${(err as Error).message}`);
    }
  }
  const caches = makeLayerCaches(sets, config.policy, config.cacheSize, { pinned, lfruDecay: config.lfruDecay });
  const plan = buildPrefetchPlan(config.prefetch, corpus, schedule, sets, { oracleLookahead: config.oracleLookahead });
  const t = simulateTiming({
    schedule,
    sets,
    caches,
    costs: new Costs(config.calibration),
    miss: config.miss,
    cpuFill: config.cpuFill ?? true,
    cpuAdmit: config.cpuAdmit ?? true,
    cpuEstimate: config.cpuEstimate ?? DEFAULT_CPU_ESTIMATE,
    decodeFrom: config.decodeFrom ?? 0,
    residentSteps: config.residentSteps ?? true,
    predictorMs: config.predictorMs ?? 0,
    prefetch: plan,
    denseLayers: corpus.meta.numLayers - corpus.moeLayers.length,
  });
  let weighted = 0;
  for (let s = 0; s < schedule.steps; s++) weighted += t.stepMs[s] * t.stepTokens[s];
  const steps = Math.max(1, schedule.steps);
  const gpuBusy = t.busyMs.gpuNonExpert + t.busyMs.gpuExpert;
  const result: SimResult = {
    trace: {
      dataset: corpus.meta.dataset,
      routingSource: corpus.meta.routingSource,
      modelId: corpus.meta.modelId,
      sequences: corpus.sequences.length,
      tokens: t.tokens,
      steps: schedule.steps,
    },
    config: { policy: config.policy, cacheSize: config.cacheSize, batch: config.batch, prefetch: config.prefetch, miss: config.miss },
    hits: t.hits,
    requests: t.requests,
    hitRate: t.requests > 0 ? t.hits / t.requests : 0,
    readyHits: t.readyHits,
    lateHits: t.lateHits,
    unfilledHits: t.unfilledHits,
    misses: t.misses,
    bypasses: t.bypasses,
    cpuExperts: t.cpuExperts,
    cpuFactor: t.cpuFactor,
    bytesMoved: t.bytesMoved,
    timePerTokenMs: {
      mean: t.tokens > 0 ? weighted / t.tokens : 0,
      p50: weightedPercentile(t.stepMs, t.stepTokens, 0.5),
      p99: weightedPercentile(t.stepMs, t.stepTokens, 0.99),
    },
    throughputTokensPerS: t.totalMs > 0 ? t.tokens / (t.totalMs / 1000) : 0,
    prefetch: {
      issued: t.prefetch.issued,
      useful: t.prefetch.useful,
      ...prefetchPrecisionRecall(t.prefetch),
      dropped: t.prefetch.dropped,
      promoted: t.copies.promoted,
      lookahead: plan ? plan.lookahead : null,
    },
    breakdown: {
      gpuNonExpertMs: t.busyMs.gpuNonExpert / steps,
      gpuExpertMs: t.busyMs.gpuExpert / steps,
      gpuIdleMs: (t.totalMs - gpuBusy) / steps,
      copyBusyMs: t.busyMs.copy / steps,
      cpuBusyMs: t.busyMs.cpu / steps,
      stepMs: t.totalMs / steps,
    },
    totalMs: t.totalMs,
    events: t.events,
    residentSteps: t.stepResident.reduce((a, b) => a + b, 0),
    calibrationLabel: calibrationLabel(config.calibration),
  };
  if (warmupLabel) result.warmupLabel = warmupLabel;
  if (config.keepSteps) {
    const first = schedule.tokenOffsets.subarray(0, schedule.steps);
    result.perStep = {
      ms: t.stepMs,
      pos: Int32Array.from(first, (i) => schedule.tokenPos[i]),
      seq: Int32Array.from(first, (i) => schedule.tokenSeq[i]),
      layerHeadMs: t.stepLayerHeadMs,
      layerTailMs: t.stepLayerTailMs,
      layerTails: t.stepLayerTails,
      expertGpuMs: t.stepExpertGpuMs,
      resident: t.stepResident,
    };
  }
  return result;
}
