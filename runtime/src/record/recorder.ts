/**
 * record-trace: real inference on the native engine, every forward's routing written to a trace v1 file
 * with the token ids, the router's full softmax (`scores`), the next-layer-gate prediction (`gate_next`)
 * and the measured timing columns. See runtime/src/record/README.md for the exact rules.
 *
 * Batching: the prompts run in batches of B (the last may be smaller); each batch is prefilled in one
 * forward and then decoded for exactly N tokens (no stop at end-of-sequence, so every sequence has the
 * same length and the trace replays in the simulator's lanes exactly as it ran). A sequence contributes
 * its L prompt tokens and N - 1 decode tokens (the last generated token is never fed back).
 * Interruption: SIGINT/SIGTERM (the command sets `stop`) stop after the current step and publish the
 * shorter trace; any error discards the partial file, so the target path is left as it was. The output
 * path is checked before anything loads (core/src/output-path.ts): not a folder, a device or an input,
 * and an existing trace is replaced only with `force`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RunMeta } from '../../../traces/src/schema.js';
import { TraceWriter } from '../../../traces/src/writer.js';
import { Engine } from '../engine/engine.js';
import type { Sampling } from '../engine/options.js';
import { configHash, loadModelConfig } from '../model/config.js';
import type { CacheOptions } from '../offload/cache-options.js';
import type { PrefetchOptions } from '../offload/prefetch-options.js';
import type { NativeCacheStats } from '../engine/native-binding.js';
import { checkReplayCoverage, loadRoutingReplay } from '../offload/routing-replay.js';
import { findRepoRoot } from '../engine/native-binding.js';
import { checkOutputFile } from '../../../core/src/output-path.js';
import { removeStalePartials } from '../../../core/src/stale-partials.js';
import { startProgress } from '../../../core/src/progress.js';
import { loadPromptTexts, type PromptTexts } from './dataset.js';
import { buildPromptIds } from './prompt-tokens.js';

export interface RecordTraceOptions {
  model: string;
  /** builtin, sharegpt, a ShareGPT-format file, or prompts already read (the CLI reads them first to report what it read) */
  dataset: string | PromptTexts;
  batch: number;
  promptLen: number;
  gen: number;
  /** sequences to record (default: batch) */
  sequences?: number;
  out: string;
  device?: 'cpu' | 'cuda';
  threads?: number;
  /** trace whose routing is replayed */
  routing?: string;
  cache?: { slotsPerLayer: number; policy: CacheOptions['policy'] };
  /** prefetch into the cache (issue 12; needs `cache`): on the CPU engine only the decisions are made */
  prefetch?: PrefetchOptions;
  sampling?: Sampling;
  quiet?: boolean;
  /** set to true (e.g. by a SIGINT handler) to stop after the current step */
  stop?: { requested: boolean };
  /** replace an existing `out` (the command's --force) */
  force?: boolean;
  /** told of stale partial files of `out` removed before the run (left by a killed run) */
  log?: (line: string) => void;
}

export interface RecordTraceResult {
  rows: number;
  steps: number;
  /** sequences with rows in the file (fewer than planned when interrupted) */
  sequences: number;
  /** sequences the run was asked for */
  plannedSequences: number;
  interrupted: boolean;
  /** per MoE layer, when a cache was configured */
  cache: { hits: number[]; requests: number[]; prefetch?: NonNullable<NativeCacheStats['prefetch']> } | null;
}

export async function recordTrace(o: RecordTraceOptions): Promise<RecordTraceResult> {
  const out = checkOutputFile(o.out, { option: '--out', force: o.force, inputs: recordInputs(o) });
  for (const stale of removeStalePartials(out)) o.log?.(`record-trace: removed ${stale}, the partial output of an earlier run that was killed`);
  const S = o.sequences ?? o.batch;
  const config = loadModelConfig(o.model);
  const replay = o.routing ? loadRoutingReplay(o.routing, config) : undefined;
  const perSequence = o.promptLen + o.gen - 1;
  if (replay) checkReplayCoverage(replay, new Array<number>(S).fill(perSequence));
  const cache: CacheOptions | undefined = o.cache
    ? { ...o.cache, schedule: o.cache.policy === 'belady' || o.cache.policy === 'opt' ? { batch: o.batch, lengths: new Array<number>(S).fill(perSequence) } : undefined }
    : undefined;
  if (cache && !cache.schedule) delete cache.schedule;

  const engine = await Engine.load(o.model, { device: o.device ?? 'cpu', threads: o.threads ?? 0, cache, routing: replay, record: {}, prefetch: o.prefetch });
  for (const w of engine.checkpoint.warnings) o.log?.(`moe-offload: warning: ${w}`);
  let writer: TraceWriter | undefined;
  try {
    let prompts: number[][];
    let dataset: string;
    if (replay?.tokens) {
      prompts = replay.tokens.slice(0, S).map((t) => Array.from(t.subarray(0, o.promptLen)));
      dataset = `replay:${replay.corpus.meta.dataset}`;
    } else {
      const texts = typeof o.dataset === 'string' ? loadPromptTexts(o.dataset, { quiet: o.quiet }) : o.dataset;
      prompts = buildPromptIds(texts.texts, engine.tokenizer, o.promptLen, S);
      dataset = texts.label;
    }
    writer = TraceWriter.create(out, runMeta(o, config, engine, dataset, !!replay), { tokens: true, scores: true, gateNext: true, timings: true });
    const progress = startProgress('record-trace', S * o.gen, { quiet: o.quiet, unit: 'generated tokens' });
    let interrupted = false;
    let steps = 0;
    const written = new Uint8Array(S);
    outer: for (let b = 0; b < S; b += o.batch) {
      const batch = prompts.slice(b, b + o.batch);
      for await (const _ of engine.generate({ prompts: batch, maxNewTokens: o.gen, sampling: o.sampling, stopOnEos: false })) {
        progress.tick();
        const rec = engine.takeRecord();
        if (rec.rows > 0) {
          steps = rec.step[rec.rows - 1] + 1;
          for (let r = 0; r < rec.rows; r++) written[rec.seq[r]] = 1;
          const zeros = new Float32Array(rec.rows);
          writer.append({
            step: rec.step,
            phase: rec.phase,
            layer: rec.layer,
            seq: rec.seq,
            pos: rec.pos,
            experts: rec.experts,
            weights: rec.weights,
            token: rec.token,
            scores: rec.scores,
            gateNext: rec.gateNext,
            gateNextValid: rec.gateNextValid,
            layerUs: rec.layerUs,
            transferWaitUs: zeros,
            hits: rec.hits,
            misses: rec.misses,
            cpuExperts: new Uint16Array(rec.rows),
          });
          writer.flush();
        }
        if (o.stop?.requested) {
          interrupted = true;
          break outer;
        }
      }
    }
    progress.done();
    const rows = writer.rows;
    writer.close();
    const stats = engine.cacheStats();
    return {
      rows,
      steps,
      sequences: written.reduce((a, b) => a + b, 0),
      plannedSequences: S,
      interrupted,
      cache: stats ? { hits: Array.from(stats.hits), requests: Array.from(stats.requests), ...(stats.prefetch ? { prefetch: stats.prefetch } : {}) } : null,
    };
  } catch (err) {
    writer?.abort();
    throw err;
  } finally {
    engine.close();
  }
}

/** The files the run reads: the output may not be one of them. */
function recordInputs(o: RecordTraceOptions): string[] {
  const files: string[] = [];
  if (existsSync(o.model) && statSync(o.model).isDirectory()) files.push(...readdirSync(o.model).map((f) => join(o.model, f)));
  if (o.routing) files.push(o.routing);
  // A dataset given as a file name (not builtin / sharegpt, nor prompts already read) is an input too.
  if (typeof o.dataset === 'string' && o.dataset !== 'builtin' && o.dataset !== 'sharegpt') files.push(o.dataset);
  return files;
}

function runMeta(o: RecordTraceOptions, config: ReturnType<typeof loadModelConfig>, engine: Engine, dataset: string, replayed: boolean): RunMeta {
  const cacheNote = o.cache
    ? `hits/misses: the expert cache (${o.cache.policy}, ${o.cache.slotsPerLayer} slots per MoE layer) as an accounting layer on the CPU engine (weights host-resident); a prefill forward's value sums its per-position cache steps`
    : 'hits and misses are 0: no offloading cache was configured';
  return {
    modelId: o.model,
    configHash: `sha256:${configHash(o.model)}`,
    numLayers: config.numHiddenLayers,
    moeLayers: config.moeLayers.slice(),
    numExperts: config.nRoutedExperts,
    topK: config.numExpertsPerTok,
    routingSource: replayed ? 'replay' : 'model',
    dataset,
    batchSize: o.batch,
    promptLength: o.promptLen,
    device: `${engine.info().backend}`,
    engineVersion: packageVersion(),
    gitRevision: gitRevision(),
    createdAt: new Date().toISOString(),
    notes: [
      `record-trace on the ${engine.info().backend} engine: ${o.sequences ?? o.batch} sequences in batches of ${o.batch}, prompt ${o.promptLen} tokens, ${o.gen} generated (no stop at end-of-sequence)`,
      replayed ? `routing replayed from ${o.routing} (experts/weights forced; scores and gate_next are the model's own router)` : 'routing chosen by the model router',
      'layer_us: wall time of the MoE block (router, routed and shared experts) less the recorder\'s own work; transfer_wait_us and cpu_experts are 0 (no device transfers on the CPU engine)',
      cacheNote,
    ].join('; '),
  };
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(resolve(findRepoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function gitRevision(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: findRepoRoot(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}
