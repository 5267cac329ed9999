/** The host section taken from offload benches: all-resident fetch points only, means by batch, negatives at 0. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostCurvesFromBenches, withBenchHost } from '../../src/calibrate/host-from-bench.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
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
