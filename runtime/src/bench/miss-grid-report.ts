/**
 * Issue 12's report from device results: offload bench runs over miss modes (fetch, cpu, hybrid), each
 * point beside the simulator on the same lanes (replayed here from the same traces) with a calibration
 * profile named on the command line, so the prediction can use a `host` section measured in an earlier
 * run. Writes README.md (tables), summary.json and charts.
 *
 *   node dist/runtime/src/bench/miss-grid-report.js --bench a.json[,b.json] --traces summary.arrow,translation.arrow,intent.arrow \
 *        --calibration sim/calibration/h200-measured.json --out reports/bench/miss-h200
 *
 * Nothing is measured here: every measured figure is read from the bench files, which are named in the output.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { loadCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { writeChart } from '../../../core/src/charts.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { requiredScriptArg } from '../../../core/src/options.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { pct } from './offload-bench.js';
import { benchLanes, predictBenchPoint, withCpuWorkers } from './sim-prediction.js';

interface MissPoint {
  cache: number;
  policy: PolicyName;
  miss?: MissMode;
  batch: number;
  prompt: number;
  newTokens: number;
  repeats: number;
  warmup: number;
  msPerToken: { mean: number; p50: number; p99: number };
  decodeTokensPerSecond: number;
  hitRate: number;
  simHitRate: number | null;
  hitsMatchSim: boolean | null;
  cpuExpertsPerToken?: number;
  cpuWorkers?: number | null;
  cpuFill?: boolean | null;
  cpuAdmit?: boolean | null;
  /** absent in files before the CPU correction (they decided with the profile's times) */
  cpuEstimate?: 'measured' | 'profile' | null;
  cpuBusyShare?: number;
  missRule?: { rows: number; agree: number; ties: number; disagree: number } | null;
  bytesH2D: number;
  deviceUsedPeakBytes: number;
  routing: string;
  device: { name?: string };
}

export interface MissReportRow {
  source: string;
  cache: number;
  policy: string;
  miss: MissMode;
  batch: number;
  prompt: number;
  msPerToken: number;
  p50: number;
  p99: number;
  tokensPerSecond: number;
  simMsPerToken: number;
  simError: number;
  hitRate: number;
  hitsMatchSim: boolean | null;
  cpuExpertsPerToken: number;
  cpuBusyShare: number | null;
  ruleAgrees: string;
  gbMoved: number;
  peakGiB: number;
}

function points(path: string): MissPoint[] {
  let doc: { grid?: MissPoint[]; offload?: unknown; options?: { warmup?: number } };
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UserError(`--bench ${path}: ${(err as Error).message}`);
  }
  if (!doc.offload || !Array.isArray(doc.grid)) throw new UserError(`--bench ${path}: not an offload bench (no offload grid)`);
  return doc.grid.map((p) => ({ ...p, warmup: doc.options?.warmup ?? 0 }));
}

const f2 = (x: number) => x.toFixed(2);

export function missReportRows(benches: string[], replays: RoutingReplay[], calibration: CostModel): MissReportRow[] {
  const rows: MissReportRow[] = [];
  for (const path of benches) {
    for (const p of points(path)) {
      const miss = p.miss ?? 'fetch';
      const shape = { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup: p.warmup, repeats: p.repeats };
      const { result, msPerToken } = predictBenchPoint(benchLanes(replays, shape), shape, {
        policy: p.policy, cacheSize: p.cache, prefetch: 'none', miss, calibration: withCpuWorkers(calibration, p.cpuWorkers), cpuFill: p.cpuFill ?? true, cpuAdmit: p.cpuAdmit ?? true,
        cpuEstimate: p.cpuEstimate ?? 'profile',
      });
      const sim = { hitRate: result.hitRate, msPerToken: msPerToken.mean };
      if (p.simHitRate !== null && Math.abs(sim.hitRate - p.simHitRate) > 1e-12) {
        throw new UserError(`--traces: the lanes rebuilt for ${miss} B${p.batch} P${p.prompt} give hit rate ${sim.hitRate}, the bench recorded ${p.simHitRate}: not the bench's traces or order`);
      }
      const r = p.missRule;
      rows.push({
        source: basename(path), cache: p.cache, policy: p.policy, miss, batch: p.batch, prompt: p.prompt,
        msPerToken: p.msPerToken.mean, p50: p.msPerToken.p50, p99: p.msPerToken.p99, tokensPerSecond: p.decodeTokensPerSecond,
        simMsPerToken: sim.msPerToken, simError: sim.msPerToken / p.msPerToken.mean - 1,
        hitRate: p.hitRate, hitsMatchSim: p.hitsMatchSim, cpuExpertsPerToken: p.cpuExpertsPerToken ?? 0,
        cpuBusyShare: miss === 'fetch' ? null : (p.cpuBusyShare ?? null),
        ruleAgrees: r ? `${r.agree}/${r.rows}${r.ties ? ` (+${r.ties} ties)` : ''}` : '-',
        gbMoved: p.bytesH2D / 1e9, peakGiB: p.deviceUsedPeakBytes / 2 ** 30,
      });
    }
  }
  return rows;
}

export async function writeMissGridReport(o: { bench: string[]; traces: string[]; calibration: string; out: string }): Promise<string[]> {
  const calibration = loadCalibration(o.calibration);
  const replays: RoutingReplay[] = o.traces.map((path) => ({ path, corpus: toSequences(readTrace(path)) }));
  const rows = missReportRows(o.bench, replays, calibration);
  const device = points(o.bench[0])[0]?.device?.name ?? 'the GPU machine';
  const order = (m: string) => ['fetch', 'cpu', 'hybrid'].indexOf(m);
  rows.sort((a, b) => a.cache - b.cache || a.batch - b.batch || a.prompt - b.prompt || order(a.miss) - order(b.miss));
  const worst = Math.max(...rows.map((r) => Math.abs(r.simError)));
  const md = [
    `# Misses computed on the CPU, on ${device} (issue 12)`,
    '',
    `Generated by runtime/src/bench/miss-grid-report.ts from ${o.bench.map((p) => basename(p)).join(', ')} (device runs of tools/gpu/issue12.sh) and the traces ${o.traces.map((p) => basename(p)).join(', ')}.`,
    'Full-size synthetic DeepSeek-V2-Lite checkpoint (random weights, exact Hub layout); routing **replayed from the real ESFT traces** (the lanes each point used are rebuilt here and checked by the simulator\'s hit rate). 12 GiB GPU budget; policy lru.',
    'ms/token = one decode step through the Engine API, every point from a cold cache. fetch: every miss copied to the GPU (issue 6); cpu: every miss computed on the CPU from the pinned host copy; hybrid: per expert by the cost model (sim/src/cost/miss-rule.ts, the same rule in C++).',
    `Simulated: the simulator on the same lanes, policy, cache, batch, miss mode and CPU workers, with ${basename(o.calibration)} (${calibration.label}); error = simulated / measured - 1. Largest |error|: ${(100 * worst).toFixed(1)}%.`,
    '',
    '| cache | miss | batch | prompt | ms/token | p50 | p99 | tok/s | simulated ms/token | error | hit rate | = sim | CPU experts/token | CPU busy | runtime decisions = rule | GB moved | peak GPU GiB |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.cache} | ${r.miss} | ${r.batch} | ${r.prompt} | ${f2(r.msPerToken)} | ${f2(r.p50)} | ${f2(r.p99)} | ${r.tokensPerSecond.toFixed(1)} | ${f2(r.simMsPerToken)} | ${(100 * r.simError).toFixed(1)}% | ${pct(r.hitRate)} | ${r.hitsMatchSim === null ? '-' : r.hitsMatchSim ? 'yes' : 'NO'} | ${r.cpuExpertsPerToken.toFixed(1)} | ${r.cpuBusyShare === null ? '-' : pct(r.cpuBusyShare)} | ${r.ruleAgrees} | ${r.gbMoved.toFixed(1)} | ${r.peakGiB.toFixed(2)} |`),
    '',
  ];
  const values = rows.flatMap((r) => [
    { miss: r.miss, batch: r.batch, prompt: `prompt ${r.prompt}`, ms: r.msPerToken, tokS: r.tokensPerSecond, kind: 'measured' },
    { miss: r.miss, batch: r.batch, prompt: `prompt ${r.prompt}`, ms: r.simMsPerToken, tokS: (1000 * r.batch) / r.simMsPerToken, kind: 'simulated' },
  ]);
  const panel = (field: 'ms' | 'tokS', title: string) => ({
    title,
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 'batch', type: 'ordinal' as const, title: 'batch' },
      y: { field, type: 'quantitative' as const, title },
      color: { field: 'miss', type: 'nominal' as const, title: 'miss mode', sort: ['fetch', 'cpu', 'hybrid'] },
      strokeDash: { field: 'kind', type: 'nominal' as const, title: null },
      column: { field: 'prompt', type: 'nominal' as const, title: null },
    },
    width: 180,
    height: 200,
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Misses fetched, on the CPU, or hybrid: measured (solid) and simulated (dashed), ${device}, ESFT routing`,
    data: { values },
    vconcat: [panel('ms', 'ms per output token'), panel('tokS', 'output tokens / s')],
  };
  mkdirSync(o.out, { recursive: true });
  const w = await writeChart(spec, join(o.out, 'miss-grid'));
  md.push('![miss grid](miss-grid.png)', '');
  writeFileAtomic(join(o.out, 'summary.json'), JSON.stringify({ device, sources: o.bench.map((p) => basename(p)), calibration: basename(o.calibration), rows }, null, 2) + '\n');
  writeFileAtomic(join(o.out, 'README.md'), md.join('\n'));
  return [w.spec, w.svg, w.png, join(o.out, 'summary.json'), join(o.out, 'README.md')];
}

if (process.argv[1] && process.argv[1].endsWith('miss-grid-report.js')) {
  writeMissGridReport({ bench: requiredScriptArg('--bench').split(','), traces: requiredScriptArg('--traces').split(','), calibration: requiredScriptArg('--calibration'), out: requiredScriptArg('--out') })
    .then((files) => process.stdout.write(files.join('\n') + '\n'))
    .catch((err: Error) => {
      process.stderr.write(`miss-grid-report: ${err.message}\n`);
      process.exitCode = 1;
    });
}
