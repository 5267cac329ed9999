import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../engine/index.js';
import { openCheckpoint } from '../model/checkpoint.js';
import { checkAgreement, noiseFloor, TOLERANCE, type NoiseFloor, type PathAgreement } from './agreement.js';
import { benchPoint, type PointResult } from './engine-bench.js';
import { makeGrid, makePrompts, seededIds, type GridPoint } from './grid.js';
import { evaluateTargets, type TargetResult } from './targets.js';
import { runTransformers, type BaselineResult } from './transformers-baseline.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { checkOffloadTokens, type CheckPrefetch, type OffloadCheck } from './offload-check.js';
import { checkCpuMisses, type CpuMissCheck } from './cpu-miss-check.js';
import { hostProfileOf } from './offload-bench.js';
import { checkQuantized, type QuantCheck } from './quant-check.js';
import type { ExpertFormat } from '../offload/gpu-budget.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import type { CpuRounding } from '../offload/miss-options.js';
import { offloadTargets, runOffloadGrid, type OffloadBenchOptions } from './offload-bench.js';

export interface BenchOptions {
  model: string;
  device: 'cpu' | 'cuda';
  threads: number;
  batches: number[];
  prompts: number[];
  newTokens: number[];
  repeats: number;
  warmup: number;
  seed: number;
  baseline: boolean;
  check: boolean;
  checkSequences: number;
  checkLength: number;
  checkPrefill: number;
  /** also a float32 transformers reference (needs GPU memory for the model in fp32) */
  checkFp32: boolean;
  python: string;
  log: (line: string) => void;
  /** issue 6: routed experts offloaded, grid over cache sizes and policies (device cuda) */
  offload?: OffloadBenchOptions | null;
  /** issue 6: tokens identical between all-resident and offloaded runs (device cuda) */
  /** prefetches oracle / predicted run under replay of `routing` (predicted with `predictor`) */
  checkOffload?: { caches: number[]; policies: PolicyName[]; newTokens: number; prefetches?: CheckPrefetch[]; routing?: RoutingReplay[]; predictor?: string } | null;
  /** issue 12: logits with misses computed on the CPU against all-resident (device cuda) */
  checkMiss?: { misses: MissMode[]; cache: number; newTokens: number; rounding?: CpuRounding } | null;
  /** issue 13: quantized experts against the bf16 engine (teacher forcing; device cuda) */
  checkQuant?: { formats: ExpertFormat[]; sequences: number; length: number; newTokens: number; cache: number; rows?: number; device?: 'cpu' | 'cuda'; threads?: number } | null;
  /** no timing grid (e.g. only the offload check) */
  skipGrid?: boolean;
}

export interface BenchDocument {
  format: 'moe-offload-bench-v1';
  date: string;
  model: string;
  configSha256: string;
  engine: { device: string; backend: string; loadSeconds: number; deviceInfo: Record<string, unknown>; host: string };
  options: { batches: number[]; prompts: number[]; newTokens: number[]; repeats: number; warmup: number; seed: number };
  timing: string;
  grid: PointResult[];
  baseline: BaselineResult | null;
  agreement: {
    tolerance: typeof TOLERANCE;
    reference: string;
    sequences: number;
    length: number;
    prefillTokens: number;
    paths: PathAgreement[];
    noiseFloor: NoiseFloor | null;
  } | null;
  targets: TargetResult[];
  /** offload mode: the grid's points are OffloadPointResult (cache, policy, hit rates, bytes moved) */
  offload?: { caches: number[]; expertDtypes?: string[]; policies: string[]; gpuMemoryBytes: number | null; routing: string[]; hostProfile?: { layerMs: Array<[number, number]>; stepMs: Array<[number, number]> } | null } | null;
  offloadCheck?: OffloadCheck | null;
  cpuMissCheck?: CpuMissCheck | null;
  quantCheck?: QuantCheck | null;
}

/** The reference sequences of the agreement check: <bos> + seeded random ids. */
function checkSequences(o: BenchOptions, vocab: number, bos: number, eos: number): number[][] {
  const avoid = new Set([bos, eos]);
  return Array.from({ length: o.checkSequences }, (_, s) => [bos, ...seededIds(o.seed * 31 + 1000 + s, o.checkLength - 1, vocab, avoid)]);
}

export async function runBench(o: BenchOptions): Promise<BenchDocument> {
  const ckpt = openCheckpoint(o.model);
  const cfg = ckpt.config;
  for (const w of ckpt.warnings) o.log(`moe-offload: warning: ${w}`);
  const grid: GridPoint[] = makeGrid(o.batches, o.prompts, o.newTokens);
  const promptsOf = (p: GridPoint) => makePrompts(p, o.seed, cfg.vocabSize, cfg.bosTokenId, cfg.eosTokenId);
  const sequences = o.check ? checkSequences(o, cfg.vocabSize, cfg.bosTokenId, cfg.eosTokenId) : [];
  const work = mkdtempSync(join(tmpdir(), 'moe-bench-'));
  try {
    // transformers first and in its own process, so the two models never share the GPU.
    let baseline: BaselineResult | null = null;
    const refLogits = join(work, 'ref-logits.f32');
    const refHidden = join(work, 'ref-hidden.f32');
    const fp32Files = o.check && o.checkFp32 ? { logits: join(work, 'ref-logits-fp32.f32'), hidden: join(work, 'ref-hidden-fp32.f32') } : null;
    if (o.baseline || o.check) {
      o.log(`bench: transformers on ${ckpt.dir} (${o.check ? 'reference' : ''}${o.check && o.baseline ? ' + ' : ''}${o.baseline ? 'timings' : ''})`);
      baseline = runTransformers(o.python, ckpt.dir, {
        check: o.check
          ? { sequences, logitsPath: refLogits, hiddenPath: refHidden, fp32: fp32Files ? { logitsPath: fp32Files.logits, hiddenPath: fp32Files.hidden } : null }
          : null,
        grid: o.baseline ? grid.map((p) => ({ ...p, prompts: promptsOf(p) })) : [],
        repeats: Math.max(1, Math.min(o.repeats, 2)),
        warmupTokens: 4,
      }, work);
    }

    let offloadCheck: OffloadCheck | null = null;
    if (o.checkOffload) {
      o.log('bench: offload check (tokens identical: all-resident vs offloaded)');
      offloadCheck = await checkOffloadTokens(ckpt.dir, o.checkOffload.caches, o.checkOffload.policies, o.checkOffload.newTokens, o.seed, o.log, o.checkOffload.prefetches ?? ['none', 'next-gate'],
        o.checkOffload.routing?.length ? { routing: o.checkOffload.routing, predictor: o.checkOffload.predictor } : undefined);
    }
    let cpuMissCheck: CpuMissCheck | null = null;
    if (o.checkMiss) {
      o.log(`bench: CPU-miss check (${o.checkMiss.misses.join(', ')} against all-resident logits)`);
      cpuMissCheck = await checkCpuMisses(ckpt.dir, o.checkMiss.cache, o.checkMiss.misses, o.checkMiss.newTokens, o.seed, o.log, o.checkMiss.rounding ?? 'fast');
    }
    let quantCheck: QuantCheck | null = null;
    if (o.checkQuant) {
      o.log(`bench: quantized-expert check (${o.checkQuant.formats.map((f) => f.dtype).join(', ')} against the bf16 engine)`);
      quantCheck = await checkQuantized(ckpt.dir, o.checkQuant.formats, { ...o.checkQuant, seed: o.seed }, o.log);
    }
    if (o.offload || o.skipGrid) {
      const points = o.offload && !o.skipGrid ? await runOffloadGrid(ckpt.dir, cfg, grid, promptsOf, o.repeats, o.warmup, o.offload, o.log) : [];
      const deviceInfo = points.at(-1)?.device ?? {};
      return {
        format: 'moe-offload-bench-v1',
        date: new Date().toISOString(),
        model: ckpt.dir,
        configSha256: ckpt.configHash,
        engine: { device: typeof deviceInfo.name === 'string' ? deviceInfo.name : o.device, backend: o.device, loadSeconds: 0, deviceInfo, host: `${cpus()[0]?.model ?? 'unknown'} x ${cpus().length}` },
        options: { batches: o.batches, prompts: o.prompts, newTokens: o.newTokens, repeats: o.repeats, warmup: o.warmup, seed: o.seed },
        timing:
          `wall clock through the Engine API (Node -> addon -> device and back; ${o.offload?.sampleOn === 'host' ? 'every step\'s logits copied to the host and sampled there (--sample-on host)' : 'greedy tokens picked on the GPU, only their ids come back'}); routed experts offloaded to pinned host memory; ` +
          'each grid point starts with a cold cache and cold GPU slots; prefill = begin() of all prompts; ms/token = one decode step; greedy, no eos stop; prompts are seeded random ids, routing as the routing column says',
        grid: points,
        baseline,
        agreement: null,
        targets: offloadTargets(points),
        offload: o.offload ? { caches: [...new Set(points.map((p) => p.cache))], expertDtypes: (o.offload.formats ?? []).map((f) => f.dtype), policies: o.offload.policies, gpuMemoryBytes: o.offload.gpuMemory, routing: o.offload.routing.map((r) => r.path), hostProfile: hostProfileOf(points) } : null,
        offloadCheck,
        cpuMissCheck,
        quantCheck,
      };
    }

    o.log(`bench: loading the engine on ${o.device}`);
    const t0 = performance.now();
    const engine = await Engine.load(ckpt.dir, { device: o.device, threads: o.threads });
    const loadSeconds = (performance.now() - t0) / 1e3;
    try {
      const info = engine.info();
      o.log(`bench: loaded in ${loadSeconds.toFixed(1)} s (${info.backend})`);
      let agreement: BenchDocument['agreement'] = null;
      if (o.check) {
        o.log(`bench: agreement check, ${sequences.length} x ${o.checkLength} positions`);
        const paths = await checkAgreement(engine, sequences, o.checkPrefill, { logits: refLogits, hidden: refHidden }, fp32Files);
        agreement = {
          tolerance: TOLERANCE,
          reference: baseline ? `transformers ${baseline.transformers}, torch ${baseline.torch}, ${baseline.attn} attention, ${baseline.device}` : '',
          sequences: sequences.length,
          length: o.checkLength,
          prefillTokens: o.checkPrefill,
          paths,
          noiseFloor: noiseFloor(paths),
        };
      }
      const points: PointResult[] = [];
      for (const p of grid) {
        const r = await benchPoint(engine, p, promptsOf(p), o.repeats, o.warmup, o.log);
        o.log(`bench: batch ${p.batch} prompt ${p.prompt} new ${p.newTokens}: prefill ${r.prefillMs.mean.toFixed(1)} ms, ${r.msPerToken.mean.toFixed(2)} ms/token, ${r.decodeTokensPerSecond.toFixed(0)} tok/s`);
        points.push(r);
      }
      const deviceInfo = engine.deviceInfo();
      const deviceName = typeof deviceInfo.name === 'string' ? deviceInfo.name : `CPU: ${cpus()[0]?.model ?? 'unknown'} x ${cpus().length}`;
      return {
        format: 'moe-offload-bench-v1',
        date: new Date().toISOString(),
        model: ckpt.dir,
        configSha256: ckpt.configHash,
        engine: { device: deviceName, backend: info.backend, loadSeconds, deviceInfo, host: `${cpus()[0]?.model ?? 'unknown'} x ${cpus().length}` },
        options: { batches: o.batches, prompts: o.prompts, newTokens: o.newTokens, repeats: o.repeats, warmup: o.warmup, seed: o.seed },
        timing:
          'wall clock through the Engine API (Node -> addon -> device and back; greedy tokens picked where the logits are: on CUDA the GPU, only their ids come back); prefill = begin() of all prompts; ' +
          'ms/token = one decode step (one token for every sequence); greedy, no eos stop; prompts are seeded random ids',
        grid: points,
        baseline,
        agreement,
        targets: evaluateTargets(points, baseline?.grid.length ? baseline.grid : null),
      };
    } finally {
      engine.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
