/** The predictor GPU-vs-CPU report reads the bench's result as measured and names the cheapest variant. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { predictorGpuTable } from '../../src/bench/predictor-gpu-report.js';

describe('predictor-gpu-report', () => {
  it('tables median (p90) per row count and picks the cheapest per row', () => {
    const doc = {
      benchmark: 'predictor_gpu_bench', device: { name: 'X' }, host_threads: 4, model: { width: 10, hidden: [8], budget: 2 },
      check: { pass: true, rows: 1, ids: 2, max_abs_logit_diff: 0 },
      results: [
        { variant: 'cpu_serial', rows: 1, median_us: 5, p90_us: 6 },
        { variant: 'gpu_idle', rows: 1, median_us: 40, p90_us: 41 },
        { variant: 'cpu_serial', rows: 16, median_us: 90, p90_us: 95 },
        { variant: 'gpu_idle', rows: 16, median_us: 50, p90_us: 55 },
      ],
    };
    const t = predictorGpuTable(doc).split('\n');
    expect(t[0]).toBe('| rows | cpu_serial | gpu_idle | cheapest |');
    expect(t[2]).toBe('| 1 | 5.0 (6.0) | 40.0 (41.0) | cpu_serial |');
    expect(t[3]).toBe('| 16 | 90.0 (95.0) | 50.0 (55.0) | gpu_idle |');
  });
  it('the committed H200 table is the one generated from its result', () => {
    const dir = join(import.meta.dirname, '../../../reports/bench/predictor-gpu-h200-2026-12-04');
    const doc = JSON.parse(readFileSync(join(dir, 'predictor-gpu-first-kernel.json'), 'utf8'));
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain(predictorGpuTable(doc));
    expect(doc.check.pass).toBe(true);
  });
});
