/**
 * The simulation part of `validate --best`: for each (batch, prompt) point, every configuration of the space
 * (space.ts) that fits the GPU budget is simulated on exactly the lanes the offload bench will replay
 * (sim-prediction.ts), ranked by predicted ms per output token (equivalently tokens/s at that batch), and
 * the plan names what the GPU re-runs: the N best configurations the runtime can run, plus the baselines.
 */
import type { CostModel } from '../../../sim/src/cost/calibration.js';
import { calibrationLabel } from '../../../sim/src/cost/calibration.js';
import { costModelForDtype, type DtypeCostModel } from '../../../sim/src/cost/expert-dtype.js';
import type { PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { UserError } from '../../../core/src/errors.js';
import type { ModelConfig } from '../model/config.js';
import { BF16_EXPERTS, planGpuMemory, type ExpertFormat, type GpuMemoryPlan } from '../offload/gpu-budget.js';
import type { RoutingCorpus } from '../../../traces/src/sequences.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import type { LaneFill } from '../offload/replay-lanes.js';
import { resolvePrefetchOptions } from '../offload/prefetch-options.js';
import { benchLanes, predictBenchPoint, type BenchShape } from '../bench/sim-prediction.js';
import { baselines, buildSpace, configKey, NEXT_GATE_UNDER_REPLAY, PREDICTED_NEEDS_PREDICTOR, runtimeGaps, slotLadder, type Configuration, type ExpertDtype, type Space } from './space.js';

/** Generation shape of every measured point (the issue-6 grid's: 32 new tokens, 1 warm-up + 2 timed generations). */
export const BENCH_RUN = { newTokens: 32, warmup: 1, repeats: 2 } as const;
/**
 * cpu / hybrid configurations are simulated and measured with --cpu-fill none (CPU-computed misses not
 * admitted to the cache): the commands' default, the faster fill mode on the H200.
 */
export const VALIDATE_CPU_ADMIT = false;

export interface ValidateInputs {
  config: ModelConfig;
  /** where the geometry came from: the checkpoint folder, or the embedded DeepSeek-V2-Lite config */
  modelLabel: string;
  replays: RoutingReplay[];
  budgetBytes: number;
  batches: number[];
  prompts: number[];
  top: number;
  calibration: CostModel;
  /** expert storage formats swept (--expert-dtype, --expert-group; default bf16 only) */
  formats?: ExpertFormat[];
  /** the exported predictor (--predictor DIR): predicted is simulated on its predictions and run on the GPU */
  predictor?: string;
  /**
   * static's pinned experts from this routing instead of the replay's own first half (the simulator's and
   * the runtime's default). Simulated only: validate's CLI never sets it, since its GPU runs pin the
   * default way; routing-transfer.ts uses it to pin from other tasks, as a deployment would.
   */
  staticWarmup?: RoutingCorpus;
}

/** Per swept expert dtype: the slots the budget holds in that format and where its cost figures come from. */
export interface DtypePlan {
  dtype: ExpertDtype;
  /** int4's inputs per group (the format the GPU run loads) */
  group: number;
  slotsMost: number;
  slots: number[];
  fixedBytes: number;
  slotBytes: number;
  /** bf16: the profile's own figures; measured: its byExpertDtype entry; scaled: bf16's scaled by bytes (with costWarning) */
  costBasis: DtypeCostModel['basis'];
  costWarning: string | null;
}

export interface RankedConfig {
  key: string;
  config: Configuration;
  /** 1 = the simulator's best at this point */
  rank: number;
  predictedMs: { mean: number; p50: number; p99: number };
  predictedTokensPerSecond: number;
  hitRate: number;
  cpuExperts: number;
  /** the dimensions the runtime cannot run; empty: runnable */
  runtimeGaps: string[];
}

export interface PlannedRun {
  key: string;
  config: Configuration;
  /** why it is validated: 'top 1', 'top 2', ..., and/or a baseline's name */
  roles: string[];
  rank: number;
  predictedMs: { mean: number; p50: number; p99: number };
  predictedTokensPerSecond: number;
  /** the simulator's hit rate on these lanes (the bench reports its own replay of the same lanes) */
  hitRate: number;
}

export interface PointPlan extends BenchShape {
  lanes: string;
  ranked: RankedConfig[];
  /** prefetchers the sweep left out at this point, with the reason */
  notSimulated: { prefetch: PrefetchName; reason: string }[];
  runs: PlannedRun[];
}

export interface ValidationPlan {
  model: string;
  routing: string[];
  calibration: string;
  budgetBytes: number;
  /** bf16's budget for the run's largest point (one engine shape for the whole run, as the bench loads it): the baselines' */
  memory: GpuMemoryPlan;
  /** bf16's most slots and ladder (the baselines'); each swept dtype's are in `dtypes` */
  slotsMost: number;
  slots: number[];
  dtypes: DtypePlan[];
  /** the predictor the predicted prefetcher used, or null */
  predictor: string | null;
  /** things every output must print (cost figures scaled, not measured) */
  warnings: string[];
  top: number;
  space: { dimension: string; simulator: readonly string[]; runtime: readonly string[]; runtimeLacks: string }[];
  points: PointPlan[];
}

/** The largest run of the plan: what the budget must hold (gridShape of the offload bench). */
export function runShape(batches: number[], prompts: number[]) {
  const batch = Math.max(...batches);
  const prompt = Math.max(...prompts);
  return { batch, contextTokens: prompt + BENCH_RUN.newTokens, prefillRows: batch * prompt };
}

/**
 * The prefetchers the lanes can feed. With a predictor the lanes get its predictions first, through the very
 * code the runtime's load runs on the same lanes (resolvePrefetchOptions: predictor/src/annotate.ts), so the
 * simulated and the measured predicted prefetcher see the same predictions; a predictor of another geometry
 * is refused here, before any GPU work.
 */
function prefetchersFor(lanes: LaneFill, space: Space, predictor: string | undefined, moeLayers: number): { use: PrefetchName[]; left: { prefetch: PrefetchName; reason: string }[] } {
  if (predictor !== undefined) resolvePrefetchOptions({ name: 'predicted', predictor }, { routing: lanes.replay, hasCache: true, offloadedCuda: true, moeLayers });
  const seqs = lanes.replay.corpus.sequences;
  const use: PrefetchName[] = [];
  const left: { prefetch: PrefetchName; reason: string }[] = [];
  for (const p of space.prefetch.simulator) {
    if (p === 'next-gate' && seqs.some((s) => !s.gateNext)) left.push({ prefetch: p, reason: `the replay lanes carry routing only (no gate_next column); and ${NEXT_GATE_UNDER_REPLAY}` });
    else if (p === 'predicted' && seqs.some((s) => !s.predictions)) left.push({ prefetch: p, reason: `the replay lanes carry no predictor output (${PREDICTED_NEEDS_PREDICTOR})` });
    else use.push(p);
  }
  return { use, left };
}

/**
 * Runs the sweep and chooses the runs. `progress(total)` is called once with the number of simulations,
 * and returns what to call after each.
 */
export function planValidation(inputs: ValidateInputs, progress: (total: number) => () => void = () => () => {}): ValidationPlan {
  if (!Number.isInteger(inputs.top) || inputs.top < 1) throw new UserError(`option --top: must be an integer >= 1, got ${inputs.top}`);
  const formats = inputs.formats?.length ? inputs.formats : [BF16_EXPERTS];
  const space = buildSpace({ predictor: inputs.predictor !== undefined, dtypes: formats.map((f) => f.dtype) });
  const shapeMax = runShape(inputs.batches, inputs.prompts);
  // bf16's plan is the baselines' (and refuses a budget below the non-expert part, which no dtype changes).
  const memory = planGpuMemory(inputs.config, inputs.budgetBytes, shapeMax);
  const most = memory.slotsPerLayer;
  const costs = new Map<ExpertDtype, DtypeCostModel>();
  const costOf = (dtype: ExpertDtype): CostModel => {
    const f = formats.find((x) => x.dtype === dtype) ?? BF16_EXPERTS;
    if (!costs.has(dtype)) costs.set(dtype, costModelForDtype(inputs.calibration, dtype, f.group));
    return costs.get(dtype)!.model;
  };
  const dtypes: DtypePlan[] = formats.map((f) => {
    const m = f.dtype === 'bf16' ? memory : planGpuMemory(inputs.config, inputs.budgetBytes, shapeMax, f);
    costOf(f.dtype);
    const c = costs.get(f.dtype)!;
    return { dtype: f.dtype, group: f.group, slotsMost: m.slotsPerLayer, slots: slotLadder(m.slotsPerLayer), fixedBytes: m.fixedBytes, slotBytes: m.slotBytes, costBasis: c.basis, costWarning: c.warning };
  });
  if (dtypes.every((d) => d.slots.length === 0)) {
    const d = dtypes.reduce((a, b) => (b.slotBytes < a.slotBytes ? b : a));
    throw new UserError(
      `option --gpu-memory: the budget fits no expert slot for this run: it holds the non-expert part (${(d.fixedBytes / 2 ** 30).toFixed(2)} GiB) ` +
        `but not one ${d.dtype} slot in every MoE layer (${(d.slotBytes / 2 ** 30).toFixed(2)} GiB more), so there is nothing to choose between`,
    );
  }
  const shapes: { shape: BenchShape; lanes: LaneFill; use: PrefetchName[]; left: { prefetch: PrefetchName; reason: string }[] }[] = [];
  for (const batch of inputs.batches)
    for (const prompt of inputs.prompts) {
      const shape: BenchShape = { batch, prompt, ...BENCH_RUN };
      const lanes = benchLanes(inputs.replays, shape);
      shapes.push({ shape, lanes, ...prefetchersFor(lanes, space, inputs.predictor, inputs.config.moeLayers.length) });
    }
  const swept = (c: Configuration) => dtypes.some((d) => d.dtype === c.dtype && d.slots.includes(c.cache)) && space.policy.simulator.includes(c.policy);
  const extraBaselines = baselines(most).filter((b) => !swept(b.config)).length;
  const perPrefetcher = space.policy.simulator.length * space.miss.simulator.length * dtypes.reduce((a, d) => a + d.slots.length, 0);
  const tick = progress(shapes.reduce((a, s) => a + perPrefetcher * s.use.length + extraBaselines, 0));
  const points: PointPlan[] = [];
  for (const { shape, lanes, use, left } of shapes) {
    const { batch } = shape;
    const ranked: RankedConfig[] = [];
    const simulate = (config: Configuration): RankedConfig => {
      const p = predictBenchPoint(lanes, shape, { policy: config.policy, cacheSize: config.cache, prefetch: config.prefetch, miss: config.miss, cpuAdmit: VALIDATE_CPU_ADMIT, calibration: costOf(config.dtype), warmup: inputs.staticWarmup });
      tick();
      return {
        key: configKey(config),
        config,
        rank: 0,
        predictedMs: { mean: p.msPerToken.mean, p50: p.msPerToken.p50, p99: p.msPerToken.p99 },
        predictedTokensPerSecond: (batch * 1e3) / p.msPerToken.mean,
        hitRate: p.result.hitRate,
        cpuExperts: p.result.cpuExperts,
        runtimeGaps: runtimeGaps(config, space),
      };
    };
    for (const policy of space.policy.simulator)
      for (const { dtype, slots } of dtypes)
        for (const cache of slots)
          for (const prefetch of use)
            for (const miss of space.miss.simulator) ranked.push(simulate({ policy, cache, prefetch, miss, dtype }));
    ranked.sort((a, b) => a.predictedMs.mean - b.predictedMs.mean || a.key.localeCompare(b.key));
    ranked.forEach((r, i) => (r.rank = i + 1));
    const runs = new Map<string, PlannedRun>();
    const add = (r: RankedConfig, role: string) => {
      const have = runs.get(r.key);
      if (have) have.roles.push(role);
      else runs.set(r.key, { key: r.key, config: r.config, roles: [role], rank: r.rank, predictedMs: r.predictedMs, predictedTokensPerSecond: r.predictedTokensPerSecond, hitRate: r.hitRate });
    };
    ranked.filter((r) => r.runtimeGaps.length === 0).slice(0, inputs.top).forEach((r, i) => add(r, `top ${i + 1}`));
    // Baselines outside the sweep (cache 0; bf16 when the sweep has no bf16) are simulated on their own, unranked (rank 0).
    for (const b of baselines(most)) add(ranked.find((x) => x.key === configKey(b.config)) ?? simulate(b.config), b.role);
    points.push({ ...shape, lanes: lanes.description, ranked, notSimulated: left, runs: [...runs.values()] });
  }
  return {
    model: inputs.modelLabel,
    routing: inputs.replays.map((r) => r.path),
    calibration: calibrationLabel(inputs.calibration),
    budgetBytes: inputs.budgetBytes,
    memory,
    slotsMost: most,
    slots: slotLadder(most),
    dtypes,
    predictor: inputs.predictor ?? null,
    warnings: dtypes.flatMap((d) => (d.costWarning ? [d.costWarning] : [])),
    top: inputs.top,
    space: (Object.entries(space) as [string, { simulator: readonly string[]; runtime: readonly string[]; runtimeLacks: string }][]).map(([dimension, d]) => ({
      dimension,
      simulator: d.simulator,
      runtime: d.runtime,
      runtimeLacks: d.runtimeLacks,
    })),
    points,
  };
}
