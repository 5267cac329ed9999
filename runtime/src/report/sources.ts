/**
 * The committed result files REPORT.md is built from, read and checked just enough to be used. Every number
 * in the report comes from one of these; a file that is absent makes its section say so.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readLatestRun, type LatestRun } from './latest-run-section.js';
import { readH100Runs, type H100Run } from './h100-run-section.js';
import type { ValidationResult } from '../validate/result.js';
import { readOffloadRun, type OffloadRunSources } from './offload-run-sections.js';
import { readQuantSources, type QuantSources } from './quant-sources.js';
import { json } from './read-json.js';

export interface Stat {
  mean: number;
  p50: number;
  p99: number;
}

/** A measured point of any system, in one shape. */
export interface Measured {
  system: string;
  batch: number;
  prompt: number;
  ms: Stat;
  tokS: number;
  /** the file it comes from, relative to the repository root */
  source: string;
  routing: string;
  hitRate?: number;
  simMs?: number;
  /**
   * routed experts missed per cache step (hits and requests of the whole point: its prefill positions count
   * as cache steps too, runtime/src/offload/README.md), i.e. what one decode step copies on average
   */
  missesPerStep?: number;
}

export interface SimRow {
  policy: string;
  cache: number;
  batch: number;
  prefetch: string;
  miss: string;
  hit_rate: number;
  tpt_mean_ms: number;
  copy_busy_ms: number;
  gpu_idle_ms: number;
  gpu_expert_ms: number;
  gpu_non_expert_ms: number;
  step_ms: number;
}

export interface Sources {
  root: string;
  measured: Measured[];
  device: string | null;
  offloadGrid: string | null;
  sim: { name: string; file: string; routing: string; calibration: string; generatedBy: string; rows: SimRow[] }[];
  calibration: { file: string; label: string; h2dGBps: number; perCopyMs: number; expertBytes: number; cpuWorkers: number; cpuExpertMs1: number; gpuExpertMs1: number } | null;
  predictorSim: { file: string; label: string; fetch: Record<string, { hitRate: number; timePerTokenMs: number }>; cpu: Record<string, { hitRate: number; timePerTokenMs: number }> } | null;
  tokensIdentical: { file: string; runs: number; allIdentical: boolean } | null;
  validations: { dir: string; result: ValidationResult }[];
  /** issue 13 (quantized experts) and issue 12's GPU prefetch on the H200, peers (quant-sources.ts) */
  quant: QuantSources;
  /** issue 12's 2026-12-02 run: naive, fetch, hybrid, prefetchers in one run; the fetch grid (offload-run-sections.ts) */
  offloadRun: OffloadRunSources;
  /** the newest one-call must-show run, with GPU sampling and resident steps (latest-run-section.ts) */
  latestRun: LatestRun | null;
  /** the must-show points and both grids again on an H100, with their re-simulation, per run, newest first (h100-run-section.ts) */
  h100Runs: H100Run[];
}


interface BenchPoint {
  batch: number;
  prompt: number;
  msPerToken: Stat;
  decodeTokensPerSecond: number;
  cache?: number;
  policy?: string;
  routing?: string;
  hitRate?: number;
  simMsPerToken?: number;
  hits?: number;
  requests?: number;
  warmup?: number;
  repeats?: number;
  newTokens?: number;
}

/** The grid's name of a quantized-experts system (experiments.ts lists them in SYSTEMS). */
export const quantSystem = (dtype: string, cache: number, prefetch: string) => `${dtype} experts, cache ${cache} lru${prefetch === 'none' ? '' : `, ${prefetch} prefetch`}`;

const missesPerStep = (p: BenchPoint) => (p.requests! - p.hits!) / ((p.warmup! + p.repeats!) * (p.prompt + p.newTokens! - 1));

export function readSources(root: string): Sources {
  const measured: Measured[] = [];
  const gridRel = 'reports/bench/offload-h200-grid/summary.json';
  const grid = json<{ device: string; grid: BenchPoint[]; naive: BenchPoint }>(root, gridRel);
  if (grid) {
    for (const p of grid.grid)
      measured.push({ system: `cache ${p.cache} ${p.policy}`, batch: p.batch, prompt: p.prompt, ms: p.msPerToken, tokS: p.decodeTokensPerSecond, source: gridRel, routing: p.routing!, hitRate: p.hitRate, simMs: p.simMsPerToken, missesPerStep: missesPerStep(p) });
    const n = grid.naive;
    measured.push({ system: 'naive on-demand (cache 0)', batch: n.batch, prompt: n.prompt, ms: n.msPerToken, tokS: n.decodeTokensPerSecond, source: gridRel, routing: n.routing!, hitRate: 0, missesPerStep: missesPerStep(n) });
  }
  const accRel = 'reports/bench/offload-h200-grid/accelerate-b1-p128.json';
  const acc = json<{ batch: number; prompt: number; msPerToken: Stat; routing: string; transformers: string; accelerate: string }>(root, accRel);
  if (acc) measured.push({ system: 'transformers + accelerate (CPU offload)', batch: acc.batch, prompt: acc.prompt, ms: acc.msPerToken, tokS: (acc.batch * 1e3) / acc.msPerToken.mean, source: accRel, routing: `${acc.routing} (transformers ${acc.transformers}, accelerate ${acc.accelerate})` });
  const resRel = 'reports/bench/cuda-backend-h200/bench.json';
  const res = json<{ grid: BenchPoint[]; baseline: { transformers: string; grid: BenchPoint[] } | null }>(root, resRel);
  if (res) {
    for (const p of res.grid) measured.push({ system: 'all-resident (moe-offload CUDA)', batch: p.batch, prompt: p.prompt, ms: p.msPerToken, tokS: p.decodeTokensPerSecond, source: resRel, routing: 'router (random weights)' });
    for (const p of res.baseline?.grid ?? []) measured.push({ system: 'transformers (all resident)', batch: p.batch, prompt: p.prompt, ms: p.msPerToken, tokS: p.decodeTokensPerSecond, source: resRel, routing: `router (random weights) (transformers ${res.baseline!.transformers})` });
  }
  // Issue 12: misses fetched / on the CPU / hybrid at the cache that fits prompt 128 (miss-grid-report.ts).
  const missRel = 'reports/bench/miss-h200/summary.json';
  const miss = json<{ rows: Array<{ cache: number; policy: string; miss: string; batch: number; prompt: number; msPerToken: number; p50: number; p99: number; tokensPerSecond: number; simMsPerToken: number; hitRate: number }> }>(root, missRel);
  for (const r of miss?.rows ?? []) {
    const system = r.miss === 'fetch' ? `cache ${r.cache} ${r.policy}, misses fetched` : `cache ${r.cache} ${r.policy} + CPU (${r.miss})`;
    measured.push({ system, batch: r.batch, prompt: r.prompt, ms: { mean: r.msPerToken, p50: r.p50, p99: r.p99 }, tokS: r.tokensPerSecond, source: missRel, routing: 'ESFT summary + translation + intent (replayed)', hitRate: r.hitRate, simMs: r.simMsPerToken });
  }
  // Issue 16: the server at concurrency C (C streaming clients), ms per output token = TPOT per request.
  const serveRel = 'reports/bench/serve-h200/serve-bench.json';
  const serve = json<{ levels: Array<{ concurrency: number; promptTokens: number; outputTokensPerSecond: number; tpotMs: Stat }> }>(root, serveRel);
  for (const l of serve?.levels ?? []) {
    measured.push({ system: 'serve, cache 16 lru (streaming clients; batch = concurrency)', batch: l.concurrency, prompt: l.promptTokens, ms: l.tpotMs, tokS: l.outputTokensPerSecond, source: serveRel, routing: 'ESFT summary (replayed, one lane per admitted request)' });
  }
  // Issue 13: int8 / int4 experts at the cache that fits 12 GiB, oracle prefetch, the whole batch x prompt grid.
  const quant = readQuantSources(root);
  for (const p of quant.grid?.points ?? []) {
    if (p.miss !== 'fetch') continue;
    measured.push({ system: quantSystem(p.dtype, p.cache, p.prefetch), batch: p.batch, prompt: p.prompt, ms: p.ms, tokS: p.tokS, source: p.file, routing: 'ESFT summary + translation + intent (replayed)', hitRate: p.hitRate });
  }
  const sim: Sources['sim'] = [];
  for (const name of ['esft-intent', 'synthetic-zipf-sticky', 'sharegpt-h200']) {
    const rel = `reports/sim/${name}/results.json`;
    const j = json<{ routing: string; calibration: string; generatedBy: string; rows: SimRow[] }>(root, rel);
    if (j) sim.push({ name, file: rel, routing: j.routing, calibration: j.calibration, generatedBy: j.generatedBy, rows: j.rows });
  }
  const calRel = 'sim/calibration/h200-measured.json';
  const cal = json<{ label: string; expertBytes: number; transfer: { h2dGBps: number; perCopyMs: number }; cpu: { workers: number; expertMs: [number, number][] }; gpu: { expertMs: [number, number][] } }>(root, calRel);
  const predRel = 'reports/predictor/report.json';
  type Res = { hitRate: number; timePerTokenMs: number };
  const pred = json<{ runs: Record<string, { label: string; sim: { miss: string; none: Res; oracle: Res; topK: Res; gated: Res }[] }> }>(root, predRel);
  const run = pred?.runs['k1-sequence'];
  const pick = (miss: string): Record<string, Res> => {
    const s = run?.sim.find((x) => x.miss === miss);
    return s ? { none: s.none, oracle: s.oracle, topK: s.topK, gated: s.gated } : {};
  };
  const checkRel = 'reports/bench/offload-h200/check.json';
  const check = json<{ offloadCheck?: { allIdentical: boolean; cases: unknown[] } }>(root, checkRel);
  const validations: Sources['validations'] = [];
  const vdir = join(root, 'reports', 'validate');
  if (existsSync(vdir)) {
    for (const d of readdirSync(vdir).sort()) {
      const r = json<ValidationResult>(root, `reports/validate/${d}/validation.json`);
      if (r) validations.push({ dir: `reports/validate/${d}`, result: r });
    }
    // oldest first, so the last one read is the newest run (directory names are not always dated)
    validations.sort((a, b) => String(a.result.date ?? '').localeCompare(String(b.result.date ?? '')) || a.dir.localeCompare(b.dir));
  }
  return {
    root,
    measured,
    device: grid?.device ?? null,
    offloadGrid: grid ? gridRel : null,
    sim,
    calibration: cal ? { file: calRel, label: cal.label, h2dGBps: cal.transfer.h2dGBps, perCopyMs: cal.transfer.perCopyMs, expertBytes: cal.expertBytes, cpuWorkers: cal.cpu.workers, cpuExpertMs1: cal.cpu.expertMs[0][1], gpuExpertMs1: cal.gpu.expertMs[0][1] } : null,
    predictorSim: run ? { file: predRel, label: run.label, fetch: pick('fetch'), cpu: pick('cpu') } : null,
    tokensIdentical: check?.offloadCheck ? { file: checkRel, runs: check.offloadCheck.cases.length, allIdentical: check.offloadCheck.allIdentical } : null,
    validations,
    quant,
    offloadRun: readOffloadRun(root),
    latestRun: readLatestRun(root),
    h100Runs: readH100Runs(root),
  };
}
