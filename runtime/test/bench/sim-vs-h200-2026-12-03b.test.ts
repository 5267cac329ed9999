/**
 * The simulator against the second 2026-12-03 H200 run (reports/bench/offload-h200-2026-12-03b: the cpu and
 * hybrid grids, fills none and background, after the miss rule's backlog counted prefetches), each point recomputed
 * on the bench's own lanes with sim/calibration/h200-offload-2026-12-03.json (nothing from these points).
 * What is held: the committed sim-vs-measured.json is what this computes, and with the oracle beside CPU experts,
 * which the fix was for, the measured layer tail no longer than the simulated one by more than one prefetch
 * piece at every point (the first run's were up to 1.72 ms longer). The 10% target is not met at every point (the folder's README says where and why):
 * the errors are printed, not held.
 */
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCalibration } from '../../../sim/src/cost/calibration.js';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { PREFETCH_CHUNKS } from '../../../sim/src/timing/engine.js';
import type { SimVsMeasuredRow } from '../../src/bench/sim-vs-bench.js';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir } from '../helpers/esft-replays.js';
import { expectCommittedSimRows, simulateCommittedBenches } from '../helpers/sim-vs-committed.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the 2026-12-03b simulator-vs-H200 table is not computed`);
const folder = join(repo, 'reports/bench/offload-h200-2026-12-03b');
const profileFile = join(repo, 'sim/calibration/h200-offload-2026-12-03.json');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe.skipIf(!have)('simulated vs measured, H200 2026-12-03b (sim/calibration/h200-offload-2026-12-03.json)', () => {
  let rows: SimVsMeasuredRow[] = [];
  beforeAll(() => {
    rows = simulateCommittedBenches(['grid-hybrid-none', 'grid-cpu-none', 'grid-hybrid-bg', 'grid-cpu-bg'].map((b) => join(folder, b, 'bench.json')), profileFile, esft, tmp.path,
      (r) => `${r.miss} ${r.fill} ${r.prefetch} B${r.batch} P${r.prompt}`);
  }, 900_000);

  it('covers the four grids, prefetch none and oracle (4 x 24 points)', () => {
    expect(rows.length).toBe(96);
    expect(rows.filter((r) => r.prefetch === 'oracle').length).toBe(48);
  });
  it('with the oracle beside CPU experts, the measured layer tail is not longer than the simulated one by more than one prefetch piece', () => {
    // the backlog counts pieces in flight whole (miss_policy.h CopyBacklog): one piece, a third of the
    // profile's expert copy, is the error it allows; the first run's tails were up to 1.72 ms longer
    const pieceMs = new Costs(loadCalibration(profileFile)).copyMs / PREFETCH_CHUNKS;
    expect(pieceMs).toBeGreaterThan(0.09);
    const o = rows.filter((r) => r.prefetch === 'oracle');
    for (const r of o) expect((r.layerTailMs.measured ?? Infinity) - r.layerTailMs.simulated, `${r.miss} B${r.batch} P${r.prompt}`).toBeLessThan(pieceMs);
  });
  it('the committed sim-vs-measured.json is what the simulator computes', () => {
    expectCommittedSimRows(join(folder, 'sim-vs-measured.json'), rows);
  });
});
