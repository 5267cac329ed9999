/** The report's current-runtime section: best points per dtype, simulated errors counted against 10%. */
import { describe, expect, it } from 'vitest';
import { gridAgreement, gridAgreementGap, latestRunSection, latestRunSummary, type LatestRun } from '../../src/report/latest-run-section.js';
import type { OffloadPoint } from '../../src/report/quant-sources.js';

const pt = (dtype: string, batch: number, ms: number, simMs: number | null): OffloadPoint => ({
  file: 'f/bench.json', dtype, expertBytes: 1, cache: 19, policy: 'lru', miss: 'fetch', prefetch: 'none', batch, prompt: 128, newTokens: 32,
  ms: { mean: ms, p50: ms, p99: ms, n: 31 } as OffloadPoint['ms'], tokS: (batch * 1e3) / ms, prefillMs: 1, hitRate: 0.5, simMs, missesPerStep: 1, gbMoved: 1, routing: 'r', prefetchStats: null,
});

describe('latest run', () => {
  const run: LatestRun = { dir: 'reports/bench/x', files: ['reports/bench/x/a/bench.json'], device: 'NVIDIA H200', points: [pt('bf16', 1, 20, 21), pt('bf16', 1, 18, 30), pt('bf16', 16, 100, 100), pt('int4', 1, 3.5, 3.6), pt('int4', 16, 10, null)], grids: [], dtypeEager: null };
  it('summarises the best batch-1 ms/token and batch-16 tokens/s per dtype', () => {
    const s = latestRunSummary(run)!;
    expect(s.en).toContain('(bf16 / int4) 18.00 / 3.50 ms per output token');
    expect(s.en).toContain('best batch 16 160.0 / 1600.0 tokens/s');
    expect(latestRunSummary(null)).toBeNull();
  });
  it('counts the simulated points within 10% and tables every point', () => {
    const md = latestRunSection(run).join('\n');
    expect(md).toContain('within 10% at 3 of 4 points');
    expect(md).toContain('| bf16 | 19 | lru | fetch | 1 | 18.00 | 55.6 | 50.0% | 1.00 | 30.00 | +66.7% |');
    expect(md).toContain('![a](bench/x/a/bench.png)');
    expect(latestRunSection(null)).toEqual([]);
  });
  it('summarises the grids per configuration and names the ones outside 10%', () => {
    const grid = { dir: 'reports/bench/g', files: ['reports/bench/g/a/bench.json'], device: 'NVIDIA H200', points: [pt('bf16', 1, 10, 10.5), pt('bf16', 4, 10, 11.5), { ...pt('bf16', 1, 10, 9.5), miss: 'hybrid' }, pt('int8', 1, 10, null)] };
    const withGrid = { ...run, grids: [grid] };
    expect(gridAgreement(withGrid)).toEqual([
      { key: 'bf16 19 slots, fetch, prefetch none', dir: 'reports/bench/g', points: 2, within: 1, largest: expect.closeTo(0.15, 9) },
      { key: 'bf16 19 slots, hybrid, prefetch none', dir: 'reports/bench/g', points: 1, within: 1, largest: expect.closeTo(0.05, 9) },
    ]);
    expect(gridAgreementGap(withGrid)).toContain('2 of 3 points are; the configurations with points outside: bf16 19 slots, fetch, prefetch none: 1 of 2, to 15.0%.');
    expect(gridAgreementGap({ ...withGrid, grids: [{ ...grid, points: grid.points.slice(0, 1) }] })).toBeNull();
    expect(gridAgreementGap(run)).toBeNull();
    expect(latestRunSection(withGrid).join('\n')).toContain('| bf16 19 slots, fetch, prefetch none | 2 | 1 | 15.0% | `reports/bench/g/` |');
  });
  it('counts the quantized points re-simulated with the per-dtype eager profile', () => {
    const dtypeEager = { profile: 'sim/calibration/p.json', files: ['reports/bench/x/sim-vs-measured-dtype-eager.json'], rows: [{ dtype: 'int8', error: 0.05 }, { dtype: 'int8', error: -0.12 }, { dtype: 'int4', error: 0.09 }] };
    const md = latestRunSection({ ...run, dtypeEager }).join('\n');
    expect(md).toContain('within 10% at int8 1 of 2 (largest 12.0%), int4 1 of 1 (largest 9.0%)');
    expect(md).toContain('`sim/calibration/p.json`');
    expect(latestRunSection(run).join('\n')).not.toContain('eager-launch overhead');
  });
});
