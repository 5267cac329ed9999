/**
 * The issue-6 report from device results: offloaded runs of `moe bench` (one or several bench.json with an
 * `offload` grid), the naive on-demand run (cache 0) and the transformers + accelerate baseline
 * (tools/oracle/bench_accelerate.py), side by side. Writes README.md (tables), summary.json and charts.
 *
 *   node dist/runtime/src/bench/offload-grid-report.js --bench a.json,b.json --naive n.json \
 *        --accelerate acc.json --out reports/bench/offload-h200-grid [--sim-traces summary.arrow,translation.arrow,intent.arrow]
 *
 * Nothing is measured here: every figure is read from the files named, and the files are named in the output.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { defaultCalibration } from '../../../sim/src/index.js';
import { benchLanes, predictBenchPoint } from './sim-prediction.js';
import { gib, pct } from './offload-bench.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { writeChart } from '../../../core/src/charts.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { requiredScriptArg } from '../../../core/src/options.js';

interface OffloadPoint {
  cache: number;
  policy: string;
  batch: number;
  prompt: number;
  newTokens: number;
  msPerToken: { mean: number; p50: number; p99: number };
  prefillMs: { mean: number };
  decodeTokensPerSecond: number;
  hitRate: number;
  simHitRate: number;
  hitsMatchSim: boolean;
  bytesH2D: number;
  enginePeakBytes: number;
  deviceUsedPeakBytes: number;
  routing: string;
  repeats: number;
  /** untimed generations before the timed ones (the bench's --warmup) */
  warmup: number;
  device: { name: string };
  /** set by this report: the simulator's time per decode step on the same lanes (simTraces) */
  simMsPerToken?: number;
}

interface AccelerateResult {
  device: string;
  budget: string;
  batch: number;
  prompt: number;
  msPerToken: { mean: number; p50: number; p99: number };
  prefillMs: number;
  peakGpuBytes: number;
  peakDeviceUsedBytes: number;
  routing: string;
  transformers: string;
  accelerate: string;
}


function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UserError(`${what} ${path}: ${(err as Error).message}`);
  }
}

function offloadPoints(path: string): OffloadPoint[] {
  const j = readJson(path, 'bench result') as { offload?: unknown; grid?: OffloadPoint[]; options?: { warmup?: number } };
  if (!j.offload || !Array.isArray(j.grid) || j.grid.length === 0) throw new UserError(`bench result ${path}: no offload grid (run moe bench with --cache)`);
  return j.grid.map((p) => ({ ...p, warmup: j.options?.warmup ?? 0 }));
}

/**
 * The simulator's prediction for a measured point (sim-prediction.ts): the same lanes (fillLanes, as the
 * bench built them from the same traces), the default (measured H200) profile, misses fetched. The lanes
 * are checked to be the bench's by the simulator's hit rate, which must equal the one the bench recorded.
 */
function simulatedMsPerToken(p: OffloadPoint, replays: RoutingReplay[]): number {
  const shape = { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup: p.warmup, repeats: p.repeats };
  const { result: r, msPerToken } = predictBenchPoint(benchLanes(replays, shape), shape, { policy: p.policy as 'lru', cacheSize: p.cache, prefetch: 'none', miss: 'fetch', calibration: defaultCalibration() });
  if (Math.abs(r.hitRate - p.simHitRate) > 1e-12) {
    throw new UserError(`--sim-traces: the lanes rebuilt for ${p.policy} B${p.batch} P${p.prompt} give hit rate ${r.hitRate}, the bench recorded ${p.simHitRate}: not the bench's traces or order`);
  }
  return msPerToken.mean;
}

/** One panel of the grid chart: a measure against batch size, a line per prompt length and policy. */
function lineByBatch(title: string, field: string, yTitle: string) {
  return {
    title,
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 'batch', type: 'quantitative' as const, scale: { type: 'log' as const, base: 2 }, axis: { values: [1, 4, 8, 16] } },
      y: { field, type: 'quantitative' as const, title: yTitle },
      color: { field: 'prompt', type: 'nominal' as const },
      strokeDash: { field: 'policy', type: 'nominal' as const },
      shape: { field: 'policy', type: 'nominal' as const },
    },
    width: 300,
    height: 220,
  };
}

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);

export async function writeOffloadGridReport(o: { bench: string[]; naive: string; accelerate: string; out: string; simTraces?: string[] }): Promise<string[]> {
  const points = o.bench.flatMap(offloadPoints).filter((p) => p.cache > 0);
  if (o.simTraces?.length) {
    const replays: RoutingReplay[] = o.simTraces.map((path) => ({ path, corpus: toSequences(readTrace(path)) }));
    for (const p of points) p.simMsPerToken = simulatedMsPerToken(p, replays);
  }
  const naive = offloadPoints(o.naive).find((p) => p.cache === 0);
  if (!naive) throw new UserError(`--naive ${o.naive}: no cache-0 point`);
  const acc = readJson(o.accelerate, 'accelerate result') as AccelerateResult;
  if (!acc.msPerToken || typeof acc.msPerToken.mean !== 'number') throw new UserError(`--accelerate ${o.accelerate}: no msPerToken`);
  const device = points[0].device.name;
  const ref = (policy: string) => points.find((p) => p.policy === policy && p.batch === acc.batch && p.prompt === acc.prompt);
  const sideBySide = [
    ...['lru', 'lfu'].flatMap((policy) => {
      const p = ref(policy);
      return p ? [{ system: `moe-offload, cache ${p.cache} ${policy}`, ms: p.msPerToken.mean, p99: p.msPerToken.p99, peakBytes: p.deviceUsedPeakBytes, hitRate: p.hitRate, routing: p.routing }] : [];
    }),
    { system: 'moe-offload, naive on-demand (cache 0)', ms: naive.msPerToken.mean, p99: naive.msPerToken.p99, peakBytes: naive.deviceUsedPeakBytes, hitRate: 0, routing: naive.routing },
    { system: `transformers ${acc.transformers} + accelerate ${acc.accelerate} CPU offload (max_memory ${acc.budget})`, ms: acc.msPerToken.mean, p99: acc.msPerToken.p99, peakBytes: acc.peakDeviceUsedBytes, hitRate: NaN, routing: acc.routing },
  ];
  const best = Math.min(...sideBySide.map((r) => r.ms));
  const md: string[] = [
    `# Offloading runtime on ${device}: ESFT routing replayed, 12 GiB budget (issue 6)`,
    '',
    `Generated by runtime/src/bench/offload-grid-report.ts from ${[...o.bench, o.naive, o.accelerate].map((p) => basename(p)).join(', ')} (device runs of tools/gpu/issue6.sh).`,
    'Full-size synthetic DeepSeek-V2-Lite checkpoint (random weights, exact Hub layout). Routing of the moe-offload rows: **replayed from the real ESFT traces** (the routing column of each point says which sequences); the arithmetic is real. The accelerate baseline runs its own router on the random weights (accelerate moves whole modules whatever the routing).',
    'ms/token = one decode step through the Engine API (host sampling included), every point from a cold expert cache. Peak GPU memory: device-wide used memory (cudaMemGetInfo, CUDA context included); grow-only buffers keep the largest shape run so far in a process, so a row can show the peak of an earlier, larger point of the same run.',
    '',
    `## Batch ${acc.batch}, prompt ${acc.prompt}: side by side`,
    '',
    '| system | ms/token mean | p99 | x slower than the best | peak GPU GiB | hit rate |',
    '| --- | --- | --- | --- | --- | --- |',
    ...sideBySide.map((r) => `| ${r.system} | ${f2(r.ms)} | ${f2(r.p99)} | ${f1(r.ms / best)} | ${gib(r.peakBytes)} | ${Number.isNaN(r.hitRate) ? '-' : pct(r.hitRate)} |`),
    '',
    '## The grid (cache 16 per MoE layer)',
    '',
    'Simulated ms/token: the simulator on the same lanes with the measured H200 profile (sim/calibration/h200-measured.json), decode steps only; error = simulated / measured - 1.',
    '',
    '| policy | batch | prompt | ms/token mean | p50 | p99 | simulated ms/token | error | decode tok/s | prefill ms | hit rate | simulator | equal | GB moved | peak GPU GiB |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...points
      .slice()
      .sort((a, b) => a.policy.localeCompare(b.policy) || a.batch - b.batch || a.prompt - b.prompt)
      .map((p) => `| ${p.policy} | ${p.batch} | ${p.prompt} | ${f2(p.msPerToken.mean)} | ${f2(p.msPerToken.p50)} | ${f2(p.msPerToken.p99)} | ${p.simMsPerToken !== undefined ? f2(p.simMsPerToken) : '-'} | ${p.simMsPerToken !== undefined ? `${((p.simMsPerToken / p.msPerToken.mean - 1) * 100).toFixed(1)}%` : '-'} | ${f1(p.decodeTokensPerSecond)} | ${f1(p.prefillMs.mean)} | ${pct(p.hitRate)} | ${pct(p.simHitRate)} | ${p.hitsMatchSim ? 'yes' : 'NO'} | ${f1(p.bytesH2D / 1e9)} | ${gib(p.deviceUsedPeakBytes)} |`),
    '',
    `Every point's hits equal the simulator's on the same lanes: ${points.every((p) => p.hitsMatchSim) && naive.hitsMatchSim ? 'yes, all' : 'NO, see the table'}.`,
    '',
  ];
  const rows = points.map((p) => ({ policy: p.policy, batch: p.batch, prompt: `prompt ${p.prompt}`, ms: p.msPerToken.mean, tokS: p.decodeTokensPerSecond }));
  const gridSpec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `moe-offload on ${device}, cache 16, ESFT routing replayed`,
    data: { values: rows },
    hconcat: [lineByBatch('ms per output token', 'ms', 'ms (mean)'), lineByBatch('decode throughput', 'tokS', 'output tokens / s')],
  };
  const sideSpec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Batch ${acc.batch}, prompt ${acc.prompt}, 12 GiB: ms per output token (log scale) on ${device}`,
    data: { values: sideBySide.map((r) => ({ system: r.system.replace(/ \(max_memory.*\)/, '').replace(/ \d+(\.\d+)+/g, ''), ms: r.ms })) },
    layer: [
      // A log-scale bar needs an explicit base (zero is not on the scale).
      { mark: 'bar', encoding: { x: { field: 'ms', type: 'quantitative', scale: { type: 'log', domain: [10, 10000] }, title: 'ms per output token' }, x2: { datum: 10 } } },
      { mark: { type: 'text', align: 'left', dx: 4 }, encoding: { x: { field: 'ms', type: 'quantitative' }, text: { field: 'ms', type: 'quantitative', format: '.1f' } } },
    ],
    encoding: { y: { field: 'system', type: 'nominal', sort: { field: 'ms' }, title: null, axis: { labelLimit: 400 } } },
    width: 420,
    height: 120,
  };
  mkdirSync(o.out, { recursive: true });
  const files: string[] = [];
  for (const [spec, name] of [[gridSpec, 'grid'], [sideSpec, 'side-by-side']] as const) {
    const w = await writeChart(spec, join(o.out, name));
    files.push(w.spec, w.svg, w.png);
    md.push(`![${name}](${name}.png)`, '');
  }
  const summary = { device, sources: [...o.bench, o.naive, o.accelerate].map((p) => basename(p)), sideBySide, grid: points.map(({ device: _d, ...p }) => p), naive };
  writeFileAtomic(join(o.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  writeFileAtomic(join(o.out, 'README.md'), md.join('\n'));
  return [...files, join(o.out, 'summary.json'), join(o.out, 'README.md')];
}

if (process.argv[1] && process.argv[1].endsWith('offload-grid-report.js')) {
  const simTraces = process.argv.includes('--sim-traces') ? requiredScriptArg('--sim-traces').split(',') : undefined;
  writeOffloadGridReport({ bench: requiredScriptArg('--bench').split(','), naive: requiredScriptArg('--naive'), accelerate: requiredScriptArg('--accelerate'), out: requiredScriptArg('--out'), simTraces })
    .then((files) => process.stdout.write(`wrote ${files.length} files\n`))
    .catch((err: Error) => {
      process.stderr.write(`offload-grid-report: ${err.message}\n`);
      process.exitCode = 2;
    });
}
