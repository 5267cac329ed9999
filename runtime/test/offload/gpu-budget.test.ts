/**
 * GPU memory budget arithmetic (runtime/src/offload/gpu-budget.ts) on DeepSeek-V2-Lite's config: the
 * sizes the docs state, the slot count a 12 GiB budget gives, refusals that name what is needed.
 */
import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../../src/model/config.js';
import { LITE_CONFIG } from '../../src/model/synth/geometries.js';
import { checkSlotsFit, expertBytes, gpuMemoryFor, nonExpertBytes, parseByteSize, planGpuMemory } from '../../src/offload/gpu-budget.js';
import { UserError } from '../../../core/src/errors.js';

const lite = parseModelConfig(structuredClone(LITE_CONFIG), 'config.json');
const GiB = 2 ** 30;
const b1p128 = { batch: 1, contextTokens: 128 + 64 };

describe('GPU memory budget', () => {
  it('model sizes: one expert 17,301,504 bytes, non-expert part about 2.6 GB plus the cuBLAS workspace', () => {
    expect(expertBytes(lite)).toBe(17_301_504);
    const ne = nonExpertBytes(lite);
    expect(ne).toBeGreaterThan(2.55e9);
    expect(ne).toBeLessThan(2.75e9);
  });

  it('12 GiB at batch 1, prompt 128 holds the reference cache 16 (and not all 64 experts)', () => {
    const p = planGpuMemory(lite, 12 * GiB, b1p128);
    expect(p.slotsPerLayer).toBeGreaterThanOrEqual(16);
    expect(p.slotsPerLayer).toBeLessThan(24);
    expect(p.totalBytes).toBeLessThanOrEqual(12 * GiB);
    expect(p.totalBytes + p.slotBytes).toBeGreaterThan(12 * GiB); // the most that fits
    expect(p.slotBytes).toBe(26 * 17_301_504);
  });

  it('a larger run (batch 16 x 576 tokens) leaves fewer slots in the same budget', () => {
    const small = planGpuMemory(lite, 12 * GiB, b1p128);
    const big = planGpuMemory(lite, 12 * GiB, { batch: 16, contextTokens: 576 });
    expect(big.kvCacheBytes).toBe(16 * 576 * 576 * 27 * 2);
    expect(big.slotsPerLayer).toBeLessThan(small.slotsPerLayer);
  });

  it('more budget than the whole model caps the slots at the experts per layer', () => {
    expect(planGpuMemory(lite, 80 * GiB, b1p128).slotsPerLayer).toBe(64);
  });

  it('a budget below the non-expert part is refused, naming the amount needed', () => {
    const need = gpuMemoryFor(lite, 0, b1p128).fixedBytes;
    expect(() => planGpuMemory(lite, 2 * GiB, b1p128)).toThrow(UserError);
    expect(() => planGpuMemory(lite, 2 * GiB, b1p128)).toThrow(new RegExp(`at least ${(need / GiB).toFixed(2)} GiB is needed`));
    expect(() => planGpuMemory(lite, 2 * GiB, b1p128)).toThrow(/--gpu-memory: 2\.00 GiB cannot hold/);
    // exactly the fixed part runs with cache 0
    expect(planGpuMemory(lite, need, b1p128).slotsPerLayer).toBe(0);
  });

  it('--cache C with --gpu-memory: refused when C does not fit, with the most that does', () => {
    const most = planGpuMemory(lite, 12 * GiB, b1p128).slotsPerLayer;
    expect(checkSlotsFit(lite, most, 12 * GiB, b1p128).slotsPerLayer).toBe(most);
    expect(() => checkSlotsFit(lite, most + 1, 12 * GiB, b1p128)).toThrow(new RegExp(`at most ${most} slots fit`));
  });

  it('bad run shapes are refused', () => {
    expect(() => planGpuMemory(lite, 12 * GiB, { batch: 0, contextTokens: 10 })).toThrow(/batch must be a positive integer/);
    expect(() => planGpuMemory(lite, -1, b1p128)).toThrow(/must be a positive size/);
  });

  it('sizes parse with binary and decimal units; nonsense is refused naming the option', () => {
    expect(parseByteSize('--gpu-memory', '12GiB')).toBe(12 * GiB);
    expect(parseByteSize('--gpu-memory', '12 GB')).toBe(12e9);
    expect(parseByteSize('--gpu-memory', '800MiB')).toBe(800 * 2 ** 20);
    expect(parseByteSize('--gpu-memory', '1.5g')).toBe(1.5 * GiB);
    expect(parseByteSize('--gpu-memory', '4096')).toBe(4096);
    expect(() => parseByteSize('--gpu-memory', 'lots')).toThrow(/option --gpu-memory: 'lots' is not a size/);
    expect(() => parseByteSize('--gpu-memory', '12 XB')).toThrow(/not a size/);
    expect(() => parseByteSize('--gpu-memory', '0GiB')).toThrow(/must be positive/);
  });
});
