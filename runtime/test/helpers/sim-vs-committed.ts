/**
 * The simulator against committed bench points (runtime/src/bench/sim-vs-bench.ts), as the
 * sim-vs-h200*.test.ts and sim-vs-h100*.test.ts files use it: every point recomputed on the bench's own lanes with a profile, the
 * error table printed, and the check that a folder's committed sim-vs-measured.json is what it computes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../../core/test/helpers.js';
import { loadCalibration } from '../../../sim/src/cost/calibration.js';
import { simVsBench, type CpuJobSource, type SimVsMeasuredRow } from '../../src/bench/sim-vs-bench.js';
import { benchEsftDir, importBenchReplays } from './esft-replays.js';

/** Each bench file's points simulated with `profileFile`, the ESFT replays imported into `tmpDir`; prints the table. */
export function simulateCommittedBenches(benchFiles: string[], profileFile: string, esftDir: string, tmpDir: string, point: (r: SimVsMeasuredRow) => string, cpuJobs: CpuJobSource = 'profile'): SimVsMeasuredRow[] {
  const rows = simVsBench(benchFiles, loadCalibration(profileFile), importBenchReplays(esftDir, tmpDir), cpuJobs);
  const pc = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
  console.log(['| point | measured ms | simulated ms | error |', '| --- | --- | --- | --- |',
    ...rows.map((r) => `| ${point(r)} | ${r.measuredMs.toFixed(2)} | ${r.simulatedMs.toFixed(2)} | ${pc(r.error)} |`)].join('\n'));
  return rows;
}

/** The committed sim-vs-measured.json holds the same points, simulated to the same figures. */
export function expectCommittedSimRows(file: string, rows: SimVsMeasuredRow[]): void {
  const committed = JSON.parse(readFileSync(file, 'utf8')).rows as SimVsMeasuredRow[];
  const key = (r: SimVsMeasuredRow) => [r.miss, r.fill, r.prefetch, r.batch, r.prompt, r.simulatedMs];
  expect(committed.map(key)).toEqual(rows.map(key));
}

/** One committed sim-vs-measured file: the benches (folders under the run's folder) simulated with a profile of sim/calibration. */
export interface CommittedSimSet {
  name: string;
  committed: string;
  profile: string;
  benches: string[];
  points: number;
  /** whose CPU job times (sim-vs-bench --cpu-jobs; default profile) */
  cpuJobs?: CpuJobSource;
}

/**
 * The tests of one committed run (`folder`, relative to the repo): each set's file is what the simulator computes
 * at all its points, and every bench's cache hits equal the simulator's. Skipped, with a message, without the
 * ESFT traces beside the checkout.
 */
export function describeCommittedSimSets(title: string, repo: string, folder: string, sets: CommittedSimSet[]): void {
  const { dir: esft, have } = benchEsftDir(repo);
  if (!have) console.warn(`[skip] ${esft} is missing: ${title} is not computed`);
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  const at = (b: string) => join(repo, folder, b, 'bench.json');
  describe.skipIf(!have)(title, () => {
    for (const s of sets) {
      it(`${s.name}: the committed ${s.committed} is what the simulator computes, at all ${s.points} points`, () => {
        const rows = simulateCommittedBenches(s.benches.map(at), join(repo, 'sim/calibration', s.profile), esft, tmp.path, (r) => `${r.dtype} ${r.miss} ${r.prefetch} B${r.batch} P${r.prompt}`, s.cpuJobs);
        expect(rows).toHaveLength(s.points);
        expectCommittedSimRows(join(repo, folder, s.committed), rows);
      }, 900_000);
    }
    it("the runtime's cache hits equal the simulator's at every point", () => {
      for (const b of new Set(sets.flatMap((s) => s.benches))) {
        const grid = JSON.parse(readFileSync(at(b), 'utf8')).grid as Array<{ hitsMatchSim: boolean }>;
        expect(grid.every((p) => p.hitsMatchSim), b).toBe(true);
      }
    });
  });
}
