/**
 * "Same names, same decisions" for the miss rule: the CUDA runtime's logged decisions from an H200 run
 * (reports/bench/miss-h200/bench-c19-p128.json, misses on the CPU and hybrid, ESFT routing replayed; the
 * first 400 decisions of each point are committed) fed to the simulator's rule (sim/src/cost/miss-rule.ts)
 * with the costs that run used: the same inputs give the same decision, row for row.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NativeMissLog } from '../../src/engine/native-binding.js';
import { checkMissLog } from '../../src/offload/miss-log-check.js';
import type { NativeMissSpec } from '../../src/offload/miss-options.js';
import type { MissLogSample } from '../../src/bench/offload-bench.js';
import { repoRoot } from '../../../core/test/helpers.js';

const file = join(repoRoot, 'reports', 'bench', 'miss-h200', 'bench-c19-p128.json');
const doc = JSON.parse(readFileSync(file, 'utf8')) as { grid: Array<{ miss: string; batch: number; missLogSample: MissLogSample | null }> };

function toLog(s: MissLogSample): NativeMissLog {
  const c = s.columns;
  return {
    rows: s.rows,
    step: Int32Array.from(c.step), layer: Int32Array.from(c.layer), expert: Int32Array.from(c.expert), tokens: Int32Array.from(c.tokens),
    copyBacklogMs: Float32Array.from(c.copyBacklogMs), viaCopyMs: Float32Array.from(c.viaCopyMs), viaCpuMs: Float32Array.from(c.viaCpuMs),
    cpuMeasuredMs: Float32Array.from(c.cpuMeasuredMs), onCpu: Uint8Array.from(c.onCpu), firstOfLayer: Uint8Array.from(c.firstOfLayer),
    // logs from before the CPU correction: the runtime decided with the profile's times (factor 1)
    cpuFactor: c.cpuFactor ? Float32Array.from(c.cpuFactor) : new Float32Array(s.rows).fill(1),
  };
}

function toSpec(s: MissLogSample): NativeMissSpec {
  return { ...s.spec, correctCpu: s.spec.correctCpu ?? false, gpuExpertMs: Float64Array.from(s.spec.gpuExpertMs), cpuExpertMs: Float64Array.from(s.spec.cpuExpertMs) };
}

describe('the runtime\'s miss decisions (H200 log) replayed through the simulator\'s rule', () => {
  const points = doc.grid.filter((p) => p.missLogSample);
  it('the committed run has logged decisions for cpu and hybrid at several batch sizes', () => {
    expect(new Set(points.map((p) => p.miss))).toEqual(new Set(['cpu', 'hybrid']));
    expect(new Set(points.map((p) => p.batch)).size).toBeGreaterThanOrEqual(2);
  });
  for (const p of points) {
    it(`${p.miss}, batch ${p.batch}: every decision equal`, () => {
      const s = p.missLogSample!;
      const r = checkMissLog(toLog(s), toSpec(s));
      expect(r.rows).toBe(s.rows);
      expect(r.disagree).toBe(0);
      expect(r.agree + r.ties).toBe(r.rows);
      expect(r.factorMismatches).toBe(0);
      if (p.miss === 'hybrid') {
        // hybrid really chose: some misses fetched, some on the CPU (a rule that always says one thing would pass trivially)
        const onCpu = s.columns.onCpu.reduce((a, b) => a + b, 0);
        expect(onCpu).toBeGreaterThan(0);
        expect(onCpu).toBeLessThan(s.rows);
      }
    });
  }
  it('a changed cost makes the replay disagree (the check can fail)', () => {
    const s = points.find((p) => p.miss === 'hybrid' && p.batch === 16)!.missLogSample!;
    const spec = toSpec(s);
    const r = checkMissLog(toLog(s), { ...spec, copyMs: spec.copyMs * 3 });
    expect(r.disagree).toBeGreaterThan(0);
  });
});

describe('the CPU correction factor replayed from a log (--cpu-estimate measured)', () => {
  // Two layers of a hybrid log, 1 worker. Layer A: two CPU jobs of 1 token measured at 0.8 ms against the
  // profile's 0.4 (ratio 2); layer B decides with the factor they leave: 1 -> 1 + 1/32 -> that + (2 - that) / 32.
  const f1 = 1 + (2 - 1) / 32;
  const fB = f1 + (2 - f1) / 32;
  const spec: NativeMissSpec = {
    mode: 'hybrid', workers: 1, threadsPerWorker: 1, spinUs: 0, rounding: 'fast', fill: false, admit: false, correctCpu: true, log: true,
    copyMs: 10, activationCopyMs: 0.01, gpuExpertMs: Float64Array.from([1, 0.02]), cpuExpertMs: Float64Array.from([1, 0.4]),
  };
  const log = (factorB: number): NativeMissLog => ({
    rows: 3,
    step: Int32Array.from([5, 5, 5]), layer: Int32Array.from([1, 1, 2]), expert: Int32Array.from([3, 7, 4]), tokens: Int32Array.from([1, 1, 1]),
    copyBacklogMs: Float32Array.from([0, 0, 0]),
    viaCopyMs: Float32Array.from([10.02, 10.02, 10.02]), viaCpuMs: Float32Array.from([0.41, 0.82, fB * 0.4 + 0.01]),
    cpuMeasuredMs: Float32Array.from([0.8, 0.8, 0.5]), cpuFactor: Float32Array.from([1, 1, factorB]),
    onCpu: Uint8Array.from([1, 1, 1]), firstOfLayer: Uint8Array.from([1, 0, 1]),
  });

  it('the logged factor of each layer is the one the logged jobs before it give', () => {
    const r = checkMissLog(log(fB), spec);
    expect(r.layers).toBe(2);
    expect(r.disagree).toBe(0);
    expect(r.factorMismatches).toBe(0);
    expect(r.factorMaxDiff).toBeLessThan(1e-6);
  });

  it('a factor the jobs do not give is a mismatch (the check can fail)', () => {
    const r = checkMissLog(log(1), spec);
    expect(r.factorMismatches).toBe(1);
    expect(r.factorMaxDiff).toBeCloseTo(fB - 1, 6);
  });

  it('with the correction off the factor must stay at 1', () => {
    expect(checkMissLog(log(1), { ...spec, correctCpu: false }).factorMismatches).toBe(0);
    expect(checkMissLog(log(fB), { ...spec, correctCpu: false }).factorMismatches).toBe(1);
  });
});
