/**
 * REPORT.md's sections on the 2026-12-03 H200 offload run (issue 12: naive, fetch-only, cpu and hybrid with
 * both fills in one run; the grids of every mode; the simulator with the same run's calibrate against every
 * point). Every number comes from reports/bench/offload-h200-2026-12-03/.
 */
import { cpuFillName } from '../offload/miss-options.js';
import { json } from './read-json.js';
import { table } from './experiments.js';

export const OFFLOAD_RUN_DIR = 'reports/bench/offload-h200-2026-12-03';
/** The grids the section tabulates (folder, label), in table order. */
const GRIDS: Array<[string, string]> = [['grid-fetch', 'fetch'], ['grid-cpu-none', 'cpu, fill none'], ['grid-hybrid-none', 'hybrid, fill none'], ['grid-cpu', 'cpu, fill background'], ['grid-hybrid-bg', 'hybrid, fill background']];

interface RunPoint {
  cache: number;
  miss: string;
  cpuFill?: boolean | null;
  cpuAdmit?: boolean | null;
  prefetch: string;
  batch: number;
  prompt: number;
  msPerToken: { mean: number; p50: number; p99: number };
  decodeTokensPerSecond: number;
  hitRate: number;
  prefetchStats: { precision: number | null; recall: number | null; lateHits: number; wastedBytes: number } | null;
}
interface SimRow { miss: string; fill: string | null; prefetch: string; cache: number; batch: number; prompt: number; measuredMs: number; simulatedMs: number; error: number }

export interface OffloadRunSources {
  mustShow: { file: string; points: RunPoint[] } | null;
  grids: Array<{ file: string; label: string; points: RunPoint[] }>;
  simVs: { file: string; profile: string; rows: SimRow[] } | null;
}

export function readOffloadRun(root: string): OffloadRunSources {
  const bench = (name: string) => {
    const file = `${OFFLOAD_RUN_DIR}/${name}/bench.json`;
    const j = json<{ grid: RunPoint[] }>(root, file);
    return j ? { file, points: j.grid } : null;
  };
  const simFile = `${OFFLOAD_RUN_DIR}/sim-vs-measured.json`;
  const s = json<{ profile: string; rows: SimRow[] }>(root, simFile);
  const grids = GRIDS.flatMap(([name, label]) => {
    const b = bench(name);
    return b ? [{ ...b, label }] : [];
  });
  return { mustShow: bench('must-show'), grids, simVs: s ? { file: simFile, profile: s.profile, rows: s.rows } : null };
}

const f2 = (x: number) => x.toFixed(2);
const f1 = (x: number) => x.toFixed(1);
const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);
const spct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
/** A point's --cpu-fill (null for fetch), as sim-vs-bench names it. */
const fillOf = (p: RunPoint) => cpuFillName(p.cpuFill, p.cpuAdmit);

/** The files the sections read (for the report's source list). */
export function offloadRunFiles(o: OffloadRunSources): string[] {
  return [o.mustShow?.file, ...o.grids.map((g) => g.file), o.simVs?.file].filter((f): f is string => f !== undefined);
}

/** At batch 1: hybrid with each fill against fetch, and why background fill does not help there. */
function fillsAtBatch1(points: RunPoint[]): string {
  const at = (miss: string, fill: string | null) => points.find((p) => p.batch === 1 && p.miss === miss && fillOf(p) === fill && p.prefetch === 'none');
  const f = at('fetch', null), bg = at('hybrid', 'background'), none = at('hybrid', 'none');
  if (!f || !bg || !none) return '';
  return (
    `At batch 1 hybrid takes ${f2(none.msPerToken.mean)} ms with fill none against ${f2(bg.msPerToken.mean)} with background fill and ${f2(f.msPerToken.mean)} fetched: ` +
    'with background fill every expert computed on the CPU is still copied into its slot, so the copy engine carries what it carries under fetch and the CPU only reorders the work; with none the CPU-computed misses never cross PCIe and the copy engine and the CPU workers share the misses.'
  );
}

/** The oracle's net effect on hybrid with fill none, by batch, and why it is mostly negative. */
function oracleEffect(g: { points: RunPoint[] } | undefined): string {
  if (!g) return '';
  const byBatch = new Map<number, number[]>();
  for (const p of g.points.filter((x) => x.prefetch === 'oracle')) {
    const n = g.points.find((x) => x.prefetch === 'none' && x.batch === p.batch && x.prompt === p.prompt);
    if (n) byBatch.set(p.batch, [...(byBatch.get(p.batch) ?? []), p.msPerToken.mean / n.msPerToken.mean - 1]);
  }
  if (!byBatch.size) return '';
  const parts = [...byBatch.entries()].sort((a, b) => a[0] - b[0]).map(([b, e]) => `batch ${b} ${spct(Math.min(...e))} to ${spct(Math.max(...e))}`);
  return (
    `Prefetch beside CPU experts: the oracle (the upper bound of a predictor) changes hybrid's time per token with fill none by ${parts.join(', ')} (the trained predictor, with background fill: reports/bench/offload-h200-2026-12-02b/grid-hybrid/). ` +
    'Where it is slower, the prefetch copies take the link from the demand copies of experts the CPU would have computed anyway, and a prefetched expert still in flight is waited for instead of computed.'
  );
}

/** The must-show table, what it says against issue 12's targets, the grids and the simulator's errors. */
export function offloadRunSection(o: OffloadRunSources): string[] {
  const out = ['### Misses on the CPU, bf16 experts, one run (issue 12)', ''];
  const m = o.mustShow;
  if (!m) return [...out, `No committed run in ${OFFLOAD_RUN_DIR}.`, ''];
  const sim = (p: RunPoint) =>
    o.simVs?.rows.find((r) => r.cache === p.cache && r.miss === p.miss && (r.fill ?? null) === fillOf(p) && r.prefetch === p.prefetch && r.batch === p.batch && r.prompt === p.prompt) ?? null;
  out.push(
    `\`${m.file}\` (NVIDIA H200, ESFT routing replayed, 12 GiB; cache 0 = naive on-demand, 19 = the most bf16 slots the budget holds at prompt 128; fill = --cpu-fill; simulated with \`${o.simVs?.profile ?? '-'}\`):`,
    '',
    table(
      ['cache', 'miss', 'fill', 'batch', 'ms/token', 'p99', 'tok/s', 'hit rate', 'simulated ms', 'error'],
      m.points.map((p) => {
        const s = sim(p);
        return [String(p.cache), p.miss, fillOf(p) ?? '-', String(p.batch), f2(p.msPerToken.mean), f2(p.msPerToken.p99), f1(p.decodeTokensPerSecond), pct(p.hitRate), s ? f2(s.simulatedMs) : '-', s ? spct(s.error) : '-'];
      }),
    ),
    '',
  );
  const cached = m.points.filter((p) => p.cache > 0);
  const best16 = cached.filter((p) => p.batch === 16).sort((a, b) => b.decodeTokensPerSecond - a.decodeTokensPerSecond)[0];
  const best1 = cached.filter((p) => p.batch === 1).sort((a, b) => a.msPerToken.mean - b.msPerToken.mean)[0];
  const naive1 = m.points.find((p) => p.cache === 0 && p.miss === 'fetch' && p.batch === 1);
  const naive16 = m.points.find((p) => p.cache === 0 && p.miss === 'fetch' && p.batch === 16);
  if (best16 && best1 && naive1 && naive16) {
    const name = (p: RunPoint) => `${p.miss}${fillOf(p) ? ` (fill ${fillOf(p)})` : ''}`;
    out.push(
      `Batch 16: the best is ${name(best16)} at ${f1(best16.decodeTokensPerSecond)} tokens/s (target >= 100: ${best16.decodeTokensPerSecond >= 100 ? 'met' : 'not met'}), naive ${f1(naive16.decodeTokensPerSecond)}. ` +
        `Batch 1: the best is ${name(best1)} at ${f2(best1.msPerToken.mean)} ms/token (target <= 22: ${best1.msPerToken.mean <= 22 ? 'met' : 'not met'}); naive ${f2(naive1.msPerToken.mean)}. ` +
        fillsAtBatch1(cached),
      '',
    );
  }
  if (o.grids.length) {
    const shapes = [...new Set(o.grids[0].points.map((p) => `${p.batch}/${p.prompt}`))].sort((a, b) => {
      const [ab, ap] = a.split('/').map(Number);
      const [bb, bp] = b.split('/').map(Number);
      return ab - bb || ap - bp;
    });
    const rows: string[][] = [];
    for (const g of o.grids) {
      for (const pf of [...new Set(g.points.map((p) => p.prefetch))]) {
        rows.push([g.label, pf, ...shapes.map((k) => {
          const [b, pr] = k.split('/').map(Number);
          const p = g.points.find((x) => x.batch === b && x.prompt === pr && x.prefetch === pf);
          const s = p ? sim(p) : null;
          return p ? `${f1(p.msPerToken.mean)}${s ? ` (${spct(s.error)})` : ''}` : '-';
        })]);
      }
    }
    out.push(
      `Batch x prompt, cache ${o.grids[0].points[0]?.cache ?? '-'}, ms per output token (simulated error), one run per grid (${o.grids.map((g) => `\`${g.file}\``).join(', ')}):`,
      '',
      table(['mode', 'prefetch', ...shapes.map((k) => `B${k.replace('/', ' P')}`)], rows),
      '',
      oracleEffect(o.grids.find((g) => g.label === 'hybrid, fill none')),
      '',
    );
  }
  if (o.simVs) {
    const errs = (f: (r: SimRow) => boolean) => o.simVs!.rows.filter(f).map((r) => r.error);
    const rng = (xs: number[]) => (xs.length ? `${spct(Math.min(...xs))} to ${spct(Math.max(...xs))}` : '-');
    out.push(
      `Simulated against measured (\`${o.simVs.file}\`, profile \`${o.simVs.profile}\`: this run's calibrate plus its all-resident points' host work; nothing from the compared points): misses fetched ${rng(errs((r) => r.miss === 'fetch'))}; ` +
        `hybrid with fill none and no prefetch ${rng(errs((r) => r.miss === 'hybrid' && r.fill === 'none' && r.prefetch === 'none'))}; cpu with fill none ${rng(errs((r) => r.miss === 'cpu' && r.fill === 'none'))}; ` +
        `background fill ${rng(errs((r) => r.fill === 'background'))}; oracle prefetch beside CPU experts ${rng(errs((r) => r.miss !== 'fetch' && r.prefetch === 'oracle'))}.`,
      '',
    );
  }
  return out;
}
