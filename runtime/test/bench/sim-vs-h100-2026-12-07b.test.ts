/**
 * The H100 re-run of 2026-12-07 (reports/bench/h100-2026-12-07b/) simulated with the profiles made from that
 * machine: the quantized must-show bench and int8/int4 grid with sim/calibration/h100-offload-2026-12-07b-samecall.json,
 * the bf16 miss-mode grid (fetch, cpu, hybrid x prefetch none, oracle) with h100-offload-2026-12-07b-bf16-runcpu.json.
 * What is held: each committed sim-vs-measured file is what the simulator computes, and the cache's hits equal
 * the simulator's at every point. Which points are outside 10% is the README's and the report's to say.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir } from '../helpers/esft-replays.js';
import { expectCommittedSimRows, simulateCommittedBenches } from '../helpers/sim-vs-committed.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the 2026-12-07b simulator-vs-H100 tables are not computed`);
const folder = join(repo, 'reports/bench/h100-2026-12-07b');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

const sets = [
  { name: 'int8 and int4, must-show and grid', committed: 'call1/sim-vs-measured.json', profile: 'h100-offload-2026-12-07b-samecall.json', benches: ['call1/must-show', 'call1/grid'], points: 60 },
  { name: 'bf16 miss-mode grid', committed: 'bf16-grid-sim-vs-measured.json', profile: 'h100-offload-2026-12-07b-bf16-runcpu.json', benches: ['call3/replay-b1-4', 'call3/replay-fetch-b8-16', 'call2/bench-replay'], points: 72 },
];

describe.skipIf(!have)('simulated vs measured, H100 2026-12-07b', () => {
  for (const s of sets) {
    const benches = s.benches.map((b) => join(folder, b, 'bench.json'));
    it(`${s.name}: the committed ${s.committed} is what the simulator computes, at all ${s.points} points`, () => {
      const rows = simulateCommittedBenches(benches, join(repo, 'sim/calibration', s.profile), esft, tmp.path, (r) => `${r.dtype} ${r.miss} ${r.prefetch} B${r.batch} P${r.prompt}`);
      expect(rows).toHaveLength(s.points);
      expectCommittedSimRows(join(folder, s.committed), rows);
    }, 900_000);

    it(`${s.name}: the runtime's cache hits equal the simulator's at every point`, () => {
      for (const b of benches) {
        const grid = JSON.parse(readFileSync(b, 'utf8')).grid as Array<{ hitsMatchSim: boolean }>;
        expect(grid.every((p) => p.hitsMatchSim)).toBe(true);
      }
    });
  }
});
