import { openCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import { loadTokenizer, type ModelTokenizer } from '../model/tokenizer.js';
import { UserError } from '../../../core/src/errors.js';
import { buildOffloadSpec } from '../offload/offload-spec.js';
import { resolvePlacement, type Placement } from '../offload/placement.js';
import { checkLoadedFormat } from '../offload/expert-format.js';
import { BF16_EXPERTS } from '../offload/gpu-budget.js';
import { nativeQuantizerId, planQuantizedFile } from '../offload/quantized-file.js';
import { loadNativeAddon, type NativeQuantizedFileResult, type NativeCacheStats, type NativeCapture, type NativeMissLog, type NativeEngineHandle, type NativeRecord, type NativeStepResult } from './native-binding.js';
import { toNativeConfig, toNativeTensors } from './native-config.js';
import { ContinuousBatch } from './continuous-batch.js';
import { isNonFiniteError, locateNonFinite } from './non-finite.js';
import {
  checkGenerateShape,
  checkPromptIds,
  resolveLoadOptions,
  resolveSampling,
  type EngineLoadOptions,
  type GenerateOptions,
} from './options.js';

/** Counters of the CUDA backend's offloaded experts (device_info().offload), cumulative since load. */
export interface OffloadStats {
  slotsPerLayer: number;
  stagingBuffers: number;
  expertBytes: number;
  hostExpertBytes: number;
  poolBytes: number;
  hostCopySeconds: number;
  /** issue 13: the routed experts' storage and one blob's bytes (absent on an addon built before it) */
  expertDtype?: string;
  quantizeSeconds?: number;
  /** the quantized experts file: null without one (absent on an addon built before it) */
  quantizedFile?: NativeQuantizedFileResult | null;
  hostPinSeconds: number;
  forwards: number;
  slotCopies: number;
  stagedCopies: number;
  bytesH2D: number;
  copyWaits: number;
  copyWaitMs: number;
  /** misses computed on the CPU (issue 12), their token rows, background fills of those the cache keeps */
  cpuExperts: number;
  cpuRows: number;
  fillCopies: number;
  /** CPU workers' busy time (sum over jobs), and the time the forward waited for them after queuing the GPU's work */
  cpuMs: number;
  cpuWaitMs: number;
  /** summed over layers: the CPU executor's hand-offs, which no job's clock sees (a worker waking for the
   *  layer's jobs; the forward waking after the last) */
  cpuStartLatencyMs: number;
  cpuJoinLatencyMs: number;
  /** decode forwards, their wall time inside the backend, and the host work on their critical path summed over MoE layers */
  decodeForwards: number;
  decodeForwardMs: number;
  decodeHostLayerMs: number;
  /** decode MoE layers split where the host finishes a layer: head (routing on the host -> combine queued,
   *  CPU experts' wait included) and tail (-> the next MoE layer's routing on the host), summed over the
   *  decodeLayerTails layers that have a next MoE layer in their forward (0 on an addon built before them) */
  decodeLayerTails: number;
  decodeLayerHeadMs: number;
  decodeLayerTailMs: number;
  /** decode forwards that ran as resident steps (every routed expert in a slot; counted in decodeForwards,
   *  not in decodeHostLayerMs or the layer split; read as 0 when an addon built before them lacks it) */
  residentForwards: number;
  /** MOE_TIME_EXPERT_LAUNCHES=1 only (a diagnostic; 0 otherwise or on an older addon): the GPU time of the
   *  decode forwards' routed-expert launches (CUDA events around each resident and loaded launch), and how many */
  decodeExpertLaunches?: number;
  decodeExpertGpuMs?: number;
}

/** An error of the native engine (bad weights, a bug): rethrown here so it carries a JS stack. */
export class EngineError extends UserError {
  override readonly name = 'EngineError';
}

export type FinishReason = 'eos' | 'length';

/** One generated token of one sequence, streamed as soon as its step is done. */
export interface GeneratedToken {
  /** index of the prompt it continues */
  sequence: number;
  token: number;
  /** 0 for the first generated token of the sequence */
  index: number;
  /** set on the sequence's last token */
  finished: FinishReason | null;
}

/** Logits of the last generate() with recordLogits: perSequence[s][k] produced token k of sequence s. */
export interface RecordedLogits {
  vocabSize: number;
  perSequence: Float32Array[][];
}

const FINISH: Record<number, FinishReason | null> = { 0: null, 1: 'eos', 2: 'length' };

/** a quantized load slower than this without a quantized experts file says how to skip the work next time */
const QUANTIZE_NOTE_SECONDS = 5;

function warnOnStderr(message: string): void {
  process.stderr.write(`moe: warning: ${message}\n`);
}

async function native<T>(what: string, call: () => Promise<T> | T): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new EngineError(`${what}: ${(err as Error).message}`);
  }
}

/**
 * A DeepSeek-V2 checkpoint loaded into the native engine.
 *
 *   const engine = await Engine.load(dir, { device: 'cpu' });
 *   for await (const t of engine.generate({ prompts: ['Hello'], maxNewTokens: 16 })) ...
 *   engine.close();
 */
export class Engine {
  /** logits of the last generate() that asked for them (recordLogits: true); null otherwise */
  logits: RecordedLogits | null = null;
  private busy = false;
  private closed = false;
  private batch: ContinuousBatch | null = null;
  private tokenizerCache: ModelTokenizer | undefined;
  /** the capture the caller asked for, restored after a non-finite diagnosis used the hook */
  private debugNames: string[] | null = null;

  private constructor(
    readonly checkpoint: Checkpoint,
    private readonly handle: NativeEngineHandle,
  ) {}

  get config(): ModelConfig {
    return this.checkpoint.config;
  }

  static async load(dir: string, options?: EngineLoadOptions): Promise<Engine> {
    const opts = resolveLoadOptions(options);
    const ckpt = openCheckpoint(dir);
    // Placement (issue 6): offloaded routed experts and the budget, refused before anything loads.
    const placement = resolvePlacement(ckpt.config, opts.device, options ?? {});
    const load = { ...(options ?? {}), cache: placement.cache };
    const offload = buildOffloadSpec(ckpt, load, placement.native.offloadSlots !== undefined);
    const addon = loadNativeAddon();
    const quantizedFile = planQuantizedFile(ckpt, placement.format, options?.quantizedFile, () => nativeQuantizerId(addon, ckpt.config, placement.format), warnOnStderr);
    const nativeOptions = { device: opts.device, threads: opts.threads, ...placement.native, ...(quantizedFile ? { quantizedFile } : {}) };
    const handle = await native(`loading ${ckpt.dir}`, () => addon.load({ config: toNativeConfig(ckpt.config), tensors: toNativeTensors(ckpt), options: nativeOptions }));
    if (offload) {
      try {
        handle.setOffload(offload);
      } catch (err) {
        handle.close();
        throw new EngineError(`offloading setup: ${(err as Error).message}`);
      }
    }
    const engine = new Engine(ckpt, handle);
    engine.placement = placement;
    const experts = engine.routedExpertsInfo();
    try {
      checkLoadedFormat(placement.format, experts as Record<string, unknown> | null);
    } catch (err) {
      handle.close();
      throw err;
    }
    const quantizeSeconds = experts?.quantizeSeconds ?? 0;
    if (!quantizedFile && quantizeSeconds > QUANTIZE_NOTE_SECONDS) {
      process.stderr.write(`moe: note: quantizing the routed experts took ${quantizeSeconds.toFixed(1)} s; --quantized-file auto (load option quantizedFile: 'auto') keeps them beside the checkpoint for the next load\n`);
    }
    return engine;
  }

  /** Where the routed experts are (offloaded or not), the slots and the budget's breakdown. */
  placement: Placement = { cache: undefined, native: {}, plan: null, format: BF16_EXPERTS };

  /**
   * Replaces the offloading session: a new cache (cold; on the GPU the slots start cold too) and/or routing
   * replay, whose sequence counting starts again at 0. On device 'cuda' with offloaded experts the cache's
   * slots may not exceed the pool's (load option poolSlots). null options detach offloading.
   */
  resetOffload(options: Pick<EngineLoadOptions, 'cache' | 'routing' | 'record' | 'miss' | 'prefetch' | 'residentSteps'> | null): void {
    this.assertOpen();
    if (this.busy) throw new UserError('engine is busy: one operation at a time');
    const spec = options === null ? null : buildOffloadSpec(this.checkpoint, options, this.placement.native.offloadSlots !== undefined);
    const pool = this.placement.native.offloadSlots;
    const slots = options?.cache?.slotsPerLayer;
    if (pool !== undefined && slots !== undefined && slots > pool) {
      throw new UserError(`option cache.slotsPerLayer: ${slots} exceeds the ${pool} GPU slots per layer this engine was loaded with (load option poolSlots)`);
    }
    try {
      this.handle.setOffload(spec);
    } catch (err) {
      throw new EngineError(`offloading setup: ${(err as Error).message}`);
    }
    this.placement = { ...this.placement, cache: options?.cache };
  }

  /**
   * How the routed experts were loaded: dtype, one blob's bytes, quantizeSeconds, the quantized experts file.
   * CUDA reports them with its offloading counters (null when nothing is offloaded), the CPU engine under
   * device_info().routedExperts (null from an addon built before quantized CPU experts).
   */
  routedExpertsInfo(): Pick<OffloadStats, 'expertDtype' | 'expertBytes' | 'quantizeSeconds' | 'quantizedFile'> | null {
    if (this.placement.native.offloadSlots !== undefined) return this.offloadStats();
    const r = this.deviceInfo().routedExperts;
    return r && typeof r === 'object' ? (r as Pick<OffloadStats, 'expertDtype' | 'expertBytes' | 'quantizeSeconds' | 'quantizedFile'>) : null;
  }

  /** The CUDA backend's offloading counters (cumulative since load): copies, bytes, copy-wait time; null when nothing is offloaded. */
  offloadStats(): OffloadStats | null {
    const o = this.deviceInfo().offload;
    return o && typeof o === 'object' ? (o as OffloadStats) : null;
  }

  /** Expert-cache counts per MoE layer since load (null without `cache`). */
  cacheStats(): NativeCacheStats | null {
    this.assertOpen();
    return this.handle.cacheStats();
  }

  /** The miss decisions (load option miss.log) since the last call, with the estimates they used. */
  takeMissLog(): NativeMissLog {
    this.assertOpen();
    return this.handle.takeMissLog();
  }

  /** Rows recorded (load option `record`) since the last call, in trace order. */
  takeRecord(): NativeRecord {
    this.assertOpen();
    return this.handle.takeRecord();
  }

  /** The checkpoint's tokenizer (loaded on first use; a missing tokenizer is a clear error). */
  get tokenizer(): ModelTokenizer {
    this.tokenizerCache ??= loadTokenizer(this.checkpoint.dir);
    return this.tokenizerCache;
  }

  info(): { backend: string; weightBytes: number; cpuFeatures: string; linearKernel: string; device: string } {
    this.assertOpen();
    return this.handle.info();
  }

  /** The device as the backend describes it: for 'cuda' the GPU's name and memory figures; {} on the CPU. */
  deviceInfo(): Record<string, unknown> {
    return JSON.parse(this.info().device || '{}') as Record<string, unknown>;
  }

  /**
   * Teacher forcing: runs each token sequence through the model and returns the logits of every
   * position, [sum of lengths, vocab] row-major, sequences in order. prefillTokens 0 (default): one
   * prefill batch; n > 0: the first n tokens by prefill, then one decode step per position (the
   * decode path on the same tokens). Call it between generations.
   */
  async score(sequences: number[][], prefillTokens = 0): Promise<Float32Array> {
    this.assertOpen();
    if (!Array.isArray(sequences) || sequences.length === 0) throw new UserError('score: sequences must be a non-empty array of token-id arrays');
    const ids = checkPromptIds(sequences, this.config.vocabSize);
    if (!Number.isInteger(prefillTokens) || prefillTokens < 0) throw new UserError(`score: prefillTokens must be an integer >= 0, got ${prefillTokens}`);
    this.assertIdle();
    this.busy = true;
    try {
      await native('score', () =>
        this.handle.score({ prompts: ids, maxNewTokens: 1, greedy: true, temperature: 1, topP: 1, seed: 0, stopOnEos: false, prefillTokens }),
      );
      return this.handle.logits();
    } finally {
      this.busy = false;
    }
  }

  /**
   * Generates for every prompt at once (one batch; each sequence has its own cache and length) and
   * streams the tokens step by step. Sequences stop at the end-of-sequence token (unless stopOnEos
   * is false) or after maxNewTokens.
   */
  async *generate(options: GenerateOptions): AsyncGenerator<GeneratedToken> {
    this.assertOpen();
    checkGenerateShape(options);
    const sampling = resolveSampling(options.sampling);
    const ids =
      typeof options.prompts[0] === 'string'
        ? (options.prompts as string[]).map((p) => this.tokenizer.encode(p, { addBos: true }))
        : (options.prompts as number[][]);
    const prompts = checkPromptIds(ids, this.config.vocabSize);
    this.assertIdle();
    this.busy = true;
    const record = options.recordLogits === true;
    this.logits = record ? { vocabSize: this.config.vocabSize, perSequence: prompts.map(() => []) } : null;
    const counts = prompts.map(() => 0);
    const generated: number[][] = prompts.map(() => []);
    try {
      // Without recorded logits a greedy generation takes only its tokens back from the GPU.
      this.handle.setKeepLogits(record || options.keepLogits === true);
      let result = await this.guardFinite('prefill', prompts, generated, () =>
        this.handle.begin({ prompts, maxNewTokens: options.maxNewTokens, ...sampling, stopOnEos: options.stopOnEos ?? true }),
      );
      for (;;) {
        if (record) this.recordStep(result);
        let running = 0;
        for (let s = 0; s < result.tokens.length; s++) {
          const token = result.tokens[s];
          const finished = FINISH[result.finish[s]];
          if (finished === null) running++;
          if (token < 0) continue;
          generated[s].push(token);
          yield { sequence: s, token, index: counts[s]++, finished };
        }
        if (running === 0) break;
        result = await this.guardFinite('decode step', prompts, generated, () => this.handle.step());
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * Continuous batching (the server): `slots` sequence slots of `capacity` tokens each (prompt plus
   * generated), sequences added and removed between steps. While the batch is open, generate() and
   * score() are refused; batch.close() ends it.
   */
  async openBatch(o: { slots: number; capacity: number }): Promise<ContinuousBatch> {
    this.assertOpen();
    if (!o || typeof o !== 'object') throw new UserError('openBatch: options must be an object {slots, capacity}');
    if (!Number.isInteger(o.slots) || o.slots < 1 || o.slots > 4096) throw new UserError(`openBatch slots: must be an integer in [1, 4096], got ${String(o.slots)}`);
    const maxCtx = this.config.maxPositionEmbeddings;
    if (!Number.isInteger(o.capacity) || o.capacity < 2 || o.capacity > maxCtx) {
      throw new UserError(`openBatch capacity: must be an integer in [2, ${maxCtx}] (the model's max_position_embeddings), got ${String(o.capacity)}`);
    }
    this.assertIdle();
    this.busy = true;
    try {
      await native('opening sequence slots', () => this.handle.openSlots(o.slots, o.capacity));
      this.handle.setKeepLogits(false);  // the server reads tokens only
    } finally {
      this.busy = false;
    }
    const batch = new ContinuousBatch(
      {
        handle: this.handle,
        vocabSize: this.config.vocabSize,
        acquire: (what) => {
          this.assertOpen();
          if (this.busy) throw new UserError(`engine is busy: cannot ${what}`);
          this.busy = true;
        },
        release: () => {
          this.busy = false;
        },
        ended: () => {
          if (this.batch === batch) this.batch = null;
        },
        wrap: (what, err) => (err instanceof UserError ? err : new EngineError(`${what}: ${(err as Error).message}`)),
      },
      o.slots,
      o.capacity,
    );
    this.batch = batch;
    return batch;
  }

  /**
   * A native step, with non-finite logits turned into an error that names the first layer whose output is
   * not finite (one re-run of the failing sequence with the debug hook: runtime/src/engine/non-finite.ts).
   */
  private async guardFinite<T>(what: string, prompts: Int32Array[] | number[][], generated: number[][], call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      const message = (err as Error).message;
      if (!isNonFiniteError(message)) throw new EngineError(`${what}: ${message}`);
      const m = /sequence (\d+), position (\d+)/.exec(message);
      const s = m ? Number(m[1]) : 0;
      const pos = m ? Number(m[2]) : -1;
      const tokens = [...Array.from(prompts[s]), ...generated[s]].slice(0, pos + 1);
      let where: string | null = null;
      try {
        where = tokens.length ? await locateNonFinite(this.handle, this.config, tokens) : null;
      } catch {
        where = null;
      } finally {
        if (this.debugNames) this.handle.setDebugCapture(this.debugNames);
      }
      const token = generated[s].length + 1;
      throw new EngineError(
        `the model produced non-finite logits (NaN or Inf) for prompt ${s}, generated token ${token}` +
          (where ? `; the first non-finite output is ${where}` : '') +
          `. The checkpoint's weights or its config.json are broken (${this.checkpoint.dir})`,
      );
    }
  }

  /** Collects the whole generation: the generated ids of each prompt. */
  async generateAll(options: GenerateOptions): Promise<{ tokens: number[][]; finished: FinishReason[] }> {
    const n = options.prompts?.length ?? 0;
    const tokens: number[][] = Array.from({ length: n }, () => []);
    const finished: FinishReason[] = Array.from({ length: n }, () => 'length');
    for await (const t of this.generate(options)) {
      tokens[t.sequence].push(t.token);
      if (t.finished) finished[t.sequence] = t.finished;
    }
    return { tokens, finished };
  }

  /**
   * Debugging: capture named intermediates ("attn_norm", "q", "kv_cache", "attn_out", "h_attn",
   * "router_logits", "ffn_out", "h", "final_norm", "logits", or "*") of the following forwards;
   * read them with takeDebugCapture(). null stops capturing.
   */
  setDebugCapture(names: string[] | null): void {
    this.assertOpen();
    this.handle.setDebugCapture(names);
    this.debugNames = names;
  }

  takeDebugCapture(): NativeCapture[] {
    this.assertOpen();
    return this.handle.takeDebugCapture();
  }

  close(): void {
    if (this.closed) return;
    if (this.busy) throw new UserError('engine is busy: finish or abandon the generate() loop before close()');
    this.batch?.close();
    this.handle.close();
    this.closed = true;
  }

  private recordStep(result: NativeStepResult): void {
    const all = this.handle.logits();
    const V = this.config.vocabSize;
    result.logitsSeq.forEach((s, row) => this.logits!.perSequence[s].push(all.slice(row * V, (row + 1) * V)));
  }

  private assertIdle(): void {
    if (this.busy) throw new UserError('engine is busy: one operation at a time');
    if (this.batch) throw new UserError('engine has an open continuous batch: close it before generate() or score()');
  }

  private assertOpen(): void {
    if (this.closed) throw new UserError('engine is closed');
  }
}
