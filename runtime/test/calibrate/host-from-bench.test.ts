/** The host section taken from offload benches (all-resident fetch points only, means by batch, negatives at 0), and the resident-step excess. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { cpuPathCurvesFromBenches, hostCurvesFromBenches, residentCurveFromBenches, withBenchCpuPath, withBenchHost } from '../../src/calibrate/host-from-bench.js';
import { benchLanes, predictBenchPoint } from '../../src/bench/sim-prediction.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { tempDir } from '../../../core/test/helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

type P = { miss: string; prefetch?: string; batch: number; hitRate: number; forwardMs: number; hostLayerMs: number; stepOverheadMs: number };
const pt = (batch: number, hitRate: number, step: number, layer = 0.01, extra: Partial<P> = {}): P => ({ miss: 'fetch', prefetch: 'none', batch, hitRate, forwardMs: 5, hostLayerMs: layer, stepOverheadMs: step, ...extra });

function bench(grid: P[]): string {
  const path = join(t.path, `b${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ grid }));
  return path;
}

describe('hostCurvesFromBenches', () => {
  it('means by batch over the all-resident fetch points without prefetch; the others left out', () => {
    const b = bench([
      pt(1, 0.96, 0.5, 0.004), pt(1, 0.99, 0.7, 0.006), // kept: mean step 0.6, layer 0.005
      pt(16, 1, 3.6), // kept
      pt(1, 0.55, -3), // a cache too small: its warm-up started cold, left out
      pt(16, 1, 9, 0.01, { prefetch: 'oracle' }), // prefetched hits are not resident experts
      pt(16, 1, 9, 0.01, { miss: 'hybrid' }), // CPU experts: not the fetch path
      pt(4, 1, 9, 0.01, { forwardMs: 0 }), // no forward counter
    ]);
    const r = hostCurvesFromBenches([b]);
    expect(r.points).toBe(3);
    expect(r.stepMs).toEqual([[1, 0.6], [16, 3.6]]);
    expect(r.layerMs).toEqual([[1, 0.005], [16, 0.01]]);
  });
  it('holds a negative mean at 0', () => {
    expect(hostCurvesFromBenches([bench([pt(1, 1, -0.2)])]).stepMs).toEqual([[1, 0]]);
  });
  it('sets host, keeps the rest of the base profile, and says where it came from', () => {
    const b = bench([pt(1, 1, 0.5)]);
    const p = withBenchHost(defaultCalibration(), [b]);
    expect(p.host).toEqual({ layerMs: [[1, 0.01]], stepMs: [[1, 0.5]] });
    expect(p.gpu).toEqual(defaultCalibration().gpu);
    expect(p.sources?.host).toContain(b);
  });
  it('refuses benches without an all-resident fetch point', () => {
    expect(() => hostCurvesFromBenches([bench([pt(1, 0.5, 1)])])).toThrow(/no fetch point with a hit rate of at least 95%/);
    expect(() => hostCurvesFromBenches([bench({} as unknown as P[])])).toThrow(/not a bench.json/);
  });
});

describe('residentCurveFromBenches', () => {
  const sample = fileURLToPath(new URL('../../../traces/samples/synthetic-zipf-sticky.arrow', import.meta.url));
  const replays = [{ path: sample, corpus: toSequences(readTrace(sample)) }];
  const base = defaultCalibration();
  const shape = { batch: 2, prompt: 16, newTokens: 6, warmup: 1, repeats: 1 };
  const config = { policy: 'static' as const, cacheSize: 64, prefetch: 'none' as const, miss: 'fetch' as const, calibration: base, residentSteps: true };
  const sim = predictBenchPoint(benchLanes(replays, shape), shape, config);
  const point = (extra: Record<string, unknown> = {}) => ({
    batch: 2, prompt: 16, newTokens: 6, repeats: 1, cache: 64, policy: 'static', miss: 'fetch', expertDtype: 'bf16',
    msPerToken: { mean: sim.msPerToken.mean + 26 * 0.05, n: sim.residentSteps }, residentSteps: sim.residentSteps, residentStepsOn: true, ...extra,
  });
  const residentBench = (grid: unknown[]) => {
    const path = join(t.path, `r${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify({ options: { warmup: 1 }, grid }));
    return path;
  };

  it('re-simulates each all-resident point on its lanes and keeps the excess per MoE layer', () => {
    expect(sim.residentSteps).toBeGreaterThan(0);
    const b = residentBench([point(), point({ residentStepsOn: false }), point({ residentSteps: 0 })]);
    const r = residentCurveFromBenches(base, [b], 26, replays);
    expect(r.points).toBe(1);
    expect(r.curve[0][0]).toBe(2);
    expect(r.curve[0][1]).toBeCloseTo(new Costs(base).residentLayerOverhead(2) + 0.05, 6);
  });
  it('holds a point faster than simulated at 0 and refuses routing that does not reproduce the resident steps', () => {
    const fast = residentBench([point({ msPerToken: { mean: sim.msPerToken.mean - 26, n: sim.residentSteps } })]);
    expect(residentCurveFromBenches(base, [fast], 26, replays).curve).toEqual([[2, 0]]);
    const other = residentBench([point({ msPerToken: { mean: 5, n: sim.residentSteps + 1 }, residentSteps: sim.residentSteps + 1 })]);
    expect(() => residentCurveFromBenches(base, [other], 26, replays)).toThrow(/--traces must be the bench's routing/);
    expect(() => residentCurveFromBenches(base, [residentBench([])], 26, replays)).toThrow(/no bench point whose every timed decode step/);
  });
});

describe('cpuPathCurvesFromBenches', () => {
  const q = (miss: string, batch: number, forwardMs: number, stepOverheadMs: number, extra: Record<string, unknown> = {}) =>
    ({ miss, prefetch: 'none', batch, prompt: 128, expertDtype: 'int4', cache: 64, policy: 'lru', hits: 100, forwardMs, stepOverheadMs, cpuExperts: 0, fillCopies: 0, residentSteps: 0, ...extra });
  const write = (grid: unknown[]) => {
    const path = join(t.path, `c${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify({ grid }));
    return path;
  };
  it('pairs a cpu/hybrid point without CPU work with the same point fetched: forward difference per MoE layer, step overhead difference', () => {
    const b = write([
      q('fetch', 1, 5.0, 0.2), q('hybrid', 1, 5.52, 0.28), // kept: (5.52 - 5) / 26 = 0.02 per layer, 0.08 per step
      q('fetch', 16, 10, 0.4), q('hybrid', 16, 12, 0.5, { cpuExperts: 3 }), // CPU experts ran: their time is not the path's
      q('hybrid', 16, 11, 0.5, { hits: 99 }), // other hits: other GPU work
      q('cpu', 16, 11, 0.5, { residentSteps: 4 }), // resident steps have no per-layer host trip
      q('hybrid', 4, 8, 0.3), // no fetched twin
    ]);
    const r = cpuPathCurvesFromBenches([b], 26);
    expect(r.pairs).toBe(1);
    expect(r.layerMs).toEqual([[1, 0.02]]);
    expect(r.stepMs).toEqual([[1, 0.08]]);
  });
  it('holds a faster cpu-path point at 0, adds the curves to the base host section, and refuses benches without a pair or a host section', () => {
    expect(cpuPathCurvesFromBenches([write([q('fetch', 1, 5, 0.2), q('cpu', 1, 4.9, 0.1)])], 26).layerMs).toEqual([[1, 0]]);
    const b = write([q('fetch', 1, 5.0, 0.2), q('hybrid', 1, 5.52, 0.28)]);
    const base = withBenchHost(defaultCalibration(), [bench([pt(1, 1, 0.5)])]);
    const p = withBenchCpuPath(base, [b], 26);
    expect(p.host).toEqual({ layerMs: [[1, 0.01]], stepMs: [[1, 0.5]], cpuPathLayerMs: [[1, 0.02]], cpuPathStepMs: [[1, 0.08]] });
    expect(p.sources?.['host.cpuPath']).toContain(b);
    expect(() => withBenchCpuPath(defaultCalibration(), [b], 26)).toThrow(/has no host section/);
    expect(() => cpuPathCurvesFromBenches([write([q('hybrid', 1, 5, 0.2)])], 26)).toThrow(/no cpu or hybrid point without CPU experts beside the same point fetched/);
  });
});
