/** The CPU job curves taken from logged CPU jobs: means by token count per expert dtype, fetched rows and thin counts left out. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cpuCurveFromLogs, withRuntimeCpuCurve } from '../../src/calibrate/cpu-from-miss-log.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { tempDir } from '../../../core/test/helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

type Row = [tokens: number, onCpu: number, ms: number];

function point(rows: Row[], expertDtype?: string) {
  const cols = { tokens: rows.map((r) => r[0]), onCpu: rows.map((r) => r[1]), cpuMeasuredMs: rows.map((r) => r[2]) };
  return { ...(expertDtype ? { expertDtype } : {}), missLogSample: { rows: rows.length, columns: cols } };
}

function benchOf(points: object[]): string {
  const path = join(t.path, `b${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ grid: [...points, { missLogSample: null }] }));
  return path;
}

const bench = (rows: Row[]) => benchOf([point(rows)]);
const jobs = (n: number, ms: number): Row[] => Array.from({ length: n }, () => [1, 1, ms]);

describe('cpuCurveFromLogs', () => {
  it('means by token count; fetched rows and counts below the minimum left out', () => {
    const rows: Array<[number, number, number]> = [];
    for (let i = 0; i < 21; i++) rows.push([1, 1, 0.4 + i * 0.01]); // mean 0.5
    for (let i = 0; i < 20; i++) rows.push([2, 1, i < 10 ? 0.6 : 0.8]); // mean 0.7
    for (let i = 0; i < 5; i++) rows.push([3, 1, 9]); // too few
    for (let i = 0; i < 30; i++) rows.push([1, 0, -1]); // fetched: no job
    const { curve, jobs } = cpuCurveFromLogs([bench(rows)]);
    expect(curve).toEqual([[1, 0.5], [2, 0.7]]);
    expect(jobs).toBe(46);
  });
  it('sets cpu.jobMs, keeps the rule\'s cpu.expertMs and the rest of the base profile, and says where the curve came from', () => {
    const rows: Array<[number, number, number]> = Array.from({ length: 20 }, () => [1, 1, 0.5]);
    const p = withRuntimeCpuCurve(defaultCalibration(), [bench(rows)]);
    expect(p.cpu.jobMs).toEqual([[1, 0.5]]);
    expect(p.cpu.expertMs).toEqual(defaultCalibration().cpu.expertMs);
    expect(p.transfer).toEqual(defaultCalibration().transfer);
    expect(p.sources?.['cpu.jobMs']).toMatch(/20 CPU expert jobs logged by the CUDA runtime/);
  });
  it('refuses logs without enough CPU jobs', () => {
    expect(cpuCurveFromLogs([bench([[1, 1, 0.5]])]).curve).toEqual([]);
    expect(() => withRuntimeCpuCurve(defaultCalibration(), [bench([[1, 1, 0.5]])])).toThrow(/no expert dtype has a token count with 20 logged CPU jobs/);
  });
  it("keeps each dtype's jobs apart: bf16's in cpu.jobMs, int8's in byExpertDtype.int8.cpu.jobMs", () => {
    const base = structuredClone(defaultCalibration());
    base.byExpertDtype = { int8: { expertBytes: 8_670_208, gpu: { expertMs: [[1, 0.012]] }, cpu: { expertMs: [[1, 0.3]], workers: 2 } } };
    const path = benchOf([point(jobs(20, 0.5), 'bf16'), point(jobs(25, 0.36), 'int8'), point(jobs(3, 0.9), 'int4')]);
    expect(cpuCurveFromLogs([path], 'int8').curve).toEqual([[1, 0.36]]);
    const p = withRuntimeCpuCurve(base, [path]);
    expect(p.cpu.jobMs).toEqual([[1, 0.5]]);
    expect(p.byExpertDtype?.int8?.cpu).toEqual({ expertMs: [[1, 0.3]], workers: 2, jobMs: [[1, 0.36]] });
    expect(p.byExpertDtype?.int4).toBeUndefined(); // 3 jobs: too few, int4 keeps bf16's scaled
    expect(p.sources?.['byExpertDtype.int8.cpu.jobMs']).toMatch(/25 CPU expert jobs/);
    expect(base.byExpertDtype.int8!.cpu.jobMs).toBeUndefined(); // the base is not changed
    // int8 jobs with no int8 entry to hold them: refused by name
    expect(() => withRuntimeCpuCurve(defaultCalibration(), [benchOf([point(jobs(20, 0.36), 'int8')])])).toThrow(/no byExpertDtype\.int8 entry/);
  });
});
