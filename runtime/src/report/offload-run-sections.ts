/**
 * REPORT.md's sections on the 2026-12-02 H200 offload run (issue 12: naive, fetch-only, hybrid and the
 * prefetchers in one run; the fetch grid; the simulator with sim/calibration/h200-offload.json against every
 * point). Every number comes from reports/bench/offload-h200-2026-12-02/.
 */
import { json } from './read-json.js';
import { table } from './experiments.js';

export const OFFLOAD_RUN_DIR = 'reports/bench/offload-h200-2026-12-02';

interface RunPoint {
  cache: number;
  miss: string;
  prefetch: string;
  batch: number;
  prompt: number;
  msPerToken: { mean: number; p50: number; p99: number };
  decodeTokensPerSecond: number;
  hitRate: number;
  prefetchStats: { precision: number | null; recall: number | null; lateHits: number; wastedBytes: number } | null;
}
interface SimRow { miss: string; prefetch: string; cache: number; batch: number; prompt: number; measuredMs: number; simulatedMs: number; error: number }

export interface OffloadRunSources {
  mustShow: { file: string; points: RunPoint[] } | null;
  gridFetch: { file: string; points: RunPoint[] } | null;
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
  return { mustShow: bench('must-show'), gridFetch: bench('grid-fetch'), simVs: s ? { file: simFile, profile: s.profile, rows: s.rows } : null };
}

const f2 = (x: number) => x.toFixed(2);
const f1 = (x: number) => x.toFixed(1);
const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);
const spct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

/** The files the sections read (for the report's source list). */
export function offloadRunFiles(o: OffloadRunSources): string[] {
  return [o.mustShow?.file, o.gridFetch?.file, o.simVs?.file].filter((f): f is string => f !== undefined);
}

/** At batch 1: the trained predictor's net effect per miss mode, and why where it is negative. */
function predictedEffect(points: RunPoint[]): string {
  const effects = ['fetch', 'hybrid'].flatMap((miss) => {
    const none = points.find((p) => p.batch === 1 && p.miss === miss && p.prefetch === 'none');
    const pred = points.find((p) => p.batch === 1 && p.miss === miss && p.prefetch === 'predicted');
    return none && pred ? [{ miss, none: none.msPerToken.mean, pred: pred.msPerToken.mean, precision: pred.prefetchStats?.precision ?? null }] : [];
  });
  if (!effects.length) return '';
  const text = effects.map((e) => `${e.miss} ${f2(e.none)} -> ${f2(e.pred)} ms`).join(', ');
  const negative = effects.some((e) => e.pred > e.none);
  return (
    `The trained predictor at batch 1: ${text} (precision ${pct(effects[0].precision)}). ` +
    (negative ? "Where it is negative, the wrong experts take link time from demand copies, and one layer's compute is shorter than one copy, so right guesses one layer ahead still land late. " : '')
  );
}

/** At batch 1: hybrid against fetch without prefetch, and why when hybrid is slower. */
function hybridVsFetch(points: RunPoint[]): string {
  const f = points.find((p) => p.batch === 1 && p.miss === 'fetch' && p.prefetch === 'none');
  const h = points.find((p) => p.batch === 1 && p.miss === 'hybrid' && p.prefetch === 'none');
  if (!f || !h) return '';
  return h.msPerToken.mean > f.msPerToken.mean
    ? `Hybrid at batch 1 is slower than fetch (${f2(h.msPerToken.mean)} against ${f2(f.msPerToken.mean)} ms): each CPU-computed expert is also filled into its slot in the background, and the outputs' upload waits behind those fills on the one copy engine.`
    : `Hybrid at batch 1: ${f2(h.msPerToken.mean)} against ${f2(f.msPerToken.mean)} ms fetched.`;
}

/** The must-show table, what it says against issue 12's targets, the fetch grid and the simulator's errors. */
export function offloadRunSection(o: OffloadRunSources): string[] {
  const out = ['### Misses on the CPU and prefetch, bf16 experts, one run (issue 12)', ''];
  const m = o.mustShow;
  if (!m) return [...out, `No committed run in ${OFFLOAD_RUN_DIR}.`, ''];
  const sim = (p: RunPoint) => o.simVs?.rows.find((r) => r.cache === p.cache && r.miss === p.miss && r.prefetch === p.prefetch && r.batch === p.batch && r.prompt === p.prompt) ?? null;
  out.push(
    `\`${m.file}\` (NVIDIA H200, ESFT routing replayed, 12 GiB; cache 0 = naive on-demand, 19 = the most bf16 slots the budget holds at prompt 128; \`predicted\` = the predictor trained without the replayed summary task; simulated with \`${o.simVs?.profile ?? '-'}\`):`,
    '',
    table(
      ['cache', 'miss', 'prefetch', 'batch', 'ms/token', 'p99', 'tok/s', 'hit rate', 'precision / recall', 'late hits', 'wasted GB', 'simulated ms', 'error'],
      m.points.map((p) => {
        const s = sim(p);
        const ps = p.prefetchStats;
        return [String(p.cache), p.miss, p.prefetch, String(p.batch), f2(p.msPerToken.mean), f2(p.msPerToken.p99), f1(p.decodeTokensPerSecond), pct(p.hitRate), ps ? `${pct(ps.precision)} / ${pct(ps.recall)}` : '-', ps ? String(ps.lateHits) : '-', ps ? f2(ps.wastedBytes / 1e9) : '-', s ? f2(s.simulatedMs) : '-', s ? spct(s.error) : '-'];
      }),
    ),
    '',
  );
  const at = (cache: number, miss: string, prefetch: string, batch: number) => m.points.find((p) => p.cache === cache && p.miss === miss && p.prefetch === prefetch && p.batch === batch);
  const cached = m.points.filter((p) => p.cache > 0);
  const best16 = cached.filter((p) => p.batch === 16 && p.prefetch !== 'oracle').sort((a, b) => b.decodeTokensPerSecond - a.decodeTokensPerSecond)[0];
  const best1 = cached.filter((p) => p.batch === 1 && p.prefetch !== 'oracle').sort((a, b) => a.msPerToken.mean - b.msPerToken.mean)[0];
  const oracle1 = cached.filter((p) => p.batch === 1 && p.prefetch === 'oracle').sort((a, b) => a.msPerToken.mean - b.msPerToken.mean)[0];
  const naive1 = at(0, 'fetch', 'none', 1);
  const naive16 = at(0, 'fetch', 'none', 16);
  if (best16 && best1 && naive1 && naive16) {
    out.push(
      `Batch 16: the best realizable configuration (no oracle) is ${best16.miss} + ${best16.prefetch} prefetch at ${f1(best16.decodeTokensPerSecond)} tokens/s (target >= 100: ${best16.decodeTokensPerSecond >= 100 ? 'met' : 'not met'}), naive ${f1(naive16.decodeTokensPerSecond)}. ` +
        `Batch 1: the best realizable configuration is ${best1.miss} + ${best1.prefetch} prefetch at ${f2(best1.msPerToken.mean)} ms/token (target <= 22: ${best1.msPerToken.mean <= 22 ? 'met' : 'not met'})${oracle1 ? `; with the oracle (the upper bound) ${oracle1.miss} reaches ${f2(oracle1.msPerToken.mean)}` : ''}; naive ${f2(naive1.msPerToken.mean)}. ` +
        predictedEffect(cached) + hybridVsFetch(cached),
      '',
    );
  }
  const g = o.gridFetch;
  if (g) {
    const keys = [...new Set(g.points.map((p) => `${p.batch}/${p.prompt}`))];
    out.push(
      `Misses fetched, batch 1/4/8/16 x prompt 128/256/512, cache ${g.points[0]?.cache ?? '-'} (the budget's slots at the largest shape), without and with the oracle (\`${g.file}\`, one run):`,
      '',
      table(
        ['batch', 'prompt', 'ms/token', 'tok/s', 'oracle ms/token', 'oracle tok/s', 'simulated error (none / oracle)'],
        keys.map((k) => {
          const [b, p] = k.split('/').map(Number);
          const n = g.points.find((x) => x.batch === b && x.prompt === p && x.prefetch === 'none');
          const or = g.points.find((x) => x.batch === b && x.prompt === p && x.prefetch === 'oracle');
          const e = (x: RunPoint | undefined) => (x && sim(x) ? spct(sim(x)!.error) : '-');
          return [String(b), String(p), n ? f2(n.msPerToken.mean) : '-', n ? f1(n.decodeTokensPerSecond) : '-', or ? f2(or.msPerToken.mean) : '-', or ? f1(or.decodeTokensPerSecond) : '-', `${e(n)} / ${e(or)}`];
        }),
      ),
      '',
      'The same grid with misses on the CPU and with hybrid was run in the same device call, but both benches outran their step bounds and wrote no result (only the cpu log is kept, in the folder; its README recomputes those points).',
      '',
    );
  }
  if (o.simVs) {
    const errs = (f: (r: SimRow) => boolean) => o.simVs!.rows.filter(f).map((r) => r.error);
    const rng = (xs: number[]) => (xs.length ? `${spct(Math.min(...xs))} to ${spct(Math.max(...xs))}` : '-');
    out.push(
      `Simulated against measured (\`${o.simVs.file}\`, profile \`${o.simVs.profile}\`: calibrate on this machine + host work and CPU job times from offload benches, the CPU job curve from this run's hybrid points): misses fetched ${rng(errs((r) => r.miss === 'fetch'))}; hybrid ${rng(errs((r) => r.miss === 'hybrid'))}.`,
      '',
    );
  }
  return out;
}
