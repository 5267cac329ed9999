/**
 * bench in offload mode (issue 6): routed experts offloaded on device 'cuda', a grid of (cache size,
 * policy, batch, prompt, new tokens). Per point the engine's offloading session is replaced
 * (Engine.resetOffload): the cache and the GPU slots start cold and the routing replay starts again at
 * its first lane, so the runtime's hits over the point's generations (warm-up included) are compared
 * with the simulator's replay (sim/src/replay/replay-corpus.ts) of exactly the lanes the point used, in
 * the same batches: equal-length prompts, no eos stop, batches one after another, which is the
 * alignment runtime/test/offload/runtime-vs-sim.test.ts checks on the CPU engine.
 * One engine per cache size (the pool holds exactly C slots, so its memory figures are C's); cache
 * sizes run in ascending order because the engine's allocation peak is a process-wide maximum.
 */
import { performance } from 'node:perf_hooks';
import { replayCorpus } from '../../../sim/src/replay/replay-corpus.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { CostModel } from '../../../sim/src/cost/calibration.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import { prefetchPrecisionRecall } from '../../../sim/src/prefetch/precision-recall.js';
import type { RoutingCorpus } from '../../../traces/src/sequences.js';
import { Engine, type OffloadStats } from '../engine/index.js';
import type { ModelConfig } from '../model/config.js';
import { BF16_EXPERTS, gpuMemoryFor, planGpuMemory, type ExpertFormat, type GpuMemoryPlan, type RunShape } from '../offload/gpu-budget.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import type { ExpertDtype } from '../../../sim/src/cost/expert-layout.js';
import { expertLoadOptions } from '../engine/cli-options.js';
import { describeExpertSource } from '../offload/quantized-file.js';
import { checkMissLog, type MissLogCheck } from '../offload/miss-log-check.js';
import { summarizeCpuJobs, type CpuJobSummary } from '../offload/cpu-job-summary.js';
import type { CpuEstimate } from '../../../sim/src/cost/cpu-correction.js';
import { cpuFillName, cpuFillOptions, resolveMissOptions, specCurve, type CpuFill, type CpuRounding, type NativeMissSpec } from '../offload/miss-options.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import type { PrefetchOptions } from '../offload/prefetch-options.js';
import type { NativeCacheStats } from '../engine/native-binding.js';
import { UserError } from '../../../core/src/errors.js';
import { benchPoint, type PointResult } from './engine-bench.js';
import { benchLanes, predictBenchPoint, withCpuWorkers } from './sim-prediction.js';
import type { GridPoint } from './grid.js';
import type { TargetResult } from './targets.js';

export interface OffloadBenchOptions {
  /** slots per MoE layer; 'fit': for each expert dtype, the most its blobs allow in gpuMemory (needs it) */
  caches: number[] | 'fit';
  /** issue 13: routed-expert storage formats, a grid dimension (default bf16 only) */
  formats?: ExpertFormat[];
  /** quantized formats: the quantized experts file (`auto` or a path; absent: quantize at every load) */
  quantizedFile?: string;
  policies: PolicyName[];
  /** bytes; the engine's budget check and the plan (null: none) */
  gpuMemory: number | null;
  /** traces to replay (lanes filled per point, see replay-lanes.ts); empty: the router decides */
  routing: RoutingReplay[];
  /** what to do with a missed expert, each a grid dimension (issue 12) */
  misses: MissMode[];
  /** CPU worker pool shape for cpu / hybrid (default: the profile's workers, the machine's threads shared) */
  cpuWorkers?: number;
  cpuThreads?: number;
  cpuSpinUs?: number;
  /** cpu/hybrid: background fill of CPU-computed experts (true) and/or lazy (false), a grid dimension */
  cpuFills?: CpuFill[];
  /** cpu/hybrid: how a bf16 miss is computed on the CPU (default fast) */
  cpuRounding?: CpuRounding;
  /** cpu/hybrid: the rule's CPU times as the profile has them (profile, default) or corrected by the run's jobs (measured) */
  cpuEstimate?: CpuEstimate;
  /** the cost model the hybrid rule and the simulated column use */
  calibration: CostModel;
  /**
   * Runs only the (cache, policy, point) combinations this accepts (default: the whole cross product).
   * validate --best measures a chosen set, and stops early through it when interrupted.
   */
  select?: (cache: number, policy: PolicyName, point: GridPoint, miss: MissMode) => boolean;
  /** prefetchers, each a grid dimension (issue 12; default none) */
  prefetches?: PrefetchOptions[];
  /** false (`--resident-steps off`): no resident steps, in the runtime and the simulated column (default true) */
  residentSteps?: boolean;
  /** `--sample-on host`: logits to the host every step, sampled there (the A/B of device sampling; default device) */
  sampleOn?: 'device' | 'host';
}

/** The first logged miss decisions of a point, committed with the results so a CPU test can replay them. */
export interface MissLogSample {
  spec: Omit<NativeMissSpec, 'gpuExpertMs' | 'cpuExpertMs'> & { gpuExpertMs: number[]; cpuExpertMs: number[] };
  rows: number;
  columns: Record<string, number[]>;
}

// Small enough that a whole grid's bench.json comes back from the device (16 MB per file): 60 points x 4000 rows did not.
const MISS_LOG_SAMPLE_ROWS = 400;

export interface OffloadPointResult extends PointResult {
  /** issue 13: the routed experts' storage and one blob's bytes (what each copy moves) */
  expertDtype: ExpertDtype;
  expertBytes: number;
  /** how the simulated column's profile has this dtype's figures: bf16, measured, or scaled by bytes */
  simProfileBasis: 'bf16' | 'measured' | 'scaled';
  cache: number;
  policy: PolicyName;
  miss: MissMode;
  /** cpu/hybrid: CPU-computed experts filled into their slots in the background (null for fetch) */
  cpuFill: boolean | null;
  /** cpu/hybrid: false for --cpu-fill none (CPU-computed misses not admitted; null for fetch; absent in older files) */
  cpuAdmit?: boolean | null;
  cpuWorkers: number | null;
  cpuThreadsPerWorker: number | null;
  /** cpu/hybrid: the CPU experts' rounding (null for fetch; absent in older files: fast) */
  cpuRounding?: CpuRounding | null;
  /** cpu/hybrid: the rule's CPU times (null for fetch; absent in older files, which ran before the correction: profile) */
  cpuEstimate?: CpuEstimate | null;
  /** cpu/hybrid: the point's CPU jobs in its timed generations, from its whole miss log (null for fetch; absent in older files) */
  cpuJobs?: CpuJobSummary | null;
  routing: string;
  /** runtime counters over the point's generations (warm-up included; cold start) */
  hits: number;
  requests: number;
  hitRate: number;
  /** the simulator on the same lanes and batches; null without a routing replay */
  simHits: number | null;
  simRequests: number | null;
  simHitRate: number | null;
  /** per-layer hits equal the simulator's */
  hitsMatchSim: boolean | null;
  /** data moved, over the point's generations */
  slotCopies: number;
  stagedCopies: number;
  bytesH2D: number;
  copyWaitMs: number;
  /** averages over the point's forwards (prefill and decode steps of every generation) */
  bytesPerForward: number;
  copyWaitMsPerForward: number;
  enginePeakBytes: number;
  deviceUsedPeakBytes: number;
  plan: GpuMemoryPlan;
  /** misses computed on the CPU, their fills, per output token; CPU busy share of the timed wall time */
  cpuExperts: number;
  cpuExpertsPerToken: number;
  fillCopies: number;
  cpuBusyShare: number;
  cpuWaitMs: number;
  /** per timed decode step, summed over its MoE layers: the CPU executor's hand-off latencies, which no
   *  job's clock sees (ms; 0 without CPU experts or on an addon built before them) */
  cpuStartLatencyMsPerStep: number;
  cpuJoinLatencyMsPerStep: number;
  /** per decode forward: the backend's wall time, and the host work on the critical path per MoE layer;
   *  the step's time outside the forward (ms/token - forward): what the simulator's profile `host` takes */
  forwardMs: number;
  hostLayerMs: number;
  stepOverheadMs: number;
  /** per decode MoE layer (those with a next MoE layer in the forward): the host's part up to the combine
   *  (CPU experts' wait included) and the rest until the next layer's routing is on the host (ms) */
  layerHeadMs: number;
  layerTailMs: number;
  /** MOE_TIME_EXPERT_LAUNCHES=1 runs only: the timed decode steps' routed-expert launches, GPU ms per step
   *  (CUDA events around each resident and loaded launch) and launches per step; absent otherwise */
  expertGpuMsPerStep?: number;
  expertLaunchesPerStep?: number;
  /** the simulator's split of the same layers (null without a routing replay; absent in older files) */
  simLayerHeadMs?: number | null;
  simLayerTailMs?: number | null;
  /** resident steps allowed (--resident-steps), and how many timed decode steps ran as one, measured and
   *  simulated (every routed expert cached: cuda_resident_step.cpp; absent in older files) */
  residentStepsOn?: boolean;
  residentSteps?: number;
  /** where greedy tokens were sampled (absent in files before device sampling: host) */
  sampleOn?: 'device' | 'host';
  simResidentSteps?: number | null;
  /** the simulator on the same lanes, policy, cache, batch and miss mode (null without a routing replay) */
  simMsPerToken: number | null;
  simError: number | null;
  /** the runtime's miss decisions replayed through the simulator's rule (null for fetch) */
  missRule: MissLogCheck | null;
  missLogSample: MissLogSample | null;
  /** issue 12 prefetch: the prefetcher, the controller's decisions (precision = useful / issued, recall =
   *  useful / needed, the simulator's definitions), the device's copies (wasted bytes: bytes moved for
   *  prefetched experts their layer's next visit did not compute), and the simulator's on the same lanes */
  prefetch: string;
  prefetchStats: { issued: number; useful: number; dropped: number; needed: number; precision: number | null; recall: number | null;
    wastedBytes: number; lateHits: number; promoted: number; cancelled: number; simPrecision: number | null; simRecall: number | null;
    simIssued: number | null; inferMsPerTokenLayer: number | null; /** true: measured in-line (absent in files from before) */ inferInline?: boolean } | null;
}

function sampleOf(log: ReturnType<Engine['takeMissLog']>, spec: NativeMissSpec): MissLogSample {
  const n = Math.min(log.rows, MISS_LOG_SAMPLE_ROWS);
  const cols: Record<string, number[]> = {};
  for (const k of ['step', 'layer', 'expert', 'tokens', 'copyBacklogMs', 'viaCopyMs', 'viaCpuMs', 'cpuMeasuredMs', 'cpuFactor', 'onCpu', 'firstOfLayer'] as const) {
    cols[k] = Array.from(log[k].subarray(0, n));
  }
  return { spec: { ...spec, gpuExpertMs: Array.from(spec.gpuExpertMs), cpuExpertMs: Array.from(spec.cpuExpertMs) }, rows: n, columns: cols };
}

type Counter = { [K in keyof OffloadStats]-?: NonNullable<OffloadStats[K]> extends number ? K : never }[keyof OffloadStats];

function diff(a: OffloadStats | null, b: OffloadStats | null, key: Counter): number {
  return (b?.[key] ?? 0) - (a?.[key] ?? 0);
}

/** A per-layer mean of a summed layer counter (0 without layers, e.g. on an addon built before it). */
function perTail(totalMs: number, layers: number): number {
  return layers > 0 ? totalMs / layers : 0;
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** The largest run of the grid: what the budget and the KV cache must hold. */
export function gridShape(grid: GridPoint[]): RunShape {
  const batch = Math.max(...grid.map((p) => p.batch));
  const contextTokens = Math.max(...grid.map((p) => p.prompt + p.newTokens));
  const prefillRows = Math.max(...grid.map((p) => p.batch * p.prompt));
  return { batch, contextTokens, prefillRows };
}

export async function runOffloadGrid(
  model: string,
  config: ModelConfig,
  grid: GridPoint[],
  promptsOf: (p: GridPoint) => number[][],
  repeats: number,
  warmup: number,
  o: OffloadBenchOptions,
  log: (line: string) => void,
): Promise<OffloadPointResult[]> {
  const shape = gridShape(grid);
  const out: OffloadPointResult[] = [];
  for (const format of o.formats ?? [BF16_EXPERTS]) {
  // The simulated column and the hybrid rule use this dtype's figures (measured, or scaled with a warning).
  const dtypeCost = costModelForDtype(o.calibration, format.dtype, format.group);
  if (dtypeCost.warning) log(`bench: warning: ${dtypeCost.warning}`);
  const calibration = dtypeCost.model;
  let caches: number[];
  if (o.caches === 'fit') {
    if (o.gpuMemory === null) throw new UserError('option --cache fit: needs --gpu-memory (the budget the slots are sized by)');
    caches = [planGpuMemory(config, o.gpuMemory, shape, format).slotsPerLayer];
    log(`bench: --cache fit: ${caches[0]} ${format.dtype} slots per MoE layer fit the budget`);
  } else caches = o.caches;
  for (const C of [...caches].sort((a, b) => a - b)) {
    if (o.select && !o.policies.some((policy) => grid.some((p) => o.misses.some((m) => o.select!(C, policy, p, m))))) continue;
    log(`bench: loading the engine with routed experts offloaded (${format.dtype}), ${C} GPU slots per MoE layer`);
    const t0 = performance.now();
    const engine = await Engine.load(model, {
      device: 'cuda',
      // The load's cache is replaced per point (resetOffload); lru needs nothing that static or belady would.
      cache: { slotsPerLayer: C, policy: 'lru' },
      poolSlots: C,
      runShape: shape,
      ...(o.gpuMemory !== null ? { gpuMemory: o.gpuMemory } : {}),
      ...expertLoadOptions(format, o.quantizedFile),
    });
    const loadedBytes = engine.placement.plan?.expertBytes ?? gpuMemoryFor(config, C, shape, 0, format).expertBytes;
    log(`bench: loaded in ${((performance.now() - t0) / 1e3).toFixed(1)} s${format.dtype !== 'bf16' ? ` (${describeExpertSource(engine.offloadStats())})` : ''}`);
    try {
      for (const policy of o.policies) {
        const variants = o.misses.flatMap((m): Array<{ miss: MissMode; fillMode: CpuFill | null }> => (m === 'fetch' ? [{ miss: m, fillMode: null }] : (o.cpuFills ?? ['background' as const]).map((f) => ({ miss: m, fillMode: f }))));
        for (const { miss, fillMode } of variants) {
          const fillOptions = fillMode ? cpuFillOptions(fillMode) : { fill: true, admit: true };
          const cpuFill = fillMode ? fillOptions.fill : null;
          const cpuAdmit = fillMode ? fillOptions.admit : null;
          for (const pf of o.prefetches ?? [{ name: 'none' as const }]) {
          // Cache 0 is naive on-demand loading: no slot to prefetch into, so only its prefetch-free points run
          // (a grid `--cache 0,C --prefetch none,oracle` then holds naive beside the cached configurations).
          if (C === 0 && pf.name !== 'none') {
            log(`bench: cache 0 (naive on-demand): --prefetch ${pf.name} skipped (no GPU slot to prefetch into)`);
            continue;
          }
          for (const p of grid) {
            if (o.select && !o.select(C, policy, p, miss)) continue;
            const gens = warmup + repeats;
            const benchShape = { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup, repeats };
            const lanes = o.routing.length ? benchLanes(o.routing, benchShape) : null;
            const missOptions = { mode: miss, workers: o.cpuWorkers, threadsPerWorker: o.cpuThreads, spinUs: o.cpuSpinUs, rounding: o.cpuRounding, cpuEstimate: o.cpuEstimate, ...fillOptions, profile: calibration, log: miss !== 'fetch' };
            const missSpec = resolveMissOptions(missOptions, 'cuda', true);
            const cpuEstimate: CpuEstimate | null = missSpec ? (missSpec.correctCpu ? 'measured' : 'profile') : null;
            const prefetchOn = pf.name !== 'none';
            const residentOn = o.residentSteps ?? true;
            engine.resetOffload({ cache: { slotsPerLayer: C, policy }, miss: missOptions, residentSteps: residentOn, ...(prefetchOn ? { prefetch: pf } : {}), ...(lanes ? { routing: lanes.replay } : {}) });
            const before = engine.offloadStats();
            const t1 = performance.now();
            // The forward's own time is read over the timed generations only: the warm-up's forwards start
            // from cold slots and would make the step's time outside the forward look negative.
            let timedBefore = before;
            const r = await benchPoint(engine, p, promptsOf(p), repeats, warmup, log, {
              afterWarmup: () => {
                timedBefore = engine.offloadStats();
              },
              sampleOn: o.sampleOn,
            });
            const wallMs = performance.now() - t1;
            const after = engine.offloadStats();
            const stats = engine.cacheStats();
            if (!stats) throw new UserError('bench: the offloaded engine reports no cache counts');
            const missLog = missSpec ? engine.takeMissLog() : null;
            const hits = sum(stats.hits);
            const requests = sum(stats.requests);
            let sim: { hits: number; requests: number; layerHits: Float64Array; ms: number } | null = null;
            let simPf: { issued: number; precision: number | null; recall: number | null } | null = null;
            let simSplit: { head: number; tail: number } | null = null;
            let simResident: number | null = null;
            if (lanes) {
              const corpus: RoutingCorpus = lanes.replay.corpus;
              const s = replayCorpus(corpus, { policy, cacheSize: C, batch: p.batch });
              const t = predictBenchPoint(lanes, benchShape, {
                policy, cacheSize: C, prefetch: pf.name, miss, calibration: withCpuWorkers(calibration, missSpec?.workers), cpuFill: cpuFill ?? true, cpuAdmit: cpuAdmit ?? true,
                ...(cpuEstimate ? { cpuEstimate } : {}),
                residentSteps: residentOn,
                ...(pf.name === 'oracle' && pf.lookahead !== undefined ? { oracleLookahead: pf.lookahead } : {}),
                // predicted: the in-line predictor's time per prediction as this run measured it (a host cost of
                // the predictor the profile does not hold; a small share: see the point's inferMsPerTokenLayer)
                ...(pf.name === 'predicted' && inferMsPerPrediction(stats.prefetch) !== null ? { predictorMs: inferMsPerPrediction(stats.prefetch)! } : {}),
              });
              simResident = t.residentSteps;
              // With prefetch, or with CPU misses left out of the cache (--cpu-fill none), the cache's hits are the
              // timing model's (replayCorpus has neither).
              sim = prefetchOn || cpuAdmit === false
                ? { hits: t.result.hits, requests: t.result.requests, layerHits: new Float64Array(0), ms: t.msPerToken.mean }
                : { hits: s.hits, requests: s.requests, layerHits: s.layerHits, ms: t.msPerToken.mean };
              simPf = prefetchOn ? t.result.prefetch : null;
              simSplit = { head: t.layerHeadMs, tail: t.layerTailMs };
            }
            const steps = r.msPerToken.n;
            const bytes = diff(before, after, 'bytesH2D');
            const wait = diff(before, after, 'copyWaitMs');
            const cpuExperts = diff(before, after, 'cpuExperts');
            const dev = r.device;
            const tokens = gens * p.newTokens * p.batch;
            const timedDecodes = diff(timedBefore, after, 'decodeForwards');
            const timedResident = diff(timedBefore, after, 'residentForwards');
            // host work per MoE layer of the decode forwards that went through the host layer by layer
            const layerDecodes = timedDecodes - timedResident;
            const point: OffloadPointResult = {
              ...r,
              expertDtype: format.dtype,
              expertBytes: Number(engine.offloadStats()?.expertBytes ?? loadedBytes),
              simProfileBasis: dtypeCost.basis,
              cache: C,
              policy,
              miss,
              cpuFill,
              cpuAdmit,
              cpuWorkers: missSpec?.workers ?? null,
              cpuThreadsPerWorker: missSpec?.threadsPerWorker ?? null,
              cpuRounding: missSpec?.rounding ?? null,
              cpuEstimate,
              cpuJobs: missLog && missSpec ? summarizeCpuJobs(missLog, specCurve(missSpec.cpuExpertMs), { fromStep: timedBefore?.forwards ?? 0 }) : null,
              routing: lanes ? lanes.description : 'router (random weights)',
              hits,
              requests,
              hitRate: requests ? hits / requests : 0,
              simHits: sim?.hits ?? null,
              simRequests: sim?.requests ?? null,
              simHitRate: sim ? (sim.requests ? sim.hits / sim.requests : 0) : null,
              hitsMatchSim: sim ? (prefetchOn || cpuAdmit === false ? sim.hits === hits : Array.from(sim.layerHits).every((h, l) => h === stats.hits[l])) && sim.requests === requests : null,
              slotCopies: diff(before, after, 'slotCopies'),
              stagedCopies: diff(before, after, 'stagedCopies'),
              bytesH2D: bytes,
              copyWaitMs: wait,
              bytesPerForward: bytes / (gens * p.newTokens),
              copyWaitMsPerForward: wait / (gens * p.newTokens),
              enginePeakBytes: Number(dev.enginePeakBytes ?? 0),
              deviceUsedPeakBytes: Number(dev.deviceUsedPeakBytes ?? 0),
              plan: gpuMemoryFor(config, C, shape, o.gpuMemory ?? 0, format),
              cpuExperts,
              cpuExpertsPerToken: cpuExperts / tokens,
              fillCopies: diff(before, after, 'fillCopies'),
              cpuBusyShare: missSpec ? diff(before, after, 'cpuMs') / (missSpec.workers * wallMs) : 0,
              cpuWaitMs: diff(before, after, 'cpuWaitMs'),
              cpuStartLatencyMsPerStep: timedDecodes ? diff(timedBefore, after, 'cpuStartLatencyMs') / timedDecodes : 0,
              cpuJoinLatencyMsPerStep: timedDecodes ? diff(timedBefore, after, 'cpuJoinLatencyMs') / timedDecodes : 0,
              forwardMs: timedDecodes ? diff(timedBefore, after, 'decodeForwardMs') / timedDecodes : 0,
              hostLayerMs: layerDecodes > 0 ? diff(timedBefore, after, 'decodeHostLayerMs') / (layerDecodes * config.moeLayers.length) : 0,
              stepOverheadMs: timedDecodes ? r.msPerToken.mean - diff(timedBefore, after, 'decodeForwardMs') / timedDecodes : 0,
              layerHeadMs: perTail(diff(timedBefore, after, 'decodeLayerHeadMs'), diff(timedBefore, after, 'decodeLayerTails')),
              layerTailMs: perTail(diff(timedBefore, after, 'decodeLayerTailMs'), diff(timedBefore, after, 'decodeLayerTails')),
              ...(timedDecodes && diff(timedBefore, after, 'decodeExpertLaunches') > 0
                ? { expertGpuMsPerStep: diff(timedBefore, after, 'decodeExpertGpuMs') / timedDecodes, expertLaunchesPerStep: diff(timedBefore, after, 'decodeExpertLaunches') / timedDecodes }
                : {}),
              simLayerHeadMs: simSplit ? simSplit.head : null,
              simLayerTailMs: simSplit ? simSplit.tail : null,
              residentStepsOn: residentOn,
              sampleOn: o.sampleOn ?? 'device',
              residentSteps: timedResident,
              simResidentSteps: simResident,
              simMsPerToken: sim ? sim.ms : null,
              simError: sim && r.msPerToken.mean > 0 ? sim.ms / r.msPerToken.mean - 1 : null,
              missRule: missLog && missSpec ? checkMissLog(missLog, missSpec) : null,
              missLogSample: missLog && missSpec ? sampleOf(missLog, missSpec) : null,
              prefetch: pf.name,
              prefetchStats: prefetchOn ? prefetchStatsOf(stats.prefetch, before, after, simPf) : null,
            };
            log(
              `bench: ${format.dtype} cache ${C} ${policy} miss ${miss}${fillMode && fillMode !== 'background' ? ` (fill ${fillMode})` : ''} batch ${p.batch} prompt ${p.prompt}: ${r.msPerToken.mean.toFixed(2)} ms/token` +
                `${point.simMsPerToken !== null ? ` (sim ${point.simMsPerToken.toFixed(2)})` : ''}, prefill ${r.prefillMs.mean.toFixed(1)} ms, ` +
                `hit rate ${(point.hitRate * 100).toFixed(1)}%${point.simHitRate !== null ? ` (sim ${(point.simHitRate * 100).toFixed(1)}%)` : ''}, ${(bytes / 1e9).toFixed(2)} GB moved, copy wait ${wait.toFixed(0)} ms` +
                (missSpec
                  ? `, ${point.cpuExpertsPerToken.toFixed(1)} CPU experts/token` +
                    (cpuExperts > 0 ? ` (${(diff(before, after, 'cpuMs') / cpuExperts).toFixed(3)} ms each, hand-offs ${point.cpuStartLatencyMsPerStep.toFixed(2)} + ${point.cpuJoinLatencyMsPerStep.toFixed(2)} ms/step)` : '') +
                    `, rule ${point.missRule!.agree}/${point.missRule!.rows} agree (CPU factor replay: ${point.missRule!.factorMismatches} of ${point.missRule!.layers} layers off)` +
                    (point.cpuJobs?.ratioToProfile != null ? `, CPU jobs ${point.cpuJobs.ratioToProfile.toFixed(2)}x the profile (factor ${point.cpuJobs.lastFactor?.toFixed(2)})` : '')
                  : '') +
                `, layer head ${point.layerHeadMs.toFixed(3)} + tail ${point.layerTailMs.toFixed(3)} ms${simSplit ? ` (sim ${simSplit.head.toFixed(3)} + ${simSplit.tail.toFixed(3)})` : ''}` +
                `, resident steps ${timedResident}/${timedDecodes}${simResident !== null ? ` (sim ${simResident})` : ''}${residentOn ? '' : ' (off)'}` +
                (steps === 0 ? ' (no timed steps)' : ''),
            );
            out.push(point);
          }
          }
        }
      }
    } finally {
      engine.close();
    }
  }
  }
  return out;
}

/** predicted: the in-line predictor's mean time per (token, layer) decode prediction, ms (warm-up and timed runs together); null without one. */
function inferMsPerPrediction(d: NativeCacheStats['prefetch']): number | null {
  return d?.inferPredictions ? (d.inferUs ?? 0) / d.inferPredictions / 1000 : null;
}

type PrefetchDevice = { wastedBytes?: number; lateHits?: number; promoted?: number; cancelled?: number };
function prefetchStatsOf(
  d: NativeCacheStats['prefetch'],
  before: OffloadStats | null,
  after: OffloadStats | null,
  sim: { issued: number; precision: number | null; recall: number | null } | null,
): NonNullable<OffloadPointResult['prefetchStats']> {
  if (!d) throw new UserError('bench: the engine reports no prefetch counts');
  const dev = (s: OffloadStats | null, k: keyof PrefetchDevice) => Number(((s as unknown as { prefetch?: PrefetchDevice } | null)?.prefetch ?? {})[k] ?? 0);
  const dd = (k: keyof PrefetchDevice) => dev(after, k) - dev(before, k);
  return {
    issued: d.issued, useful: d.useful, dropped: d.dropped, needed: d.needed,
    ...prefetchPrecisionRecall(d),
    wastedBytes: dd('wastedBytes'), lateHits: dd('lateHits'), promoted: dd('promoted'), cancelled: dd('cancelled'),
    simPrecision: sim?.precision ?? null, simRecall: sim?.recall ?? null, simIssued: sim?.issued ?? null,
    inferMsPerTokenLayer: inferMsPerPrediction(d),
    inferInline: true,
  };
}

/** Issue 6's figures at batch 1, prompt 128, cache 16: at most 30 ms per output token, peak GPU memory at most 12 GiB. */
export function offloadTargets(points: readonly OffloadPointResult[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const p of points) {
    if (p.cache !== 16 || p.batch !== 1 || p.prompt !== 128 || (p.expertDtype ?? 'bf16') !== 'bf16') continue;
    out.push({ name: `cache 16 ${p.policy}, batch 1, prompt 128: ms per output token`, value: p.msPerToken.mean, limit: 30, unit: 'ms (<=)', pass: p.msPerToken.mean <= 30 });
    const peak = p.deviceUsedPeakBytes / 2 ** 30;
    out.push({ name: `cache 16 ${p.policy}: peak GPU memory (device-wide)`, value: peak, limit: 12, unit: 'GiB (<=)', pass: peak <= 12 });
  }
  return out;
}

export const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);
const gb = (b: number) => (b / 1e9).toFixed(2);
export const gib = (b: number) => (b / 2 ** 30).toFixed(2);

/** "measured (simulated)" resident steps of a point; "off" when not allowed; "-" in files from before them. */
function residentCell(p: OffloadPointResult): string {
  if (p.residentSteps === undefined) return '-';
  if (p.residentStepsOn === false) return 'off';
  return `${p.residentSteps}${p.simResidentSteps != null ? ` (${p.simResidentSteps})` : ''}`;
}

/**
 * predicted: the in-line predictor's mean time per (token, layer) prediction, us. Bench files written before it
 * ran in-line (2026-12-04) hold the TypeScript precomputation's time there, which no run waited for: marked.
 */
function predictorCell(p: OffloadPointResult): string {
  const ms = p.prefetchStats?.inferMsPerTokenLayer;
  if (ms == null || p.prefetch !== 'predicted') return '-';
  return p.prefetchStats!.inferInline ? (1000 * ms).toFixed(1) : `(${(1000 * ms).toFixed(0)}, precomputed)`;
}

/** The offload grid as a markdown table. */
export function offloadTable(points: readonly OffloadPointResult[]): string {
  const head = ['dtype', 'expert MB', 'cache', 'policy', 'miss', 'fill', 'prefetch', 'precision (sim)', 'recall (sim)', 'wasted GB', 'late hits', 'predictor us', 'batch', 'prompt', 'new', 'prefill ms', 'ms/token mean', 'p50', 'p99', 'sim ms/token', 'sim error', 'tok/s', 'hit rate', 'sim hit rate', '= sim',
    'CPU experts/token', 'fills', 'CPU busy', 'rule agrees', 'CPU jobs / profile (factor)', 'resident steps (sim)', 'GB moved', 'copy wait ms', 'engine peak GiB', 'device peak GiB'];
  const rows = points.map((p) => [
    `${p.expertDtype ?? 'bf16'}${p.simProfileBasis === 'scaled' ? ' (sim scaled)' : ''}`, p.expertBytes === undefined ? '-' : (p.expertBytes / 1e6).toFixed(2),
    String(p.cache), p.policy, p.miss ?? 'fetch', cpuFillName(p.cpuFill, p.cpuAdmit) ?? '-',
    p.prefetch ?? 'none', p.prefetchStats ? `${pct(p.prefetchStats.precision)} (${pct(p.prefetchStats.simPrecision)})` : '-',
    p.prefetchStats ? `${pct(p.prefetchStats.recall)} (${pct(p.prefetchStats.simRecall)})` : '-', p.prefetchStats ? gb(p.prefetchStats.wastedBytes) : '-',
    p.prefetchStats ? `${p.prefetchStats.lateHits} (${p.prefetchStats.promoted} promoted)` : '-', predictorCell(p), String(p.batch), String(p.prompt), String(p.newTokens), p.prefillMs.mean.toFixed(1), p.msPerToken.mean.toFixed(2),
    p.msPerToken.p50.toFixed(2), p.msPerToken.p99.toFixed(2), p.simMsPerToken == null ? '-' : p.simMsPerToken.toFixed(2), p.simError == null ? '-' : `${(100 * p.simError).toFixed(1)}%`,
    p.decodeTokensPerSecond.toFixed(1), pct(p.hitRate), pct(p.simHitRate), p.hitsMatchSim === null ? '-' : p.hitsMatchSim ? 'yes' : 'NO',
    p.cpuExpertsPerToken === undefined ? '-' : p.cpuExpertsPerToken.toFixed(1), String(p.fillCopies ?? '-'), p.miss && p.miss !== 'fetch' ? pct(p.cpuBusyShare) : '-',
    p.missRule ? `${p.missRule.agree}/${p.missRule.rows}${p.missRule.ties ? ` (+${p.missRule.ties} ties)` : ''}${p.missRule.factorMismatches ? `, factor off in ${p.missRule.factorMismatches} layers` : ''}` : '-',
    p.cpuJobs?.ratioToProfile != null ? `${p.cpuJobs.ratioToProfile.toFixed(2)} (${p.cpuJobs.lastFactor?.toFixed(2) ?? '-'})` : '-',
    residentCell(p), gb(p.bytesH2D), p.copyWaitMs.toFixed(0), gib(p.enginePeakBytes), gib(p.deviceUsedPeakBytes),
  ]);
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/**
 * The runtime's host work as the simulator's profile section `host` (calibration.ts): from the fetch points
 * of a bench, per batch (the step's tokens), the mean host work per MoE layer and the step's time outside
 * the forward. null when the bench has no fetch point.
 */
export function hostProfileOf(points: readonly OffloadPointResult[]): { layerMs: Array<[number, number]>; stepMs: Array<[number, number]> } | null {
  const by = new Map<number, { layer: number[]; step: number[] }>();
  for (const p of points) {
    // resident steps skip the per-layer host work this measures
    if (p.miss !== 'fetch' || !(p.forwardMs > 0) || (p.residentSteps ?? 0) > 0) continue;
    const e = by.get(p.batch) ?? { layer: [], step: [] };
    e.layer.push(p.hostLayerMs);
    e.step.push(p.stepOverheadMs);
    by.set(p.batch, e);
  }
  if (by.size === 0) return null;
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const batches = [...by.keys()].sort((a, b) => a - b);
  return {
    layerMs: batches.map((b) => [b, Number(mean(by.get(b)!.layer).toFixed(5))]),
    stepMs: batches.map((b) => [b, Number(Math.max(0, mean(by.get(b)!.step)).toFixed(5))]),
  };
}
