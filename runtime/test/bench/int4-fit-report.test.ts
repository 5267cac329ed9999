/** The int4 quantizer comparison report reads int4_fit_bench's results as measured. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { int4BitsPerWeight, int4FitTable, type Int4FitResult } from '../../src/bench/int4-fit-report.js';

const doc = (group: number, fits: Int4FitResult['fits']): Int4FitResult => ({
  bench: 'int4_fit_bench', weights: 'w', activations: 'a', hidden: 8, dFf: 4, group, experts: 2, rows: 1, fits,
});

describe('int4-fit-report', () => {
  it('one row per group and quantizer: errors as percentages, the median and the largest of the experts', () => {
    const t = int4FitTable([
      doc(64, [
        { fit: 'nearest', weightError: 0.0896, msPerExpert: 35.2, outputErrors: [0.16, 0.158, 0.161] },
        { fit: 'search', weightError: 0.0831, msPerExpert: 177, outputErrors: [0.146, 0.145, 0.148] },
      ]),
    ]).split('\n');
    expect(t[2]).toBe('| 64 | 4.5 | nearest | 8.960% | 16.00% | 16.10% | 16.10% | 35 |');
    expect(t[3]).toBe('| 64 | 4.5 | search | 8.310% | 14.60% | 14.80% | 14.80% | 177 |');
    expect(int4BitsPerWeight(32)).toBe(5);
  });
  it('the committed table is the one generated from its results, and the search beats nearest at every group', () => {
    const dir = join(import.meta.dirname, '../../../reports/bench/int4-fit-cpu-2026-12-05');
    const docs = [64, 32, 128].map((g) => JSON.parse(readFileSync(join(dir, `int4-fit-g${g}.json`), 'utf8')) as Int4FitResult);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain(int4FitTable(docs));
    for (const d of docs) {
      const [nearest, search] = ['nearest', 'search'].map((f) => d.fits.find((x) => x.fit === f)!);
      expect(search.weightError).toBeLessThan(nearest.weightError);
      expect(search.outputErrors.every((e, i) => e < nearest.outputErrors[i])).toBe(true);
    }
  });
});
