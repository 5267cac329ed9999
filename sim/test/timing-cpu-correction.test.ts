/**
 * --cpu-estimate (cost/cpu-correction.ts): the miss rule's CPU times are the profile's scaled by the run's
 * correction factor, an exponential mean of finished jobs' measured / profile time. The arithmetic is
 * checked with the native twin's hand-computed figures (native/tests/offload/miss_tests.cpp), and a hybrid
 * run whose CPU jobs last 5x the profile's estimate is checked against a reference written out here: a
 * plain loop over the steps with the rule and the mean spelled out.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../src/index.js';
import { CpuCorrection, DEFAULT_CPU_ESTIMATE } from '../src/cost/cpu-correction.js';
import type { CostModel } from '../src/cost/calibration.js';
import { handCorpus, roundCosts } from './helpers.js';

describe('CpuCorrection', () => {
  it('moves 1/32 of the way to each job\'s ratio, clamped to [0.25, 4], ignoring jobs without both times', () => {
    const c = new CpuCorrection(true);
    c.observe(0.6, 0.4);
    expect(c.factor).toBeCloseTo(1.015625, 12);
    c.observe(10, 0.4);
    expect(c.factor).toBeCloseTo(1.015625 + (4 - 1.015625) / 32, 12);
    const before = c.factor;
    c.observe(0.5, 0);
    c.observe(-1, 0.4);
    expect(c.factor).toBe(before);
    c.observe(0.0001, 0.4); // ratio 0.00025, clamped to 0.25
    expect(c.factor).toBeCloseTo(before + (0.25 - before) / 32, 12);
  });

  it('off (--cpu-estimate profile, the default until a device run has measured the correction) stays at 1', () => {
    const c = new CpuCorrection(false);
    c.observe(0.8, 0.4);
    expect(c.factor).toBe(1);
    expect(DEFAULT_CPU_ESTIMATE).toBe('profile');
  });
});

describe('the simulated hybrid rule with the correction', () => {
  // One MoE layer, top-2, 20 decode steps, every expert used once (no hits). Copy 1 ms + GPU 0.5 = 1.5 ms;
  // the profile says a CPU expert takes 0.4 + 0.1 (activations), the jobs take 2.0 (ratio 5, clamped to 4).
  const S = 20;
  const corpus = handCorpus([Array.from({ length: S }, (_, t) => [[2 * t, 2 * t + 1]])], 64);
  const base = roundCosts('cpu-correction', 1);
  const model: CostModel = { ...base, gpu: { ...base.gpu, expertMs: [[1, 0.5]] }, cpu: { workers: 1, expertMs: [[1, 0.4]], activationCopyMs: 0.1, jobMs: [[1, 2.0]] } };
  const run = (cpuEstimate: 'measured' | 'profile') =>
    runSimulation(corpus, { policy: 'lru', cacheSize: 1, batch: 1, prefetch: 'none', miss: 'hybrid', cpuFill: false, cpuAdmit: false, calibration: model, cpuEstimate });

  // The reference: each step's two misses in order on one worker, the copy engine idle at the layer's start.
  function reference(correct: boolean): { cpuExperts: number; factor: number } {
    let f = 1;
    let cpuExperts = 0;
    for (let s = 0; s < S; s++) {
      const cpu = f * 0.4 + 0.1;
      const first = cpu < 1.5;
      const second = first ? 2 * cpu < 1.5 : cpu < 1 + 1.5;
      const jobs = Number(first) + Number(second);
      cpuExperts += jobs;
      for (let j = 0; j < jobs && correct; j++) f += (Math.min(4, 2.0 / 0.4) - f) / 32;
    }
    return { cpuExperts, factor: f };
  }

  it('profile: the rule keeps deciding with 0.5 ms and puts both misses of every step on the CPU', () => {
    const r = run('profile');
    expect(r.cpuExperts).toBe(2 * S);
    expect(r.cpuExperts).toBe(reference(false).cpuExperts);
    expect(r.cpuFactor).toBe(1);
  });

  it('measured: the factor follows the slow jobs, and the rule then fetches the second miss of a step', () => {
    const r = run('measured');
    const want = reference(true);
    expect(r.cpuExperts).toBe(want.cpuExperts);
    expect(r.cpuExperts).toBeLessThan(2 * S);
    expect(r.cpuFactor).toBeCloseTo(want.factor, 10);
    expect(r.cpuFactor).toBeGreaterThan(1.625); // past the point where two CPU jobs lose to a copy
  });
});
