/** The report's current-runtime section: best points per dtype, simulated errors counted against 10%. */
import { describe, expect, it } from 'vitest';
import { latestRunSection, latestRunSummary, type LatestRun } from '../../src/report/latest-run-section.js';
import type { OffloadPoint } from '../../src/report/quant-sources.js';

const pt = (dtype: string, batch: number, ms: number, simMs: number | null): OffloadPoint => ({
  file: 'f/bench.json', dtype, expertBytes: 1, cache: 19, policy: 'lru', miss: 'fetch', prefetch: 'none', batch, prompt: 128, newTokens: 32,
  ms: { mean: ms, p50: ms, p99: ms, n: 31 } as OffloadPoint['ms'], tokS: (batch * 1e3) / ms, prefillMs: 1, hitRate: 0.5, simMs, missesPerStep: 1, gbMoved: 1, routing: 'r', prefetchStats: null,
});

describe('latest run', () => {
  const run: LatestRun = { dir: 'reports/bench/x', files: ['reports/bench/x/a/bench.json'], device: 'NVIDIA H200', points: [pt('bf16', 1, 20, 21), pt('bf16', 1, 18, 30), pt('bf16', 16, 100, 100), pt('int4', 1, 3.5, 3.6), pt('int4', 16, 10, null)] };
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
});
