/**
 * The H100 int8/int4 grid of 2026-12-07 simulated with sim/calibration/h100-offload-2026-12-07-samecall.json (the
 * same call's calibrate --expert-dtype; host from the grid's own host work). What is held: the committed
 * sim-vs-measured.json is what the simulator computes, and the cache's hits equal the simulator's at every
 * point; the errors are printed, and reports/bench/h100-2026-12-07/README.md says which points are outside 10%.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimVsMeasuredRow } from '../../src/bench/sim-vs-bench.js';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir } from '../helpers/esft-replays.js';
import { expectCommittedSimRows, simulateCommittedBenches } from '../helpers/sim-vs-committed.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the 2026-12-07 simulator-vs-H100 table is not computed`);
const folder = join(repo, 'reports/bench/h100-2026-12-07/call2');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe.skipIf(!have)('simulated vs measured, H100 2026-12-07, int8 and int4 with a same-call profile', () => {
  let rows: SimVsMeasuredRow[] = [];
  beforeAll(() => {
    rows = simulateCommittedBenches([join(folder, 'grid/bench.json')], join(repo, 'sim/calibration/h100-offload-2026-12-07-samecall.json'), esft, tmp.path,
      (r) => `${r.dtype} ${r.miss} B${r.batch} P${r.prompt}`);
  }, 900_000);

  it('the committed sim-vs-measured.json is what the simulator computes, at all 48 points', () => {
    expect(rows).toHaveLength(48);
    expectCommittedSimRows(join(folder, 'sim-vs-measured.json'), rows);
  });

  it('the runtime\'s cache hits equal the simulator\'s at every point', () => {
    const grid = JSON.parse(readFileSync(join(folder, 'grid/bench.json'), 'utf8')).grid as Array<{ hitsMatchSim: boolean }>;
    expect(grid.every((p) => p.hitsMatchSim)).toBe(true);
  });
});
