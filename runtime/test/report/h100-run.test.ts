/** The report's H100 section: the must-show table joined to the re-simulated rows, errors counted against 10%. */
import { describe, expect, it } from 'vitest';
import { h100AgreementGap, h100RunSection, type H100Run } from '../../src/report/h100-run-section.js';
import type { OffloadPoint } from '../../src/report/quant-sources.js';
import type { SimVsMeasuredRow } from '../../src/bench/sim-vs-bench.js';

const pt = (dtype: string, miss: string, batch: number, ms: number): OffloadPoint => ({
  file: 'reports/bench/h/call1/must-show/bench.json', dtype, expertBytes: 1, cache: 38, policy: 'lru', miss, prefetch: 'none', batch, prompt: 128, newTokens: 16,
  ms: { mean: ms, p50: ms, p99: ms, n: 45 } as OffloadPoint['ms'], tokS: (batch * 1e3) / ms, prefillMs: 1, hitRate: 0.8, simMs: null, missesPerStep: 1, gbMoved: 2, routing: 'r', prefetchStats: null,
});
const row = (dtype: string, miss: string, batch: number, prompt: number, measuredMs: number, simulatedMs: number): SimVsMeasuredRow => ({
  bench: 'b', dtype, cache: 38, policy: 'lru', miss, fill: null, prefetch: 'none', batch, prompt, measuredMs, simulatedMs, error: simulatedMs / measuredMs - 1,
  layerHeadMs: { measured: null, simulated: 0 }, layerTailMs: { measured: null, simulated: 0 },
} as SimVsMeasuredRow);

describe('H100 run section', () => {
  const run: H100Run = {
    dir: 'reports/bench/h',
    how: 'One call',
    mustShow: { file: 'reports/bench/h/call1/must-show/bench.json', device: 'NVIDIA H100 80GB HBM3', points: [pt('int8', 'fetch', 1, 10), pt('int8', 'hybrid', 16, 40)] },
    sims: [
      { file: 'reports/bench/h/call1/sim-vs-measured.json', profile: 'p1.json', rows: [row('int8', 'fetch', 1, 128, 10, 10.5), row('int8', 'hybrid', 16, 128, 40, 32), row('int8', 'hybrid', 4, 256, 20, 19)] },
      { file: 'reports/bench/h/bf16.json', profile: 'p2.json', rows: [row('bf16', 'cpu', 8, 512, 100, 95)] },
    ],
  };
  it('tables the must-show points with their re-simulated figures and counts every file\'s points', () => {
    const md = h100RunSection(run).join('\n');
    expect(md).toContain('| int8 | 38 | hybrid | 16 | 40.00 | 400.0 | 80.0% | 2.00 | 32.00 | -20.0% |');
    expect(md).toContain('within 10% at 3 of 4 points');
    expect(md).toContain('| int8 38 slots, hybrid, prefetch none | 2 | 1 | -20.0% (batch 16 prompt 128) | `p1.json` |');
    expect(md).toContain('| bf16 38 slots, cpu, prefetch none | 1 | 1 | -5.0% (batch 8 prompt 512) | `p2.json` |');
    expect(md).toContain('### A second card: NVIDIA H100 80GB HBM3');
    expect(md).toContain('One call (NVIDIA H100 80GB HBM3, README in the folder)');
    // a later (older) run opens no second card section
    expect(h100RunSection(run, false).join('\n')).not.toContain('### A second card');
    expect(h100RunSection(run, false).join('\n')).toContain('#### `reports/bench/h/`');
    expect(h100RunSection(null)).toEqual([]);
  });
  it('names the configurations with points outside 10%, and says nothing when there are none', () => {
    expect(h100AgreementGap(run)).toBe('On the H100 (`reports/bench/h/`) the simulator is within 10% at 3 of 4 points; outside at int8 38 slots, hybrid, prefetch none (1).');
    expect(h100AgreementGap({ ...run, sims: [{ ...run.sims[1] }] })).toBeNull();
    expect(h100AgreementGap(null)).toBeNull();
  });
});
