/**
 * `--cpu-rounding` (issue 12 numerics): how the CPU computes a bf16 miss; `--cpu-estimate`: the hybrid rule's CPU
 * times corrected by the run's jobs or the profile's; bad input refused naming the option.
 */
import { describe, expect, it } from 'vitest';
import { missGridFromCli, missOptionsFromCli } from '../../src/engine/cli-options.js';
import { resolveMissOptions } from '../../src/offload/miss-options.js';

describe('--cpu-rounding', () => {
  it('defaults to fast and reaches the addon spec as given', () => {
    expect(resolveMissOptions({ mode: 'hybrid' }, 'cuda', true)?.rounding).toBe('fast');
    expect(resolveMissOptions({ mode: 'cpu', rounding: 'gpu-order' }, 'cuda', true)?.rounding).toBe('gpu-order');
    expect(missOptionsFromCli({ miss: 'hybrid', cpuRounding: 'gpu-order' })?.rounding).toBe('gpu-order');
    expect(missOptionsFromCli({ miss: 'cpu' })?.rounding).toBe('fast');
    expect(missGridFromCli({ miss: 'fetch,hybrid', cpuRounding: 'gpu-order' }).cpuRounding).toBe('gpu-order');
  });
  it('refuses unknown values and a rounding without CPU misses', () => {
    expect(() => resolveMissOptions({ mode: 'cpu', rounding: 'exact' as 'fast' }, 'cuda', true)).toThrow(/--cpu-rounding: unknown value 'exact'/);
    expect(() => missOptionsFromCli({ miss: 'hybrid', cpuRounding: 'exact' })).toThrow(/--cpu-rounding/);
    expect(() => missOptionsFromCli({ miss: 'fetch', cpuRounding: 'gpu-order' })).toThrow(/--cpu-rounding: only with --miss cpu or hybrid/);
  });
});

describe('--cpu-estimate', () => {
  it('defaults to profile (until measured on a device) and reaches the addon spec as correctCpu', () => {
    expect(resolveMissOptions({ mode: 'hybrid' }, 'cuda', true)?.correctCpu).toBe(false);
    expect(resolveMissOptions({ mode: 'hybrid', cpuEstimate: 'measured' }, 'cuda', true)?.correctCpu).toBe(true);
    expect(missOptionsFromCli({ miss: 'hybrid' })?.cpuEstimate).toBe('profile');
    expect(missOptionsFromCli({ miss: 'cpu', cpuEstimate: 'measured' })?.cpuEstimate).toBe('measured');
    expect(missGridFromCli({ miss: 'fetch,hybrid', cpuEstimate: 'measured' }).cpuEstimate).toBe('measured');
  });
  it('refuses unknown values and an estimate without CPU misses', () => {
    expect(() => resolveMissOptions({ mode: 'cpu', cpuEstimate: 'guess' as 'profile' }, 'cuda', true)).toThrow(/--cpu-estimate: unknown value 'guess'/);
    expect(() => missOptionsFromCli({ miss: 'hybrid', cpuEstimate: 'guess' })).toThrow(/--cpu-estimate/);
    expect(() => missGridFromCli({ miss: 'hybrid', cpuEstimate: 'guess' })).toThrow(/--cpu-estimate/);
    expect(() => missOptionsFromCli({ miss: 'fetch', cpuEstimate: 'profile' })).toThrow(/--cpu-estimate: only with --miss cpu or hybrid/);
  });
});
