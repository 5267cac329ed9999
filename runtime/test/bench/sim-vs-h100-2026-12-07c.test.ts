/**
 * The H100 run of 2026-12-07c (reports/bench/h100-2026-12-07c/) simulated with profiles made in the same call:
 * sim-vs-measured.json with sim/calibration/h100-offload-2026-12-07c-samecall-runtime-cpu.json (CPU job times from
 * the must-show bench's logged jobs), sim-vs-measured-calibrate-cpu.json with h100-offload-2026-12-07c-samecall.json
 * (calibrate's CPU figures alone). What is held: each committed file is what the simulator computes, and the
 * cache's hits equal the simulator's at every point. Which points are outside 10% is the README's to say.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir } from '../helpers/esft-replays.js';
import { expectCommittedSimRows, simulateCommittedBenches } from '../helpers/sim-vs-committed.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the 2026-12-07c simulator-vs-H100 tables are not computed`);
const folder = join(repo, 'reports/bench/h100-2026-12-07c');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

const call1 = ['call1/must-show', 'call1/grid', 'call1/bench-replay'];
const sets = [
  { name: 'call 1, runtime CPU jobs', committed: 'call1/sim-vs-measured.json', profile: 'h100-offload-2026-12-07c-samecall-runtime-cpu.json', benches: call1, points: 66 },
  { name: 'call 1, calibrate CPU figures', committed: 'call1/sim-vs-measured-calibrate-cpu.json', profile: 'h100-offload-2026-12-07c-samecall.json', benches: call1, points: 66 },
];

describe.skipIf(!have)('simulated vs measured, H100 2026-12-07c', () => {
  for (const s of sets) {
    const benches = s.benches.map((b) => join(folder, b, 'bench.json'));
    it(`${s.name}: the committed ${s.committed} is what the simulator computes, at all ${s.points} points`, () => {
      const rows = simulateCommittedBenches(benches, join(repo, 'sim/calibration', s.profile), esft, tmp.path, (r) => `${r.dtype} ${r.miss} ${r.prefetch} B${r.batch} P${r.prompt}`);
      expect(rows).toHaveLength(s.points);
      expectCommittedSimRows(join(folder, s.committed), rows);
    }, 900_000);
  }

  it("the runtime's cache hits equal the simulator's at every point", () => {
    for (const b of call1) {
      const grid = JSON.parse(readFileSync(join(folder, b, 'bench.json'), 'utf8')).grid as Array<{ hitsMatchSim: boolean }>;
      expect(grid.every((p) => p.hitsMatchSim)).toBe(true);
    }
  });
});
