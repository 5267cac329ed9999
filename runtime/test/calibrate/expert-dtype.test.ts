/**
 * calibrate --expert-dtype (issue 13, runtime/src/calibrate/measure-dtype.ts, run.ts): a byExpertDtype entry
 * per quantized format, written from the calibrator's own samples, valid for the simulator; --device cpu
 * takes the GPU curve from the base (scaled by bytes when the base has no entry, and the source says so);
 * a native calibrator that does not report the dtype (a build before the quantized kernels) is refused.
 * The native calibrate is replaced by a fake whose times are known, so the test checks the plumbing, not a machine.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { calibrationProblems, parseCalibration } from '../../../sim/src/cost/calibration.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import { runCalibrate } from '../../src/calibrate/run.js';
import type { NativeCalibrate } from '../../src/calibrate/native.js';
import { readFileSync } from 'node:fs';
import { repoRoot, tempDir } from '../../../core/test/helpers.js';

const base = join(repoRoot, 'sim', 'calibration', 'h200-measured.json');
const tmp = tempDir('calibrate-dtype-');
afterAll(() => tmp.cleanup());

// ms per expert = tokens x 0.01 x factor (bf16 1, int8 0.5, int4 0.25)
const FACTOR: Record<string, number> = { bf16: 1, int8: 0.5, int4: 0.25 };
function fake(reportsDtype: boolean): NativeCalibrate {
  class Cpu {
    constructor(_c: unknown, _pool: number, _isa: string, private dtype = 'bf16') {}
    isa() { return 'fake'; }
    expertDtype = reportsDtype ? () => this.dtype : undefined;
    expertMs(tokens: number, _t: number, _w: number, _i: number, repeats: number) {
      return Float64Array.from({ length: repeats }, () => tokens * 0.01 * FACTOR[this.dtype]);
    }
  }
  return {
    cpuInfo: () => ({ hardwareThreads: 4, features: 'fake', bestIsa: 'fake' }),
    cudaBuilt: () => false,
    CpuCalibrator: Cpu as never,
    CudaCalibrator: class {} as never,
  };
}

const options = (out: string) => ({
  out, device: 'cpu' as const, threads: [1], quick: true, geometry: 'lite', cpuOnly: true, base, quiet: true, command: 'test',
  expertFormats: [{ dtype: 'bf16' as const, group: 64 }, { dtype: 'int8' as const, group: 64 }, { dtype: 'int4' as const, group: 64 }],
});

describe('calibrate --expert-dtype', () => {
  it('writes one byExpertDtype entry per quantized format with its bytes and curves; the simulator takes them as measured', () => {
    const out = join(tmp.path, 'q.json');
    const r = runCalibrate(options(out), fake(true));
    const p = parseCalibration(readFileSync(out, 'utf8'), out);
    expect(calibrationProblems(p)).toEqual([]);
    expect(p.expertShape).toEqual({ hidden: 2048, dff: 1408 });
    expect(p.byExpertDtype?.int8?.expertBytes).toBe(8_670_208);
    expect(p.byExpertDtype?.int4).toMatchObject({ expertBytes: 4_866_048, group: 64 });
    for (const [d, f] of [['int8', 0.5], ['int4', 0.25]] as const) {
      for (const [t, ms] of p.byExpertDtype![d]!.cpu.expertMs) expect(ms).toBeCloseTo(t * 0.01 * f, 9);
      // --device cpu: the GPU curve is the base's bf16 curve scaled by bytes, and the source says so
      expect(p.byExpertDtype![d]!.gpu.expertMs).toEqual(costModelForDtype(parseCalibration(readFileSync(base, 'utf8'), base), d).model.gpu.expertMs);
      expect(p.sources?.[`byExpertDtype.${d}.gpu.expertMs`]).toMatch(/not measured \(--cpu-only\).*scaled by bytes, not measured/);
    }
    const m = costModelForDtype(p, 'int4', 64);
    expect(m.basis).toBe('measured');
    expect(m.model.expertBytes).toBe(4_866_048);
    expect(r.raw.byExpertDtype?.map((d) => d.dtype)).toEqual(['int8', 'int4']);
  });

  it('refuses a native calibrator that does not say it measures the dtype (it would time bf16 experts)', () => {
    expect(() => runCalibrate(options(join(tmp.path, 'r.json')), fake(false))).toThrow(/--expert-dtype int8: this build's CPU calibrator cannot measure quantized experts/);
  });
});
