/**
 * The miss rule (sim/src/cost/miss-rule.ts) on the hand-worked cases that native/tests/offload/miss_tests.cpp
 * holds the C++ rule to, so both languages' rules give the same numbers.
 */
import { describe, expect, it } from 'vitest';
import { interpolate } from '../src/cost/cost-model.js';
import { decideMisses, type MissDecision } from '../src/cost/miss-rule.js';

const costs = {
  copyMs: 0.3,
  gpuMs: (n: number) => interpolate([[1, 0.02], [16, 0.07]], n),
  cpuMs: (n: number) => interpolate([[1, 0.4], [4, 0.55]], n) + 0.01,
};

describe('miss rule', () => {
  it('hybrid, 2 workers: list scheduling in order (the C++ test case)', () => {
    const cpuFree = [0, 0];
    const out: MissDecision[] = [];
    const backlog = decideMisses('hybrid', costs, 0, cpuFree, [1, 1, 1, 4], out);
    expect(out.map((d) => d.onCpu)).toEqual([false, true, true, false]);
    expect(out[3].viaCopyMs).toBeCloseTo(0.63, 12);
    expect(out[3].viaCpuMs).toBeCloseTo(0.97, 12);
    expect(backlog).toBeCloseTo(0.6, 12);
    expect(cpuFree[0]).toBeCloseTo(0.41, 12);
    expect(cpuFree[1]).toBeCloseTo(0.41, 12);
  });
  it('a busy copy engine sends the first miss to the CPU; fetch never, cpu always', () => {
    const out: MissDecision[] = [];
    decideMisses('hybrid', costs, 1, [0, 0], [1], out);
    expect(out[0].onCpu).toBe(true);
    decideMisses('fetch', costs, 5, [0], [1, 1], out);
    expect(out.map((d) => d.onCpu)).toEqual([false, false]);
    decideMisses('cpu', costs, 0, [0], [1, 1], out);
    expect(out.map((d) => d.onCpu)).toEqual([true, true]);
    expect(() => decideMisses('hybrid', costs, 0, [], [1], out)).toThrow(/at least one CPU worker/);
  });
});
