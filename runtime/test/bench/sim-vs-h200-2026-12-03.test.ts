/**
 * The simulator against every point of the 2026-12-03 H200 offload runs (reports/bench/offload-h200-2026-12-03:
 * must-show and the grids, ESFT routing replayed), each point recomputed on the bench's own lanes with
 * sim/calibration/h200-offload-2026-12-03.json: that run's calibrate plus the host work of its all-resident
 * points. Nothing in the profile comes from the compared points' times (no cpu.jobMs). Held to 10%: every
 * fetch point and every hybrid point with the default --cpu-fill none and no prefetch; the rest (background
 * fill, oracle prefetch beside CPU experts, cpu) is printed, their misses are in the folder's README.
 * The committed sim-vs-measured.json must be what this computes. Needs the ESFT traces (skipped without).
 */
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimVsMeasuredRow } from '../../src/bench/sim-vs-bench.js';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir } from '../helpers/esft-replays.js';
import { expectCommittedSimRows, simulateCommittedBenches } from '../helpers/sim-vs-committed.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the 2026-12-03 simulator-vs-H200 table is not computed`);
const folder = join(repo, 'reports/bench/offload-h200-2026-12-03');
const benches = ['must-show', 'grid-cpu', 'grid-cpu-none', 'grid-fetch', 'grid-hybrid-bg', 'grid-hybrid-none'];
const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe.skipIf(!have)('simulated vs measured, H200 2026-12-03 (sim/calibration/h200-offload-2026-12-03.json)', () => {
  let rows: SimVsMeasuredRow[] = [];
  beforeAll(() => {
    rows = simulateCommittedBenches(benches.map((b) => join(folder, b, 'bench.json')), join(repo, 'sim/calibration/h200-offload-2026-12-03.json'), esft, tmp.path,
      (r) => `${r.miss} ${r.fill ?? ''} c${r.cache} ${r.prefetch} B${r.batch} P${r.prompt}`);
  }, 900_000);

  it('covers every point (20 must-show + 24 cpu + 12 cpu none + 24 fetch + 24 hybrid background + 24 hybrid none)', () => {
    expect(rows.length).toBe(128);
  });
  it('every fetch point within 10%', () => {
    const f = rows.filter((x) => x.miss === 'fetch');
    expect(f.length).toBe(28);
    for (const r of f) expect(Math.abs(r.error), `${r.bench} c${r.cache} ${r.prefetch} B${r.batch} P${r.prompt}`).toBeLessThan(0.1);
  });
  it('every hybrid point with --cpu-fill none and no prefetch within 10%', () => {
    const h = rows.filter((x) => x.miss === 'hybrid' && x.fill === 'none' && x.prefetch === 'none');
    expect(h.length).toBe(16);
    for (const r of h) expect(Math.abs(r.error), `${r.bench} c${r.cache} B${r.batch} P${r.prompt}`).toBeLessThan(0.1);
  });
  it('the committed sim-vs-measured.json is what the simulator computes', () => {
    expectCommittedSimRows(join(folder, 'sim-vs-measured.json'), rows);
  });
});
