/** Load options of offloading (placement.ts) and the CLI flags (--cache, --policy, --gpu-memory): values and refusals. */
import { describe, expect, it } from 'vitest';
import { offloadOptionsFromCli } from '../../src/engine/cli-options.js';
import { parseModelConfig } from '../../src/model/config.js';
import { LITE_CONFIG } from '../../src/model/synth/geometries.js';
import { CONTEXT_RESERVE_BYTES, planGpuMemory } from '../../src/offload/gpu-budget.js';
import { resolvePlacement } from '../../src/offload/placement.js';
import { resolveCacheOptions } from '../../src/offload/cache-options.js';

const lite = parseModelConfig(structuredClone(LITE_CONFIG), 'config.json');
const GiB = 2 ** 30;
const shape = { batch: 1, contextTokens: 192 };

describe('offloading placement', () => {
  it('cpu: the cache stays accounting, nothing offloaded; a budget is refused', () => {
    expect(resolvePlacement(lite, 'cpu', { cache: { slotsPerLayer: 4, policy: 'lru' } }).native).toEqual({});
    expect(() => resolvePlacement(lite, 'cpu', { gpuMemory: 12 * GiB })).toThrow(/only on device cuda/);
  });

  it('cuda without cache or budget: all resident', () => {
    expect(resolvePlacement(lite, 'cuda', {}).native).toEqual({});
    expect(() => resolvePlacement(lite, 'cuda', { poolSlots: 4 })).toThrow(/needs a cache or gpuMemory/);
  });

  it('cuda with a cache: that many slots (0 allowed); poolSlots may be larger, never smaller', () => {
    expect(resolvePlacement(lite, 'cuda', { cache: { slotsPerLayer: 0, policy: 'lru' } }).native).toEqual({ offloadSlots: 0 });
    expect(resolvePlacement(lite, 'cuda', { cache: { slotsPerLayer: 8, policy: 'lfu' }, poolSlots: 32 }).native).toEqual({ offloadSlots: 32 });
    expect(() => resolvePlacement(lite, 'cuda', { cache: { slotsPerLayer: 8, policy: 'lru' }, poolSlots: 4 })).toThrow(/cannot hold a cache of 8/);
    expect(() => resolvePlacement(lite, 'cuda', { cache: { slotsPerLayer: 8, policy: 'lru' }, poolSlots: 65 })).toThrow(/poolSlots: must be an integer in \[0, 64\]/);
  });

  it('cuda with a budget only: the slots that fit, lru; the native budget leaves out the context reserve', () => {
    const p = resolvePlacement(lite, 'cuda', { gpuMemory: 12 * GiB, runShape: shape });
    const want = planGpuMemory(lite, 12 * GiB, shape).slotsPerLayer;
    expect(p.cache).toEqual({ slotsPerLayer: want, policy: 'lru' });
    expect(p.native).toEqual({ offloadSlots: want, gpuBudgetBytes: 12 * GiB - CONTEXT_RESERVE_BYTES });
    expect(() => resolvePlacement(lite, 'cuda', { gpuMemory: GiB, runShape: shape })).toThrow(/at least .* GiB is needed/);
    expect(() => resolvePlacement(lite, 'cuda', { gpuMemory: -5 })).toThrow(/gpuMemory: must be a positive number/);
    expect(() => resolvePlacement(lite, 'cuda', { cache: { slotsPerLayer: 64, policy: 'lru' }, gpuMemory: 12 * GiB, runShape: shape })).toThrow(/64 slots per layer need/);
  });

  it('cache options: 0 slots accepted, negative and too many refused', () => {
    expect(resolveCacheOptions({ slotsPerLayer: 0, policy: 'lru' }, 64, 26)?.slotsPerLayer).toBe(0);
    expect(() => resolveCacheOptions({ slotsPerLayer: -1, policy: 'lru' }, 64, 26)).toThrow(/\[0, 64\]/);
    expect(() => resolveCacheOptions({ slotsPerLayer: 65, policy: 'lru' }, 64, 26)).toThrow(/\[0, 64\]/);
  });
});

describe('CLI: --cache / --policy / --gpu-memory', () => {
  it('--gpu-memory alone picks the slots with the given policy', () => {
    const o = offloadOptionsFromCli({ policy: 'lfu', gpuMemory: '12GiB' }, lite, 'cuda', shape);
    expect(o.cache).toEqual({ slotsPerLayer: planGpuMemory(lite, 12 * GiB, shape).slotsPerLayer, policy: 'lfu' });
    expect(o.gpuMemory).toBe(12 * GiB);
  });
  it('--cache 0 is naive on-demand loading; bad values name the option', () => {
    expect(offloadOptionsFromCli({ policy: 'lru', cache: '0' }, lite, 'cuda', shape).cache).toEqual({ slotsPerLayer: 0, policy: 'lru' });
    expect(() => offloadOptionsFromCli({ policy: 'lru', cache: '65' }, lite, 'cuda', shape)).toThrow(/--cache/);
    expect(() => offloadOptionsFromCli({ policy: 'mru', cache: '4' }, lite, 'cuda', shape)).toThrow(/--policy/);
    expect(() => offloadOptionsFromCli({ policy: 'lru', gpuMemory: '12 parsecs' }, lite, 'cuda', shape)).toThrow(/--gpu-memory/);
    expect(() => offloadOptionsFromCli({ policy: 'lru', gpuMemory: '12GiB' }, lite, 'cpu', shape)).toThrow(/--gpu-memory: only with --device cuda/);
  });
});
