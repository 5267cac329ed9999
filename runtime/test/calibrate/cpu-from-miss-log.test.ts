/** The CPU job curve taken from logged CPU jobs: means by token count, fetched rows and thin counts left out. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cpuCurveFromLogs, withRuntimeCpuCurve } from '../../src/calibrate/cpu-from-miss-log.js';
import { defaultCalibration } from '../../../sim/src/cost/calibration.js';
import { tempDir } from '../../../core/test/helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());

function bench(rows: Array<[tokens: number, onCpu: number, ms: number]>): string {
  const cols = { tokens: rows.map((r) => r[0]), onCpu: rows.map((r) => r[1]), cpuMeasuredMs: rows.map((r) => r[2]) };
  const path = join(t.path, `b${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ grid: [{ missLogSample: { rows: rows.length, columns: cols } }, { missLogSample: null }] }));
  return path;
}

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
    expect(() => cpuCurveFromLogs([bench([[1, 1, 0.5]])])).toThrow(/no token count has 20 logged CPU jobs/);
  });
});
