/**
 * Where the routed experts live for Engine.load (issue 6). On device 'cuda', a `cache` or a `gpuMemory`
 * budget offloads them: pinned host memory plus a pool of GPU slots per MoE layer that the expert cache
 * drives (native/src/cuda_backend/expert_pool.h). The budget picks the slot count (gpu-budget.ts) or
 * checks the cache's. On the CPU the cache stays an accounting layer and a budget is refused.
 */
import type { EngineLoadOptions } from '../engine/options.js';
import type { ModelConfig } from '../model/config.js';
import { UserError } from '../../../core/src/errors.js';
import type { CacheOptions } from './cache-options.js';
import { expertFormatOptions, resolveExpertFormat } from './expert-format.js';
import { checkSlotsFit, CONTEXT_RESERVE_BYTES, planGpuMemory, type ExpertFormat, type GpuMemoryPlan, type RunShape } from './gpu-budget.js';

export const DEFAULT_RUN_SHAPE: RunShape = { batch: 1, contextTokens: 4096 };

export interface Placement {
  /** the cache the run uses (the budget's slot count with lru when only gpuMemory was given) */
  cache: CacheOptions | undefined;
  /** native load options: absent offloadSlots = everything resident; expertDtype only when quantized */
  native: { offloadSlots?: number; gpuBudgetBytes?: number; expertDtype?: string; expertGroup?: number };
  plan: GpuMemoryPlan | null;
  /** the routed experts' storage (bf16 unless offloaded on cuda with expertDtype) */
  format: ExpertFormat;
}

export function resolvePlacement(config: ModelConfig, device: 'cpu' | 'cuda', o: EngineLoadOptions): Placement {
  const { gpuMemory, poolSlots } = o;
  let cache = o.cache;
  if (gpuMemory !== undefined && (typeof gpuMemory !== 'number' || !Number.isFinite(gpuMemory) || gpuMemory <= 0)) {
    throw new UserError(`option gpuMemory: must be a positive number of bytes, got ${String(gpuMemory)}`);
  }
  if (device !== 'cuda') {
    if (gpuMemory !== undefined) throw new UserError('option gpuMemory (--gpu-memory): only on device cuda (the CPU engine keeps every weight in host memory)');
    if (poolSlots !== undefined) throw new UserError('option poolSlots: only on device cuda');
    const format = resolveExpertFormat(config, o, device, false);
    return { cache, native: expertFormatOptions(format), plan: null, format };
  }
  if (cache === undefined && gpuMemory === undefined) {
    if (poolSlots !== undefined) throw new UserError('option poolSlots: needs a cache or gpuMemory (offloading)');
    return { cache, native: {}, plan: null, format: resolveExpertFormat(config, o, device, false) };
  }
  const format = resolveExpertFormat(config, o, device, true);
  const shape = o.runShape ?? DEFAULT_RUN_SHAPE;
  let plan: GpuMemoryPlan | null = null;
  if (gpuMemory !== undefined) {
    const slots = cache?.slotsPerLayer;
    if (slots !== undefined && Number.isInteger(slots) && slots >= 0) plan = checkSlotsFit(config, Math.max(slots, poolSlots ?? 0), gpuMemory, shape, format);
    else plan = planGpuMemory(config, gpuMemory, shape, format);
    cache ??= { slotsPerLayer: plan.slotsPerLayer, policy: 'lru' };
  }
  const pool = poolSlots ?? cache!.slotsPerLayer;
  if (!Number.isInteger(pool) || pool < 0 || pool > config.nRoutedExperts) {
    throw new UserError(`option poolSlots: must be an integer in [0, ${config.nRoutedExperts}], got ${String(pool)}`);
  }
  if (Number.isInteger(cache!.slotsPerLayer) && cache!.slotsPerLayer > pool) {
    throw new UserError(`option poolSlots: ${pool} GPU slots per layer cannot hold a cache of ${cache!.slotsPerLayer}`);
  }
  const native: Placement['native'] = { offloadSlots: pool };
  if (gpuMemory !== undefined) native.gpuBudgetBytes = Math.max(0, gpuMemory - CONTEXT_RESERVE_BYTES);
  return { cache, native: { ...native, ...expertFormatOptions(format) }, plan, format };
}
