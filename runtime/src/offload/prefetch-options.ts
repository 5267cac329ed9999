/**
 * Prefetch (issue 12: `--prefetch none|next-gate|oracle|predicted`), as Engine.load / resetOffload take it,
 * checked and turned into the addon's spec before anything loads (errors name the option).
 *   next-gate  layer l+1's router applied to layer l's MoE input (the model's own routing): on the GPU by the
 *              CUDA backend, on the CPU engine by the controller (hostGate). Refused under routing replay: the
 *              random-weight model's gate does not predict a replayed routing, so its precision there would
 *              measure nothing (the issue measures next-gate on the model's own routing).
 *   oracle     the replayed routing of layer l + lookahead itself (routing replay only): the upper bound.
 *   predicted  the trained predictor's experts (`--predictor DIR`, lookahead = the predictor's k), run INSIDE the
 *              runtime: the controller's C++ port of the MLP (native/src/offload/predictor_mlp.cpp) predicts layer
 *              i + k for each row once layer i's routing is on the host, from the replayed routing; its time is
 *              counted there (cache stats prefetch.inferUs). The same predictions are also computed here, with
 *              the simulator's code (predictor/src/annotate.ts), into the replay's corpus, so that the
 *              simulator's prediction of the same run sees the same plan (the port names the same experts:
 *              runtime/test/offload/prefetch-twin.test.ts and prefetch-predicted-esft.test.ts compare the decisions).
 * The decisions (which expert goes into which slot) are the simulator's (native/include/moe/offload/prefetch.h).
 */
import { BadInputError, UserError } from '../../../core/src/errors.js';
import { PREFETCH_NAMES, type PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { applyPredictions, rankPredictions } from '../../../predictor/src/annotate.js';
import { PredictorRuntime } from '../../../predictor/src/infer.js';
import { usesScores } from '../../../predictor/src/features.js';
import type { RoutingReplay } from './routing-replay.js';

export interface PrefetchOptions {
  name: PrefetchName;
  /** predicted: the exported predictor (train-predictor --out DIR) */
  predictor?: string;
  /** predicted: experts the predictor names per token and layer (default 6, as simulate) */
  predictorBudget?: number;
  /** predicted: leave out experts predicted below this probability (default 0: keep all; simulate's --predictor-min-prob) */
  predictorMinProb?: number;
  /** oracle: layers ahead (default 1, the simulator's oracleLookahead) */
  lookahead?: number;
  /** GPU: prefetch pieces on the copy stream at once (default 1: a demand copy waits behind at most one piece) */
  maxInFlight?: number;
}

/** The predictor as the addon's in-line port takes it (native/addon/offload_binding.cpp to_predictor). */
export interface NativePredictorSpec {
  moeLayers: number;
  numExperts: number;
  topK: number;
  lookahead: number;
  budget: number;
  /** ids whose logit is below it are left out (the probability gate as a logit; -Infinity: keep all) */
  minLogit: number;
  blocks: { kind: 'routing' | 'layer'; layerOffset?: number; tokenOffset?: number; perLayer?: boolean }[];
  layers: { in: number; out: number; weightT: Float32Array; bias: Float32Array }[];
}

/** The addon's `prefetch` spec (native/addon/offload_binding.cpp). */
export interface NativePrefetchSpec {
  name: string;
  source: 'next-gate' | 'table' | 'predictor';
  lookahead: number;
  width?: number;
  table?: Int32Array[];
  predictor?: NativePredictorSpec;
  hostGate: boolean;
  pieces: number;
  maxInFlight: number;
}

export interface ResolvedPrefetch {
  spec: NativePrefetchSpec;
}

/** Pieces a prefetch moves in (an expert's gate, up and down matrices): sim/src/timing/engine.ts PREFETCH_CHUNKS. */
export const PREFETCH_PIECES = 3;

/**
 * `routing`: the load's routing replay (mutated for predicted: its corpus gets the predictions, as
 * simulate --predictor does, so the simulator's prediction of the same run sees the same plan).
 * `offloadedCuda`: the CUDA engine with offloaded experts (else the CPU engine's accounting layer).
 */
export function resolvePrefetchOptions(o: PrefetchOptions | undefined, ctx: { routing?: RoutingReplay; hasCache: boolean; offloadedCuda: boolean; moeLayers: number }): ResolvedPrefetch | null {
  if (o === undefined) return null;
  if (o === null || typeof o !== 'object') throw new UserError('option prefetch: must be an object {name, predictor?, lookahead?}');
  if (!(PREFETCH_NAMES as readonly string[]).includes(o.name)) throw new UserError(`option --prefetch: unknown value '${String(o.name)}' (choose from ${PREFETCH_NAMES.join(', ')})`);
  if (o.name !== 'predicted' && (o.predictor !== undefined || o.predictorBudget !== undefined || o.predictorMinProb !== undefined)) {
    throw new UserError(`option --predictor${o.predictor === undefined ? (o.predictorBudget !== undefined ? '-budget' : '-min-prob') : ''}: only with --prefetch predicted (got --prefetch ${o.name})`);
  }
  if (o.lookahead !== undefined && o.name !== 'oracle') {
    throw new UserError(`option --prefetch-lookahead: only with --prefetch oracle (next-gate looks 1 layer ahead, predicted its predictor's k)`);
  }
  if (o.name === 'none') return null;
  if (!ctx.hasCache) throw new UserError(`option --prefetch ${o.name}: needs an expert cache (--cache C or --gpu-memory SIZE)`);
  const maxInFlight = o.maxInFlight ?? 1;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 64) throw new UserError(`option --prefetch-in-flight: must be a whole number from 1 to 64 (got ${String(o.maxInFlight)})`);
  const base = { name: o.name, hostGate: false, pieces: PREFETCH_PIECES, maxInFlight };
  const L = ctx.moeLayers;
  switch (o.name) {
    case 'next-gate':
      if (ctx.routing) {
        throw new UserError("option --prefetch next-gate: refused under routing replay (--routing): the model's own gate does not predict a replayed routing; measure next-gate on the model's own routing (no --routing)");
      }
      return { spec: { ...base, source: 'next-gate', lookahead: 1, hostGate: !ctx.offloadedCuda } };
    case 'oracle': {
      if (!ctx.routing) throw new UserError('option --prefetch oracle: needs a routing replay (--routing F): the oracle prefetches the replayed routing of the layers ahead');
      const lookahead = o.lookahead ?? 1;
      // As the simulator: a lookahead of L or more decides every layer at the step's start.
      if (!Number.isInteger(lookahead) || lookahead < 1 || lookahead > 64) throw new UserError(`option --prefetch-lookahead: must be a whole number from 1 to 64 (got ${String(o.lookahead)})`);
      const table = ctx.routing.corpus.sequences.map((s) => Int32Array.from(s.experts));
      return { spec: { ...base, source: 'table', lookahead, width: ctx.routing.corpus.topK, table } };
    }
    case 'predicted':
      return resolvePredicted(o, ctx.routing, base);
  }
}

function resolvePredicted(o: PrefetchOptions, routing: RoutingReplay | undefined, base: Omit<NativePrefetchSpec, 'source' | 'lookahead'>): ResolvedPrefetch {
  if (o.predictor === undefined) throw new UserError('option --prefetch predicted: needs --predictor DIR (a predictor exported by train-predictor --out DIR)');
  if (!routing) {
    throw new UserError('option --prefetch predicted: needs a routing replay (--routing F): the predictor\'s inputs are the replayed routing (the random-weight model\'s own routing is not what it was trained on)');
  }
  const budget = o.predictorBudget ?? 6;
  const minProb = o.predictorMinProb ?? 0;
  let runtime: PredictorRuntime;
  try {
    runtime = PredictorRuntime.load(o.predictor);
  } catch (err) {
    throw new UserError(`option --predictor: ${(err as Error).message}`);
  }
  if (usesScores(runtime.spec)) throw new UserError(`option --predictor: ${o.predictor} reads router scores; the runtime's predictor reads the replayed routing, which has none (train one without scores)`);
  if (runtime.manifest.model.activation !== 'relu') throw new UserError(`option --predictor: ${o.predictor}'s MLP uses ${runtime.manifest.model.activation}; the runtime's predictor runs relu MLPs`);
  // The simulator's copy of the plan (the replay's corpus, as simulate --predictor fills it); also checks the
  // predictor's geometry and the budget against the trace, with messages that name the option.
  let ranked;
  try {
    ranked = rankPredictions(routing.corpus, runtime, budget, o.predictor);
    applyPredictions(routing.corpus, ranked, minProb);
  } catch (err) {
    if (err instanceof BadInputError || err instanceof UserError) throw new UserError(`option --predictor: ${err.message}`);
    throw err;
  }
  const L = routing.corpus.moeLayers.length;
  if (ranked.lookahead < 1 || ranked.lookahead >= L) throw new UserError(`option --predictor: ${o.predictor} predicts ${ranked.lookahead} layers ahead; the model has ${L} MoE layers`);
  const spec = runtime.spec;
  const predictor: NativePredictorSpec = {
    moeLayers: spec.numMoeLayers,
    numExperts: spec.numExperts,
    topK: spec.topK,
    lookahead: ranked.lookahead,
    budget,
    // annotate.ts applyPredictions: sigmoid(logit) >= p  <=>  logit >= log(p / (1 - p))
    minLogit: minProb <= 0 ? -Infinity : minProb >= 1 ? Infinity : Math.log(minProb / (1 - minProb)),
    blocks: spec.blocks.map((b) => (b.kind === 'routing' ? { kind: 'routing' as const, layerOffset: b.layerOffset, tokenOffset: b.tokenOffset, perLayer: b.perLayer === true } : { kind: 'layer' as const })),
    layers: runtime.layers.map((l) => ({ in: l.inWidth, out: l.outWidth, weightT: l.weightT, bias: l.bias })),
  };
  return { spec: { ...base, source: 'predictor', lookahead: ranked.lookahead, width: budget, predictor } };
}
