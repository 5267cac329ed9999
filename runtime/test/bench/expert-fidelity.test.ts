/**
 * The per-expert error report (expert-fidelity.ts, quant-check.ts): the table, the CDF chart's data, and
 * a CPU-only check (logits comparison not run) being neither passed nor failed.
 */
import { describe, expect, it } from 'vitest';
import { expertErrorChartSpec, expertErrorTable, type ExpertErrors } from '../../src/bench/expert-fidelity.js';
import { QUANT_THRESHOLDS, quantCheckTable, distribution, type QuantCheck } from '../../src/bench/quant-check.js';
import { failedChecks } from '../../src/bench/checks.js';
import type { BenchDocument } from '../../src/bench/run-bench.js';

const entry = (dtype: string, group: number, errors: number[], activations: 'random' | 'run' = 'random'): ExpertErrors => ({ dtype, group, activations, distribution: distribution(errors, 1, errors.length, 16), note: null, errors, layerIds: [1] });

describe('per-expert error report', () => {
  const i8 = entry('int8', 64, [0.004, 0.002, 0.003, 0.001]);
  const i4 = entry('int4', 128, [0.05, 0.02]);

  it('table: one row per dtype (int4 names its group) and activations, nearest-rank figures, the note where a distribution is absent', () => {
    const t = expertErrorTable([i8, entry('int8', 64, [0.01, 0.03], 'run'), i4, { dtype: 'int4', group: 64, distribution: null, note: 'no quantFidelity' }]);
    expect(t).toMatch(/\| int8 \| random \| 1 x 4 \| 16 \| 1\.00e-3 \| 2\.00e-3 \| 4\.00e-3 \| 4\.00e-3 \| 4\.00e-3 \|/);
    expect(t).toMatch(/\| int8 \| run \| 1 x 2 \| 16 \| 1\.00e-2 \| 1\.00e-2 \| 3\.00e-2 \|/);
    expect(t).toMatch(/\| int4 g128 \| random \| 1 x 2 \| 16 \| 2\.00e-2 \| 2\.00e-2 \| 5\.00e-2 \| 5\.00e-2 \| 5\.00e-2 \|/);
    // files written before the activations field: random rows
    expect(t).toMatch(/\| int4 g64 \| random \| - \| - \| no quantFidelity \|/);
  });

  it('chart: a CDF per dtype, sorted errors with fractions k/n ending at 1; none without errors', () => {
    const spec = expertErrorChartSpec([i8, i4], 't') as unknown as { data: { values: Array<{ dtype: string; error: number; fraction: number }> } };
    const int8 = spec.data.values.filter((v) => v.dtype === 'int8');
    expect(int8.map((v) => v.error)).toEqual([0.001, 0.002, 0.003, 0.004]);
    expect(int8.map((v) => v.fraction)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(spec.data.values.filter((v) => v.dtype === 'int4 g128').map((v) => v.fraction)).toEqual([0.5, 1]);
    const both = expertErrorChartSpec([i8, entry('int8', 64, [0.01, 0.03], 'run')], 't') as unknown as { data: { values: Array<{ activations: string; error: number }> }; encoding: { strokeDash: { field: string } } };
    expect(both.data.values.filter((v) => v.activations === 'run').map((v) => v.error)).toEqual([0.01, 0.03]);
    expect(both.encoding.strokeDash.field).toBe('activations');
    expect(expertErrorChartSpec([{ dtype: 'int8', group: 64, distribution: null, note: 'x' }], 't')).toBeNull();
  });

  it('CPU only: the logits part is said not to have run, and the run neither passes nor fails', () => {
    const q: QuantCheck = { thresholds: QUANT_THRESHOLDS, sequences: 0, length: 0, newTokens: 0, cache: 0, cases: [], expertErrors: [i8], expertRows: 16, expertHost: 'AMD EPYC x 2', logitsNote: 'logits comparison not run: it needs --device cuda', pass: null };
    expect(failedChecks({ quantCheck: q } as unknown as BenchDocument)).toEqual([]);
    const t = quantCheckTable(q);
    expect(t).toMatch(/logits comparison not run: it needs --device cuda/);
    expect(t).not.toMatch(/FAIL|\| path \|/);
    expect(t).toMatch(/16 rows per layer, activations random: seeded random rows .* CPU kernels on AMD EPYC x 2/);
    expect(failedChecks({ quantCheck: { ...q, pass: false } } as unknown as BenchDocument)).toHaveLength(1);
  });
});
