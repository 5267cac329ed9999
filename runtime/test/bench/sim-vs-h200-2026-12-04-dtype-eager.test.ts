/**
 * The quantized H200 points of 2026-12-04 (the must-show run, the int8/int4 grid, and the int4 grid measured
 * on another machine) simulated with sim/calibration/h200-offload-2026-12-04-dtype-eager.json: the committed
 * profile with each quantized format's eager-launch overhead measured by calibrate with its own decode kernel
 * (runtime/src/calibrate/dtype-eager-from-calibration.ts; nothing from these points). What is held: the
 * committed sim-vs-measured-dtype-eager.json files are what the simulator computes; the errors are printed,
 * and the folders' READMEs say which points are outside 10%.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimVsMeasuredRow } from '../../src/bench/sim-vs-bench.js';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir } from '../helpers/esft-replays.js';
import { expectCommittedSimRows, simulateCommittedBenches } from '../helpers/sim-vs-committed.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the 2026-12-04 per-dtype eager simulator-vs-H200 tables are not computed`);
const profileFile = join(repo, 'sim/calibration/h200-offload-2026-12-04-dtype-eager.json');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

const FOLDERS: Array<{ folder: string; benches: string[] }> = [
  { folder: 'reports/bench/must-show-h200-2026-12-04', benches: ['lru/bench.json', 'int4/bench.json'] },
  { folder: 'reports/bench/quant-grid-h200-2026-12-04', benches: ['grid/bench.json'] },
  { folder: 'reports/bench/int4-samecall-h200-2026-12-04', benches: ['bench.json'] },
];

describe.skipIf(!have)('simulated vs measured, H200 2026-12-04, per-dtype eager-launch overhead', () => {
  const rows = new Map<string, SimVsMeasuredRow[]>();
  beforeAll(() => {
    for (const f of FOLDERS) {
      const dir = join(tmp.path, f.folder.split('/').pop()!);
      mkdirSync(dir);
      rows.set(f.folder, simulateCommittedBenches(f.benches.map((b) => join(repo, f.folder, b)), profileFile, esft, dir,
        (r) => `${r.dtype} ${r.miss} B${r.batch} P${r.prompt}`));
    }
  }, 900_000);
  for (const f of FOLDERS) {
    it(`${f.folder}: the committed sim-vs-measured-dtype-eager.json is what the simulator computes`, () => {
      expect(rows.get(f.folder)!.length).toBeGreaterThan(0);
      expectCommittedSimRows(join(repo, f.folder, 'sim-vs-measured-dtype-eager.json'), rows.get(f.folder)!);
    });
  }
});
