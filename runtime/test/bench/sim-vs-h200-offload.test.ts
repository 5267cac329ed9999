/**
 * The simulator with sim/calibration/h200-offload.json against every point of the 2026-12-02 H200 offload
 * benches (reports/bench/offload-h200-2026-12-02: must-show and grid-fetch, ESFT routing replayed), each
 * point recomputed on the bench's own lanes, and the error table printed.
 *
 * In-sample, said plainly: the profile's cpu.jobMs is the mean CPU job time logged by must-show's hybrid
 * points themselves, and its host section comes from an earlier bench (quant-h200/must-show). The fetch
 * points are held to 10% (the profile takes nothing from their times); the CPU-expert points are printed:
 * hybrid at batch 1 with cache 19 is 16% low (known, not explained: reports/bench/offload-h200-2026-12-02/README.md).
 * Needs the real ESFT traces (../shared/traces/esft); skipped with a message without them.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCalibration } from '../../../sim/src/cost/calibration.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import { benchLanes, predictBenchPoint, withCpuWorkers } from '../../src/bench/sim-prediction.js';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir, importBenchReplays } from '../helpers/esft-replays.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the 2026-12-02 simulator-vs-H200 table is not computed`);
const folder = join(repo, 'reports/bench/offload-h200-2026-12-02');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

interface Row { bench: string; label: string; miss: string; measured: number; sim: number }

describe.skipIf(!have)('simulated vs measured, H200 2026-12-02 (sim/calibration/h200-offload.json)', () => {
  const rows: Row[] = [];
  beforeAll(() => {
    const replays = importBenchReplays(esft, tmp.path);
    const profile = loadCalibration(join(repo, 'sim/calibration/h200-offload.json'));
    for (const bench of ['must-show', 'grid-fetch']) {
      const b = JSON.parse(readFileSync(join(folder, bench, 'bench.json'), 'utf8'));
      for (const p of b.grid) {
        // predicted prefetch needs its predictor's plan, which is not committed (its precision and recall are)
        if (p.prefetch === 'predicted') continue;
        const shape = { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup: b.options.warmup, repeats: p.repeats };
        const model = withCpuWorkers(costModelForDtype(profile, p.expertDtype).model, p.cpuWorkers);
        const sim = predictBenchPoint(benchLanes(replays, shape), shape, { policy: p.policy, cacheSize: p.cache, prefetch: p.prefetch, miss: p.miss, calibration: model, cpuFill: p.cpuFill ?? true }).msPerToken.mean;
        rows.push({ bench, label: `${p.expertDtype} c${p.cache} ${p.miss} ${p.prefetch} B${p.batch} P${p.prompt}`, miss: p.miss, measured: p.msPerToken.mean, sim });
      }
    }
    const pc = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
    console.log(['| bench | point | measured ms | simulated ms | error |', '| --- | --- | --- | --- | --- |',
      ...rows.map((r) => `| ${r.bench} | ${r.label} | ${r.measured.toFixed(2)} | ${r.sim.toFixed(2)} | ${pc(r.sim / r.measured - 1)} |`)].join('\n'));
  }, 900_000);

  it('covers every point but the predicted ones (12 must-show + 24 grid-fetch)', () => {
    expect(rows.length).toBe(36);
  });
  it('every fetch point within 10%', () => {
    for (const r of rows.filter((x) => x.miss === 'fetch')) expect(Math.abs(r.sim / r.measured - 1), `${r.bench} ${r.label}`).toBeLessThan(0.1);
  });
});
