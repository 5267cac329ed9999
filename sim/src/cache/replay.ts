/**
 * The canonical replay: every MoE layer's cache sees its request sets step by step (sim/README.md).
 * This is the function the exact-agreement tests and the runtime's C++ cache are checked against.
 * It allocates once per replay (caches, next-use table, optional log); the loop itself allocates nothing.
 */
import { requestSetsFromLists, type RequestSets } from '../replay/requests.js';
import { NEVER } from './belady.js';
import { LayerCache } from './layer-cache.js';
import { NO_VICTIM, OUTCOME_HIT, OUTCOME_NAMES, type OutcomeName, type PolicyName } from './types.js';

export interface ReplayOptions {
  /** static: pinned experts per layer (pinned[l]); required for static. */
  pinned?: ReadonlyArray<ReadonlyArray<number>>;
  lfruDecay?: number;
  /** Record one decision per request. */
  log?: boolean;
}

/** One entry per request, in processing order (step, then layer, then ascending expert id). */
export interface DecisionLog {
  step: Int32Array;
  layer: Int32Array;
  expert: Int32Array;
  /** OUTCOME_* codes. */
  outcome: Uint8Array;
  /** Evicted expert for OUTCOME_EVICT, else NO_VICTIM (-1). */
  victim: Int32Array;
}

export interface ReplayResult {
  policy: PolicyName;
  capacity: number;
  hits: number;
  requests: number;
  hitRate: number;
  /** Per layer. */
  layerHits: Float64Array;
  layerRequests: Float64Array;
  misses: number;
  evictions: number;
  bypasses: number;
  log?: DecisionLog;
}

/**
 * nextStep[i] for request i (flat index into sets.experts): the next step at which the same expert is
 * requested at the same layer, strictly later; NEVER if it is not requested again.
 */
export function nextRequestSteps(sets: RequestSets): Int32Array {
  const { steps, layers, numExperts, offsets, experts } = sets;
  const next = new Int32Array(experts.length);
  const upcoming = new Int32Array(layers * numExperts).fill(NEVER);
  for (let s = steps - 1; s >= 0; s--) {
    for (let l = 0; l < layers; l++) {
      const base = l * numExperts;
      for (let i = offsets[s * layers + l]; i < offsets[s * layers + l + 1]; i++) {
        const e = experts[i];
        next[i] = upcoming[base + e];
        upcoming[base + e] = s;
      }
    }
  }
  return next;
}

export function makeLayerCaches(sets: RequestSets, policy: PolicyName, capacity: number, opts: ReplayOptions = {}): LayerCache[] {
  const nextStep = policy === 'belady' || policy === 'opt' ? nextRequestSteps(sets) : undefined;
  if (policy === 'static' && (!opts.pinned || opts.pinned.length !== sets.layers)) {
    throw new Error(`static needs pinned experts for each of the ${sets.layers} layers`);
  }
  const caches: LayerCache[] = [];
  for (let l = 0; l < sets.layers; l++) {
    caches.push(
      new LayerCache(sets.numExperts, capacity, policy, {
        nextStep,
        pinned: policy === 'static' ? opts.pinned![l] : undefined,
        lfruDecay: opts.lfruDecay,
      }),
    );
  }
  return caches;
}

export function replayLayers(sets: RequestSets, policy: PolicyName, capacity: number, opts: ReplayOptions = {}): ReplayResult {
  const caches = makeLayerCaches(sets, policy, capacity, opts);
  const { steps, layers, offsets, experts } = sets;
  const layerHits = new Float64Array(layers);
  const layerRequests = new Float64Array(layers);
  const counts = new Float64Array(4);
  const n = experts.length;
  const log: DecisionLog | undefined = opts.log
    ? { step: new Int32Array(n), layer: new Int32Array(n), expert: new Int32Array(n), outcome: new Uint8Array(n), victim: new Int32Array(n) }
    : undefined;
  let li = 0;
  for (let s = 0; s < steps; s++) {
    for (let l = 0; l < layers; l++) {
      const cache = caches[l];
      const from = offsets[s * layers + l];
      const to = offsets[s * layers + l + 1];
      cache.beginStep(s, experts, from, to);
      for (let i = from; i < to; i++) {
        const outcome = cache.request(experts[i], i);
        counts[outcome]++;
        if (outcome === OUTCOME_HIT) layerHits[l]++;
        if (log) {
          log.step[li] = s;
          log.layer[li] = l;
          log.expert[li] = experts[i];
          log.outcome[li] = outcome;
          log.victim[li] = cache.lastVictim;
          li++;
        }
      }
      layerRequests[l] += to - from;
    }
  }
  const hits = counts[OUTCOME_HIT];
  return {
    policy,
    capacity,
    hits,
    requests: n,
    hitRate: n > 0 ? hits / n : 0,
    layerHits,
    layerRequests,
    misses: n - hits,
    evictions: counts[2],
    bypasses: counts[3],
    log,
  };
}

export interface Decision {
  step: number;
  expert: number;
  outcome: OutcomeName;
  /** Present when outcome is 'evict'. */
  victim?: number;
}

/**
 * One layer's replay from plain lists: `requestsPerStep[s]` are the experts requested at step s (any
 * order, repeats merged). Returns the counts and one decision per request. The simple API for hand-made
 * traces and for request-by-request comparison with the runtime's cache.
 */
export function replayCache(
  requestsPerStep: ReadonlyArray<ReadonlyArray<number>>,
  policy: PolicyName,
  capacity: number,
  opts: { numExperts?: number; pinned?: readonly number[]; lfruDecay?: number } = {},
): { hits: number; requests: number; hitRate: number; decisions: Decision[] } {
  const numExperts = opts.numExperts ?? Math.max(0, ...requestsPerStep.flat(), ...(opts.pinned ?? [])) + 1;
  const sets = requestSetsFromLists(requestsPerStep, numExperts);
  const r = replayLayers(sets, policy, capacity, { log: true, pinned: opts.pinned ? [opts.pinned] : undefined, lfruDecay: opts.lfruDecay });
  const log = r.log!;
  const decisions: Decision[] = [];
  for (let i = 0; i < log.step.length; i++) {
    const d: Decision = { step: log.step[i], expert: log.expert[i], outcome: OUTCOME_NAMES[log.outcome[i]] };
    if (log.victim[i] !== NO_VICTIM) d.victim = log.victim[i];
    decisions.push(d);
  }
  return { hits: r.hits, requests: r.requests, hitRate: r.hitRate, decisions };
}
