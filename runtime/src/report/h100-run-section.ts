/**
 * The must-show points and both issues' grids measured again on a second card, an NVIDIA H100, and the
 * simulator's agreement there, one subsection per run (newest first). Unlike the H200 sections' own simulated
 * columns, the simulated figures here are those of the committed sim-vs-measured files: each run was
 * re-simulated with profiles made from the same machine (each folder's README says how each profile was made).
 */
import { table } from './experiments.js';
import { configKey } from './latest-run-section.js';
import { json } from './read-json.js';
import { H100_RERUN_DIR, H100_RUN_07C_DIR, readOffloadBench, type OffloadBench } from './quant-sources.js';
import type { SimVsMeasuredRow } from '../bench/sim-vs-bench.js';

/** One H100 run: its folder, the must-show bench, the sim-vs-measured files and how the calls were made. */
interface H100RunSpec {
  dir: string;
  mustShow: string;
  simFiles: string[];
  how: string;
}

export const H100_RUNS: H100RunSpec[] = [
  {
    dir: H100_RUN_07C_DIR,
    mustShow: `${H100_RUN_07C_DIR}/call1/must-show/bench.json`,
    simFiles: [`${H100_RUN_07C_DIR}/call1/sim-vs-measured.json`],
    how: "One device call: calibrate first (2 CPU workers of 7 threads chosen), then every bench with that calibration; the must-show bench and the int8/int4 grid with one warm-up and three timed generations per point, bf16 at 16 slots (fetch, cpu, hybrid at batch 1 and 16) with two. Re-simulated with that calibrate, the int8/int4 grid's host work and the must-show bench's logged CPU job times (so the must-show hybrid rows are not an independent check of those; the grid and the 16-slot bf16 points are)",
  },
  {
    dir: H100_RERUN_DIR,
    mustShow: `${H100_RERUN_DIR}/call1/must-show/bench.json`,
    simFiles: [`${H100_RERUN_DIR}/call1/sim-vs-measured.json`, `${H100_RERUN_DIR}/bf16-grid-sim-vs-measured.json`],
    how: 'Three calls on one warm machine: one warm-up and three timed generations per point in call 1 (the must-show bench and the int8/int4 grid), two in the bf16 grid (calls 2 and 3, with the embedded H200 profile\'s CPU workers)',
  },
];

interface SimFile {
  file: string;
  profile: string;
  rows: SimVsMeasuredRow[];
}

export interface H100Run {
  dir: string;
  how: string;
  mustShow: OffloadBench;
  sims: SimFile[];
}

function readH100Run(root: string, spec: H100RunSpec): H100Run | null {
  const mustShow = readOffloadBench(root, spec.mustShow);
  const sims = spec.simFiles.map((file) => ({ file, doc: json<{ profile: string; rows: SimVsMeasuredRow[] }>(root, file) }))
    .filter((x): x is { file: string; doc: NonNullable<typeof x.doc> } => x.doc !== null)
    .map((x) => ({ file: x.file, profile: x.doc.profile, rows: x.doc.rows }));
  return mustShow && sims.length ? { dir: spec.dir, how: spec.how, mustShow, sims } : null;
}

/** The committed H100 runs, newest first (a run whose files are absent is left out). */
export function readH100Runs(root: string): H100Run[] {
  return H100_RUNS.map((spec) => readH100Run(root, spec)).filter((r): r is H100Run => r !== null);
}

const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

/** Per (dtype, slots, miss, prefetch) of one sim-vs-measured file: points, within 10%, the largest error. */
function agreement(s: SimFile): string[][] {
  const by = new Map<string, SimVsMeasuredRow[]>();
  for (const r of s.rows) by.set(configKey(r), [...(by.get(configKey(r)) ?? []), r]);
  return [...by.entries()].map(([k, rows]) => {
    const worst = rows.reduce((a, r) => (Math.abs(r.error) > Math.abs(a.error) ? r : a));
    return [k, String(rows.length), String(rows.filter((r) => Math.abs(r.error) <= 0.1).length), `${pct(worst.error)} (batch ${worst.batch} prompt ${worst.prompt})`, `\`${s.profile}\``];
  });
}

/** One run's subsection; the first (newest) also opens the card's section. */
export function h100RunSection(r: H100Run | null, first = true): string[] {
  if (!r) return [];
  const sim = r.sims[0].rows;
  const rows = r.mustShow.points.map((p) => {
    const s = sim.find((x) => x.dtype === p.dtype && x.miss === p.miss && x.batch === p.batch && x.prompt === p.prompt && x.cache === p.cache);
    return [p.dtype, String(p.cache), p.miss, String(p.batch), p.ms.mean.toFixed(2), p.tokS.toFixed(1), `${(100 * p.hitRate).toFixed(1)}%`, p.gbMoved.toFixed(2), s ? s.simulatedMs.toFixed(2) : '-', s ? pct(s.error) : '-'];
  });
  const all = r.sims.flatMap((s) => s.rows);
  return [
    ...(first ? [`### A second card: ${r.mustShow.device}`, ''] : []),
    `#### \`${r.dir}/\``,
    '',
    `${r.how} (${r.mustShow.device}, README in the folder). ESFT routing replayed, 12 GiB, lru, 16 new tokens. The must-show points, bf16 beside int8 and int4 in one bench (\`${r.mustShow.file}\`), the cache that fits per dtype:`,
    '',
    table(['dtype', 'slots', 'miss', 'batch', 'ms/token', 'tokens/s', 'hit rate', 'GB moved', 'simulated ms/token', 'error'], rows),
    '',
    `The simulator against these measurements (${r.sims.map((s) => `\`${s.file}\``).join(', ')}): within 10% at ${all.filter((x) => Math.abs(x.error) <= 0.1).length} of ${all.length} points.`,
    '',
    table(['configuration', 'points', 'within 10%', 'largest error', 'profile'], r.sims.flatMap(agreement)),
    '',
    `![H100 must-show, ${r.dir.replace(/^.*\//, '')}](${r.mustShow.file.replace(/^reports\//, '').replace(/bench\.json$/, 'bench.png')})`,
    '',
  ];
}

/** The report's missing-or-partial line on the simulator's agreement on the H100 (null where every point is within 10%). */
export function h100AgreementGap(r: H100Run | null): string | null {
  if (!r) return null;
  const rows = r.sims.flatMap((s) => s.rows);
  const off = rows.filter((x) => Math.abs(x.error) > 0.1);
  if (!off.length) return null;
  const configs = [...new Set(off.map(configKey))];
  return `On the H100 (\`${r.dir}/\`) the simulator is within 10% at ${rows.length - off.length} of ${rows.length} points; outside at ${configs.map((k) => `${k} (${off.filter((x) => configKey(x) === k).length})`).join(', ')}.`;
}
