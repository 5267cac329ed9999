/**
 * The newest one-call measurement of the must-show points (batch 1 and 16, prompt 128, every expert dtype at
 * 12 GiB) with the runtime as it is now: GPU sampling and resident steps, which the older sections' runs
 * predate. Every bench.json under LATEST_RUN_DIR, in file order; the simulated column is each bench's own.
 * Beside it the batch x prompt grids measured with the same runtime (LATEST_GRID_DIRS), summarised per
 * configuration by how many of their points the simulator predicts within 10%.
 */
import { table } from './experiments.js';
import { json } from './read-json.js';
import { listDir, readOffloadBench, type OffloadPoint } from './quant-sources.js';

export const LATEST_RUN_DIR = 'reports/bench/must-show-h200-2026-12-04';
export const LATEST_GRID_DIRS = ['reports/bench/miss-grid-h200-2026-12-04', 'reports/bench/quant-grid-h200-2026-12-04'];

export interface BenchSet {
  dir: string;
  files: string[];
  device: string;
  points: OffloadPoint[];
}

export interface LatestRun extends BenchSet {
  grids: BenchSet[];
  /** the quantized points re-simulated with the per-dtype eager-launch profile (DTYPE_EAGER_FILES) */
  dtypeEager: { profile: string; files: string[]; rows: { dtype: string; error: number }[] } | null;
}

/** sim-vs-bench of the quantized points with sim/calibration/h200-offload-2026-12-04-dtype-eager.json */
export const DTYPE_EAGER_FILES = [
  'reports/bench/must-show-h200-2026-12-04/sim-vs-measured-dtype-eager.json',
  'reports/bench/quant-grid-h200-2026-12-04/sim-vs-measured-dtype-eager.json',
  'reports/bench/int4-samecall-h200-2026-12-04/sim-vs-measured-dtype-eager.json',
];

function readDtypeEager(root: string): LatestRun['dtypeEager'] {
  const docs = DTYPE_EAGER_FILES.map((f) => ({ f, d: json<{ profile: string; rows: { dtype: string; error: number }[] }>(root, f) }))
    .filter((x): x is { f: string; d: NonNullable<typeof x.d> } => x.d !== null);
  if (docs.length === 0) return null;
  return { profile: docs[0].d.profile, files: docs.map((x) => x.f), rows: docs.flatMap((x) => x.d.rows.filter((r) => r.dtype !== 'bf16')) };
}

function readBenchSet(root: string, dir: string): BenchSet | null {
  const files = listDir(root, dir)?.filter((f) => f.endsWith('/bench.json')) ?? [];
  const benches = files.map((f) => readOffloadBench(root, f)).filter((b) => b !== null);
  if (benches.length === 0) return null;
  return { dir, files, device: benches[0].device, points: benches.flatMap((b) => b.points) };
}

export function readLatestRun(root: string): LatestRun | null {
  const run = readBenchSet(root, LATEST_RUN_DIR);
  if (!run) return null;
  return { ...run, grids: LATEST_GRID_DIRS.map((d) => readBenchSet(root, d)).filter((g) => g !== null), dtypeEager: readDtypeEager(root) };
}

const simError = (p: OffloadPoint) => (p.simMs === null ? null : p.simMs / p.ms.mean - 1);

/** A grid configuration as the report's agreement tables name it (the H100 section's too). */
export const configKey = (p: { dtype: string; cache: number; miss: string; prefetch: string }) => `${p.dtype} ${p.cache} slots, ${p.miss}, prefetch ${p.prefetch}`;

/** Per (dtype, slots, miss, prefetch) of the grids: points, how many the simulator has within 10%, the largest error. */
export function gridAgreement(r: LatestRun): { key: string; dir: string; points: number; within: number; largest: number }[] {
  const out = new Map<string, { key: string; dir: string; points: number; within: number; largest: number }>();
  for (const g of r.grids) {
    for (const p of g.points) {
      const e = simError(p);
      if (e === null) continue;
      const key = configKey(p);
      const row = out.get(key) ?? { key, dir: g.dir, points: 0, within: 0, largest: 0 };
      row.points++;
      if (Math.abs(e) <= 0.1) row.within++;
      row.largest = Math.max(row.largest, Math.abs(e));
      out.set(key, row);
    }
  }
  return [...out.values()];
}

/** The report's missing-or-partial line on the simulator's agreement, from the current runtime's grids. */
export function gridAgreementGap(r: LatestRun | null): string | null {
  if (!r || r.grids.length === 0) return null;
  const rows = gridAgreement(r);
  const points = rows.reduce((a, x) => a + x.points, 0), within = rows.reduce((a, x) => a + x.within, 0);
  if (within === points) return null;
  const off = rows.filter((x) => x.within < x.points).map((x) => `${x.key}: ${x.within} of ${x.points}, to ${(100 * x.largest).toFixed(1)}%`);
  return `The simulator is not within 10% everywhere: in the current runtime's grids (${r.grids.map((g) => g.dir).join(', ')}) ${within} of ${points} points are; the configurations with points outside: ${off.join('; ')}.`;
}

/** Per dtype the best batch-1 ms/token and the best batch-16 tokens/s of the run, for the summary. */
export function latestRunSummary(r: LatestRun | null): { zh: string; en: string } | null {
  if (!r) return null;
  const dtypes = ['bf16', 'int8', 'int4'].filter((d) => r.points.some((p) => p.dtype === d));
  const best = (d: string, batch: number, pick: (p: OffloadPoint) => number, better: (a: number, b: number) => boolean) =>
    r.points.filter((p) => p.dtype === d && p.batch === batch).map(pick).reduce((a, b) => (better(b, a) ? b : a), NaN);
  const b1 = dtypes.map((d) => best(d, 1, (p) => p.ms.mean, (a, b) => !(a >= b)).toFixed(2));
  const b16 = dtypes.map((d) => best(d, 16, (p) => p.tokS, (a, b) => !(a <= b)).toFixed(1));
  return {
    zh: `当前运行时（贪心 token 在 GPU 上选出、常驻步；\`${r.dir}/\`，一次调用）：batch 1 各格式（${dtypes.join(' / ')}）最佳 ${b1.join(' / ')} ms/token，batch 16 最佳 ${b16.join(' / ')} token/s。`,
    en: `With the current runtime (greedy tokens picked on the GPU, resident steps; \`${r.dir}/\`, one call): best batch 1 per dtype (${dtypes.join(' / ')}) ${b1.join(' / ')} ms per output token, best batch 16 ${b16.join(' / ')} tokens/s.`,
  };
}

/** A bench's chart (rendered beside its bench.json), linked from reports/REPORT.md. */
const chart = (benchJson: string) => `![${benchJson.split('/').slice(-2, -1)[0]}](${benchJson.replace(/^reports\//, '').replace(/bench\.json$/, 'bench.png')})`;

const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

export function latestRunSection(r: LatestRun | null): string[] {
  if (!r) return [];
  const errors = r.points.map(simError).filter((e) => e !== null);
  const within = errors.filter((e) => Math.abs(e) <= 0.1).length;
  const rows = r.points.map((p) => {
    const e = simError(p);
    return [p.dtype, String(p.cache), p.policy, p.miss, String(p.batch), p.ms.mean.toFixed(2), p.tokS.toFixed(1), `${(100 * p.hitRate).toFixed(1)}%`, p.gbMoved.toFixed(2), p.simMs === null ? '-' : p.simMs.toFixed(2), e === null ? '-' : pct(e)];
  });
  return [
    '### The must-show points with the current runtime (GPU sampling, resident steps)',
    '',
    `One call on the ${r.device} (\`${r.dir}/\`: ${r.files.map((f) => `\`${f}\``).join(', ')}): routing replayed from ESFT (summary + translation + intent; lanes as each bench file says), 12 GiB, the cache that fits per dtype, no prefetch, prompt 128. Greedy tokens are picked on the GPU (only their ids come back) and a step with every routed expert in a slot runs as a resident step (one CUDA graph, no routing trip to the host per layer); the runs of the sections above predate both. Simulated: each bench's own column (its profile is on its command line); within 10% at ${within} of ${errors.length} points.`,
    '',
    table(['dtype', 'slots', 'policy', 'miss', 'batch', 'ms/token', 'tokens/s', 'hit rate', 'GB moved', 'simulated ms/token', 'error'], rows),
    '',
    ...r.files.map(chart),
    '',
    ...(r.grids.length
      ? [
          `The batch 1/4/8/16 x prompt 128/256/512 grids measured with the same runtime (${r.grids.map((g) => `\`${g.dir}/\``).join(', ')}; ESFT routing replayed, 12 GiB, each bench's own simulated column): how many points the simulator predicts within 10%.`,
          '',
          table(['configuration', 'points', 'within 10%', 'largest error', 'source'], gridAgreement(r).map((x) => [x.key, String(x.points), String(x.within), `${(100 * x.largest).toFixed(1)}%`, `\`${x.dir}/\``])),
          '',
          ...r.grids.flatMap((g) => g.files).map(chart),
          '',
        ]
      : []),
    ...dtypeEagerParagraph(r),
  ];
}

/** The quantized points again with each format's own eager-launch overhead (calibrate's, as a ratio to bf16). */
function dtypeEagerParagraph(r: LatestRun): string[] {
  const e = r.dtypeEager;
  if (!e) return [];
  const per = ['int8', 'int4'].map((d) => {
    const rows = e.rows.filter((x) => x.dtype === d);
    return rows.length ? `${d} ${rows.filter((x) => Math.abs(x.error) <= 0.1).length} of ${rows.length} (largest ${(100 * Math.max(...rows.map((x) => Math.abs(x.error)))).toFixed(1)}%)` : null;
  }).filter((x) => x !== null);
  return [
    `The quantized points of these runs (and of \`reports/bench/int4-samecall-h200-2026-12-04/\`, the int4 grid on another machine) re-simulated with \`${e.profile}\`, the same profile but with each format's eager-launch overhead measured with its own decode kernel (\`calibrate --expert-dtype\`, carried over as a ratio to bf16; the bf16 curve over-charged int4 layers at batch 8-16, where their long kernels hide the host's launching): within 10% at ${per.join(', ')} (${e.files.map((f) => `\`${f}\``).join(', ')}).`,
    '',
  ];
}
