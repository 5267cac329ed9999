/**
 * The simulator against committed H200 bench points (runtime/src/bench/sim-vs-bench.ts), as the
 * sim-vs-h200*.test.ts files use it: every point recomputed on the bench's own lanes with a profile, the
 * error table printed, and the check that a folder's committed sim-vs-measured.json is what it computes.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { loadCalibration } from '../../../sim/src/cost/calibration.js';
import { simVsBench, type SimVsMeasuredRow } from '../../src/bench/sim-vs-bench.js';
import { importBenchReplays } from './esft-replays.js';

/** Each bench file's points simulated with `profileFile`, the ESFT replays imported into `tmpDir`; prints the table. */
export function simulateCommittedBenches(benchFiles: string[], profileFile: string, esftDir: string, tmpDir: string, point: (r: SimVsMeasuredRow) => string): SimVsMeasuredRow[] {
  const rows = simVsBench(benchFiles, loadCalibration(profileFile), importBenchReplays(esftDir, tmpDir));
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
