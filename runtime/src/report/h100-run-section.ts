/**
 * The must-show points and both issues' grids measured again on a second card, an NVIDIA H100 (2026-12-07,
 * H100_RERUN_DIR), and the simulator's agreement there. Unlike the H200 sections' own simulated columns, the
 * simulated figures here are those of the committed sim-vs-measured files: the benches ran before this card
 * had a profile with its host work, so each was re-simulated with a profile made from the same machine's
 * calibrate (the folder's README says how each profile was made).
 */
import { table } from './experiments.js';
import { configKey } from './latest-run-section.js';
import { json } from './read-json.js';
import { H100_RERUN_DIR, readOffloadBench, type OffloadBench } from './quant-sources.js';
import type { SimVsMeasuredRow } from '../bench/sim-vs-bench.js';

/** the quantized must-show bench and the int8/int4 grid (call1), then the bf16 miss-mode grid (calls 2 and 3) */
export const H100_SIM_FILES = [`${H100_RERUN_DIR}/call1/sim-vs-measured.json`, `${H100_RERUN_DIR}/bf16-grid-sim-vs-measured.json`];

interface SimFile {
  file: string;
  profile: string;
  rows: SimVsMeasuredRow[];
}

export interface H100Run {
  dir: string;
  mustShow: OffloadBench;
  sims: SimFile[];
}

export function readH100Run(root: string): H100Run | null {
  const mustShow = readOffloadBench(root, `${H100_RERUN_DIR}/call1/must-show/bench.json`);
  const sims = H100_SIM_FILES.map((file) => ({ file, doc: json<{ profile: string; rows: SimVsMeasuredRow[] }>(root, file) }))
    .filter((x): x is { file: string; doc: NonNullable<typeof x.doc> } => x.doc !== null)
    .map((x) => ({ file: x.file, profile: x.doc.profile, rows: x.doc.rows }));
  return mustShow && sims.length ? { dir: H100_RERUN_DIR, mustShow, sims } : null;
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

export function h100RunSection(r: H100Run | null): string[] {
  if (!r) return [];
  const sim = r.sims[0].rows;
  const rows = r.mustShow.points.map((p) => {
    const s = sim.find((x) => x.dtype === p.dtype && x.miss === p.miss && x.batch === p.batch && x.prompt === p.prompt && x.cache === p.cache);
    return [p.dtype, String(p.cache), p.miss, String(p.batch), p.ms.mean.toFixed(2), p.tokS.toFixed(1), `${(100 * p.hitRate).toFixed(1)}%`, p.gbMoved.toFixed(2), s ? s.simulatedMs.toFixed(2) : '-', s ? pct(s.error) : '-'];
  });
  const all = r.sims.flatMap((s) => s.rows);
  return [
    `### A second card: ${r.mustShow.device}`,
    '',
    `Device calls on one warm ${r.mustShow.device} (\`${r.dir}/\`, README there): ESFT routing replayed, 12 GiB, lru, 16 new tokens, one warm-up and three timed generations per point in call 1 (the must-show bench and the int8/int4 grid), two in the bf16 grid (calls 2 and 3). The must-show points, bf16 beside int8 and int4 in one bench (\`${r.mustShow.file}\`), the cache that fits per dtype:`,
    '',
    table(['dtype', 'slots', 'miss', 'batch', 'ms/token', 'tokens/s', 'hit rate', 'GB moved', 'simulated ms/token', 'error'], rows),
    '',
    `The simulator against these measurements (${r.sims.map((s) => `\`${s.file}\``).join(', ')}): within 10% at ${all.filter((x) => Math.abs(x.error) <= 0.1).length} of ${all.length} points.`,
    '',
    table(['configuration', 'points', 'within 10%', 'largest error', 'profile'], r.sims.flatMap(agreement)),
    '',
    `![H100 must-show](${r.mustShow.file.replace(/^reports\//, '').replace(/bench\.json$/, 'bench.png')})`,
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
