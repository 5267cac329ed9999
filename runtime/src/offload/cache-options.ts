/**
 * The expert cache of the offloading runtime, as Engine.load takes it: `cache: {slotsPerLayer, policy}`.
 * The policies are the simulator's (sim/src/cache/): the C++ cache makes the same decision on every
 * request (runtime/test/offload/cache-twin.test.ts). On the CPU engine the cache is an accounting layer:
 * it counts hits and misses per MoE layer while the weights stay in host memory.
 */
import { LFRU_DEFAULT_DECAY } from '../../../sim/src/cache/lfru.js';
import { POLICY_NAMES, type PolicyName } from '../../../sim/src/cache/types.js';
import { UserError } from '../../../core/src/errors.js';

export interface CacheOptions {
  /** expert slots per MoE layer (the simulator's --cache C; 0: nothing cached, every expert loaded on demand) */
  slotsPerLayer: number;
  /** lru, lfu, fifo, lfru, belady and opt (need routing replay), static (needs pinned experts) */
  policy: PolicyName;
  /** lfru decay per step, in (0, 1] (default the simulator's) */
  lfruDecay?: number;
  /** static: the pinned experts of each MoE layer (default: the C most popular of the first half of the replayed trace, as the simulator) */
  pinned?: number[][];
  /** belady: the run's batching (batch lanes, tokens processed per sequence), to derive the future from the routing replay */
  schedule?: { batch: number; lengths: number[] };
}

export interface ResolvedCacheOptions {
  slotsPerLayer: number;
  policy: PolicyName;
  lfruDecay: number;
  pinned?: number[][];
}

function fail(option: string, problem: string): never {
  throw new UserError(`option ${option}: ${problem}`);
}

export function resolveCacheOptions(o: CacheOptions | undefined, numExperts: number, moeLayers: number): ResolvedCacheOptions | null {
  if (o === undefined) return null;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) fail('cache', 'must be an object {slotsPerLayer, policy}');
  for (const k of Object.keys(o)) {
    if (!['slotsPerLayer', 'policy', 'lfruDecay', 'pinned', 'schedule'].includes(k)) fail(`cache.${k}`, 'unknown option (known: slotsPerLayer, policy, lfruDecay, pinned)');
  }
  const { slotsPerLayer, policy } = o;
  if (!Number.isInteger(slotsPerLayer) || slotsPerLayer < 0 || slotsPerLayer > numExperts) {
    fail('cache.slotsPerLayer', `must be an integer in [0, ${numExperts}] (the model has ${numExperts} routed experts per layer; 0: nothing cached), got ${String(slotsPerLayer)}`);
  }
  if (!POLICY_NAMES.includes(policy)) fail('cache.policy', `unknown policy '${String(policy)}' (choose from ${POLICY_NAMES.join(', ')})`);
  const lfruDecay = o.lfruDecay ?? LFRU_DEFAULT_DECAY;
  if (typeof lfruDecay !== 'number' || !(lfruDecay > 0 && lfruDecay <= 1)) fail('cache.lfruDecay', `must be in (0, 1], got ${String(lfruDecay)}`);
  if (o.pinned !== undefined) {
    if (policy !== 'static') fail('cache.pinned', 'is for the static policy only');
    if (!Array.isArray(o.pinned) || o.pinned.length !== moeLayers) fail('cache.pinned', `must list the pinned experts of each of the ${moeLayers} MoE layers`);
    o.pinned.forEach((ids, l) => {
      if (!Array.isArray(ids) || ids.length > slotsPerLayer) fail(`cache.pinned[${l}]`, `must be an array of at most ${slotsPerLayer} expert ids`);
      if (new Set(ids).size !== ids.length || ids.some((e) => !Number.isInteger(e) || e < 0 || e >= numExperts)) {
        fail(`cache.pinned[${l}]`, `must hold distinct expert ids in [0, ${numExperts})`);
      }
    });
  }
  return { slotsPerLayer, policy, lfruDecay, pinned: o.pinned };
}
