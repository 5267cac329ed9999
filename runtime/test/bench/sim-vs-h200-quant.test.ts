/**
 * The simulator against every committed H200 point of the quantized-expert benches
 * (reports/bench/quant-h200/must-show/bench.json and grid/bench.json: bf16 / int8 / int4, cache fit per
 * dtype at 12 GiB, misses fetched or hybrid, prefetch none or oracle): each point's prediction recomputed
 * on the bench's own lanes with a profile, and the error table printed (sim / measured - 1; also with the
 * bench's own measured host work, offload.hostProfile, added, which the committed profile lacks).
 * Profile: MOE_QUANT_PROFILE, default the one the benches used (reports/bench/quant-h200/calibration-quant.json).
 * With a profile without launch tables (gpu.launch) the recomputation of a fetch point must give the bench's own simulated
 * column (it is the same computation; must-show's to 2%, see the test); a profile with them (calibrate after the launch model) gives the
 * launch model's figures, and the table shows how far they are from the measurements. No error bound is
 * asserted: this documents the errors, it does not claim an agreement.
 * Needs the real ESFT traces (../shared/traces/esft); skipped with a message without them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import type { ExpertDtype } from '../../../sim/src/cost/expert-layout.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import type { PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { benchLanes, predictBenchPoint, withCpuWorkers, type BenchShape } from '../../src/bench/sim-prediction.js';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir, importBenchReplays } from '../helpers/esft-replays.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the quantized simulator-vs-H200 table is not computed`);
const profileFile = process.env.MOE_QUANT_PROFILE ? resolve(process.env.MOE_QUANT_PROFILE) : join(repo, 'reports/bench/quant-h200/calibration-quant.json');
const benches = ['must-show', 'grid'].map((b) => join(repo, 'reports/bench/quant-h200', b, 'bench.json'));
const tmp = tempDir();
afterAll(() => tmp.cleanup());

interface Point {
  source: string;
  dtype: ExpertDtype;
  cache: number;
  miss: MissMode;
  cpuFill: boolean;
  workers: number | null;
  prefetch: PrefetchName;
  shape: BenchShape;
  measuredMs: number;
  benchSimMs: number;
  host: CostModel['host'];
}

function committedPoints(): Point[] {
  return benches.flatMap((file) => {
    const b = JSON.parse(readFileSync(file, 'utf8'));
    return b.grid.map((p: Record<string, any>) => ({
      source: file.includes('must-show') ? 'must-show' : 'grid', dtype: p.expertDtype, cache: p.cache, miss: p.miss, cpuFill: p.cpuFill ?? true, workers: p.cpuWorkers,
      prefetch: p.prefetch, shape: { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup: b.options.warmup, repeats: p.repeats },
      measuredMs: p.msPerToken.mean, benchSimMs: p.simMsPerToken, host: b.offload.hostProfile,
    }));
  });
}

type Row = Point & { simMs: number; hostMs: number; launches: boolean };

describe.skipIf(!have)(`simulated vs measured, quantized experts on the H200 (${profileFile})`, () => {
  let rows: Row[] = [];
  beforeAll(() => {
    // The benches' routing: summary, translation, intent (offload.routing), imported from the ESFT traces.
    const replays = importBenchReplays(esft, tmp.path);
    const profile = loadCalibration(profileFile);
    rows = committedPoints().map((p) => {
      const model = costModelForDtype(profile, p.dtype).model;
      const lanes = benchLanes(replays, p.shape);
      const sim = (m: CostModel) =>
        predictBenchPoint(lanes, p.shape, { policy: 'lru', cacheSize: p.cache, prefetch: p.prefetch, miss: p.miss, calibration: withCpuWorkers(m, p.workers), cpuFill: p.cpuFill }).msPerToken.mean;
      return { ...p, simMs: sim(model), hostMs: model.host ? NaN : sim({ ...model, host: p.host }), launches: model.gpu.launch !== undefined && p.shape.batch <= model.gpu.launch.maxRows };
    });
    const pc = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%` : '-');
    console.log(
      [`profile ${profileFile}`, '| bench | dtype | cache | miss | prefetch | batch | prompt | measured ms | bench sim ms | sim ms | GPU experts | error | error with bench host |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        ...rows.map((r) => `| ${r.source} | ${r.dtype} | ${r.cache} | ${r.miss} | ${r.prefetch} | ${r.shape.batch} | ${r.shape.prompt} | ${r.measuredMs.toFixed(2)} | ${r.benchSimMs.toFixed(2)} | ${r.simMs.toFixed(2)} | ${r.launches ? 'per launch' : 'per expert'} | ${pc(r.simMs / r.measuredMs - 1)} | ${pc(r.hostMs / r.measuredMs - 1)} |`)].join('\n'),
    );
  }, 900_000);

  it('covers every committed point (24 must-show + 24 grid)', () => {
    expect(rows.length).toBe(48);
  });
  it('without launch tables, the recomputation of a fetch point is the benches\' own simulated column', () => {
    // grid/ reproduces to 1e-9; must-show/'s committed column is 0.2-1% off today's code with the same
    // profile (already at the commit before the launch model: it was computed by an earlier build), so
    // it is held to 2% only.
    // Fetch points only: the hybrid ones were simulated before the CPU experts' output upload went through the
    // copy engine (sim/src/timing/engine.ts), which changed their prediction after these benches ran.
    for (const r of rows.filter((x) => !x.launches && x.miss === 'fetch')) {
      const d = r.simMs / r.benchSimMs - 1;
      const at = `${r.source} ${r.dtype} B${r.shape.batch} P${r.shape.prompt} ${r.miss} ${r.prefetch}`;
      if (r.source === 'grid') expect(d, at).toBeCloseTo(0, 9);
      else expect(Math.abs(d), at).toBeLessThan(0.02);
    }
  });
});
