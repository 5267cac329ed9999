/**
 * Engine.load's expertDtype / expertGroup (runtime/src/offload/expert-format.ts, placement.ts) and the CLI
 * flags (--expert-dtype, --expert-group): what reaches the addon, the budget's slots per dtype, and the
 * refusals by name before anything loads (unknown dtype, quantized without offloading or on the CPU, a
 * group that does not divide the shapes), plus the post-load guard against an addon that ignores the option.
 */
import { describe, expect, it } from 'vitest';
import { expertDtypeListFromCli, expertFormatFromCli, expertLoadOptions, offloadOptionsFromCli, quantizedFileFromCli } from '../../src/engine/cli-options.js';
import { parseModelConfig } from '../../src/model/config.js';
import { LITE_CONFIG } from '../../src/model/synth/geometries.js';
import { planGpuMemory } from '../../src/offload/gpu-budget.js';
import { checkLoadedFormat, resolveExpertFormat } from '../../src/offload/expert-format.js';
import { resolvePlacement } from '../../src/offload/placement.js';
import { UserError } from '../../../core/src/errors.js';

const lite = parseModelConfig(structuredClone(LITE_CONFIG), 'config.json');
const GiB = 2 ** 30;
const shape = { batch: 1, contextTokens: 192 };
const cache = { slotsPerLayer: 16, policy: 'lru' as const };

describe('expert dtype: engine options', () => {
  it('bf16 (default) sends nothing to the addon: the pre-issue-13 load', () => {
    expect(resolvePlacement(lite, 'cuda', { cache }).native).toEqual({ offloadSlots: 16 });
    expect(resolvePlacement(lite, 'cuda', { cache, expertDtype: 'bf16' }).native).toEqual({ offloadSlots: 16 });
    expect(resolvePlacement(lite, 'cpu', {}).format).toEqual({ dtype: 'bf16', group: 64 });
  });

  it('int8 / int4 offloaded on cuda reach the addon (int4 with its group)', () => {
    expect(resolvePlacement(lite, 'cuda', { cache, expertDtype: 'int8' }).native).toEqual({ offloadSlots: 16, expertDtype: 'int8' });
    expect(resolvePlacement(lite, 'cuda', { cache, expertDtype: 'int4', expertGroup: 128 }).native).toEqual({ offloadSlots: 16, expertDtype: 'int4', expertGroup: 128 });
  });

  it('a budget alone gets the dtype\'s slots; a cache is checked with the quantized sizes', () => {
    const p = resolvePlacement(lite, 'cuda', { gpuMemory: 12 * GiB, runShape: shape, expertDtype: 'int8' });
    expect(p.cache?.slotsPerLayer).toBe(planGpuMemory(lite, 12 * GiB, shape, { dtype: 'int8', group: 64 }).slotsPerLayer);
    expect(p.cache!.slotsPerLayer).toBeGreaterThan(planGpuMemory(lite, 12 * GiB, shape).slotsPerLayer);
    const bf16Most = planGpuMemory(lite, 12 * GiB, shape).slotsPerLayer;
    // one slot more than bf16 fits: refused for bf16, accepted for int8
    expect(() => resolvePlacement(lite, 'cuda', { cache: { slotsPerLayer: bf16Most + 1, policy: 'lru' }, gpuMemory: 12 * GiB, runShape: shape })).toThrow(/at most \d+ slots fit/);
    expect(resolvePlacement(lite, 'cuda', { cache: { slotsPerLayer: bf16Most + 1, policy: 'lru' }, gpuMemory: 12 * GiB, runShape: shape, expertDtype: 'int8' }).plan?.expertDtype).toBe('int8');
  });

  it('on the CPU engine a quantized dtype reaches the addon too (its own copy in host memory)', () => {
    expect(resolvePlacement(lite, 'cpu', { expertDtype: 'int8' }).native).toEqual({ expertDtype: 'int8' });
    expect(resolvePlacement(lite, 'cpu', { cache, expertDtype: 'int4', expertGroup: 32 })).toMatchObject({ native: { expertDtype: 'int4', expertGroup: 32 }, format: { dtype: 'int4', group: 32 } });
  });

  it('refuses by name: unknown dtype, quantized all-resident on cuda, group without int4, a group that does not divide', () => {
    expect(() => resolveExpertFormat(lite, { expertDtype: 'fp8' as never }, 'cuda', true)).toThrow(/option --expert-dtype: unknown value 'fp8' \(choose from bf16, int8, int4\)/);
    expect(() => resolvePlacement(lite, 'cpu', { expertDtype: 'int4', expertGroup: 96 })).toThrow(/--expert-group: .*96 must divide hidden \(2048\)/);
    expect(() => resolvePlacement(lite, 'cuda', { expertDtype: 'int8' })).toThrow(/needs offloaded experts \(--cache C or --gpu-memory SIZE\)/);
    expect(() => resolvePlacement(lite, 'cuda', { cache, expertDtype: 'int8', expertGroup: 64 })).toThrow(/--expert-group: only with --expert-dtype int4/);
    expect(() => resolvePlacement(lite, 'cuda', { cache, expertDtype: 'int4', expertGroup: 96 })).toThrow(/--expert-group: .*96 must divide hidden \(2048\)/);
    expect(() => resolvePlacement(lite, 'cuda', { cache, expertDtype: 'int4', expertGroup: 7 })).toThrow(UserError);
  });

  it('after load: an addon that does not report the dtype asked for is refused (it would run bf16 under an int8 label)', () => {
    expect(() => checkLoadedFormat({ dtype: 'bf16', group: 64 }, null)).not.toThrow();
    expect(() => checkLoadedFormat({ dtype: 'int8', group: 64 }, { slotsPerLayer: 16 })).toThrow(/does not support quantized experts/);
    expect(() => checkLoadedFormat({ dtype: 'int8', group: 64 }, { expertDtype: 'bf16' })).toThrow(/loaded bf16 experts/);
    expect(() => checkLoadedFormat({ dtype: 'int4', group: 64 }, { expertDtype: 'int4' })).not.toThrow();
  });
});

describe('expert dtype: CLI flags', () => {
  it('--expert-dtype and --expert-group parse, refusing unknown values by name', () => {
    expect(expertFormatFromCli({})).toEqual({ dtype: 'bf16', group: 64 });
    expect(expertFormatFromCli({ expertDtype: 'int4', expertGroup: '128' })).toEqual({ dtype: 'int4', group: 128 });
    expect(() => expertFormatFromCli({ expertDtype: 'int3' })).toThrow(/--expert-dtype/);
    expect(expertDtypeListFromCli({ expertDtype: 'bf16,int8,int4' }).map((f) => f.dtype)).toEqual(['bf16', 'int8', 'int4']);
    expect(() => expertDtypeListFromCli({ expertDtype: 'bf16,q4' })).toThrow(/--expert-dtype/);
  });

  it('offloadOptionsFromCli: the budget\'s slots follow the dtype; quantized on cuda needs offloading', () => {
    const bf16 = offloadOptionsFromCli({ policy: 'lru', gpuMemory: '12GiB' }, lite, 'cuda', shape);
    const int4 = offloadOptionsFromCli({ policy: 'lru', gpuMemory: '12GiB', expertDtype: 'int4' }, lite, 'cuda', shape);
    expect(int4.cache!.slotsPerLayer).toBeGreaterThan(bf16.cache!.slotsPerLayer);
    expect(int4).toMatchObject({ expertDtype: 'int4', expertGroup: 64 });
    expect(bf16.expertDtype).toBeUndefined();
    expect(() => offloadOptionsFromCli({ policy: 'lru', expertDtype: 'int8' }, lite, 'cuda', shape)).toThrow(/needs offloaded experts/);
    expect(offloadOptionsFromCli({ policy: 'lru', expertDtype: 'int8' }, lite, 'cpu', shape)).toMatchObject({ expertDtype: 'int8' });
  });

  it('--quantized-file: passed on for quantized formats only; a path serves one format, auto one per format', () => {
    const i8 = { dtype: 'int8' as const, group: 64 };
    const i4 = { dtype: 'int4' as const, group: 64 };
    expect(offloadOptionsFromCli({ policy: 'lru', gpuMemory: '12GiB', expertDtype: 'int4', quantizedFile: 'auto' }, lite, 'cuda', shape).quantizedFile).toBe('auto');
    expect(offloadOptionsFromCli({ policy: 'lru', gpuMemory: '12GiB', expertDtype: 'int4', quantizedFile: 'off' }, lite, 'cuda', shape).quantizedFile).toBeUndefined();
    expect(() => offloadOptionsFromCli({ policy: 'lru', gpuMemory: '12GiB', quantizedFile: 'auto' }, lite, 'cuda', shape)).toThrow(/--quantized-file: only with --expert-dtype int8 or int4/);
    expect(quantizedFileFromCli({ quantizedFile: 'auto' }, [{ dtype: 'bf16', group: 64 }, i8, i4])).toBe('auto');
    expect(quantizedFileFromCli({ quantizedFile: '/f.safetensors' }, [{ dtype: 'bf16', group: 64 }, i8])).toBe('/f.safetensors');
    expect(() => quantizedFileFromCli({ quantizedFile: '/f.safetensors' }, [i8, i4])).toThrow(/one file holds one format, and int8, int4 are asked for; use --quantized-file auto/);
    // bf16 points of a grid get no file
    expect(expertLoadOptions({ dtype: 'bf16', group: 64 }, 'auto')).toEqual({});
    expect(expertLoadOptions(i8, 'auto')).toEqual({ expertDtype: 'int8', quantizedFile: 'auto' });
  });
});
