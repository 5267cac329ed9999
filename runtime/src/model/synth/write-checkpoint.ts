import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { availableParallelism, endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { startProgress } from '../../../../core/src/progress.js';
import { BadInputError, UserError } from '../../../../core/src/errors.js';
import { checkOutputDir } from '../../../../core/src/output-path.js';
import { INDEX_FILE } from '../checkpoint.js';
import { parseModelConfig, type ModelConfig } from '../config.js';
import { expectedTensors } from '../tensor-names.js';
import type { Geometry } from './geometries.js';
import { FillPool } from './parallel-fill.js';
import { fillBlock } from './random-weights.js';
import { blocksOf, planShards, tableFor, type PlannedShard } from './shard-plan.js';
import { buildTokenizerFiles } from './tokenizer-files.js';

export interface SynthOptions {
  geometry: Geometry;
  /** any non-negative safe integer */
  seed: number;
  out: string;
  /** replace an existing DIR (the old one is removed only after the new one is complete) */
  force?: boolean;
  /** shard size limit in bytes (default: ~8.7 GB for large checkpoints, a third of the total for small ones) */
  maxShardBytes?: number;
  quiet?: boolean;
  /** worker threads generating weights (default: none for small checkpoints, else cores - 1, at most 8) */
  threads?: number;
}

export interface SynthResult {
  dir: string;
  config: ModelConfig;
  shards: string[];
  totalBytes: number;
  seconds: number;
}

/** Bytes generated per chunk (one worker fills one chunk; chunks are written in file order). */
const STAGING_BYTES = 64 * 1024 * 1024;
/** Below this, worker threads cost more to start than they save. */
const SMALL_CHECKPOINT_BYTES = 64 * 1024 * 1024;

/**
 * Writes a synthetic checkpoint in the Hub layout: config.json, generation_config.json, the sharded
 * bf16 safetensors with their index, tokenizer.json and tokenizer_config.json. Everything is built in
 * a partial directory beside DIR and renamed into place at the end, so an interrupted run never leaves
 * a half checkpoint at DIR. Shards are streamed through a few 64 MB staging buffers, never held in
 * memory; worker threads generate the weights while the main thread writes.
 */
export async function writeSyntheticCheckpoint(opts: SynthOptions): Promise<SynthResult> {
  if (endianness() !== 'LE') throw new UserError('synth-model needs a little-endian host (safetensors data is little-endian)');
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) throw new UserError(`option --seed: ${opts.seed} is not a non-negative integer`);
  const config = parseModelConfig(opts.geometry.config, `geometry ${opts.geometry.name}`);
  // Not a file or a device (a forced replacement renames the old path away and deletes it), a folder only with --force.
  const out = checkOutputDir(opts.out, { option: '--out', force: opts.force });

  const started = performance.now();
  const shards = planShards(expectedTensors(config), opts.seed, opts.maxShardBytes);
  const totalBytes = shards.reduce((a, s) => a + s.dataBytes, 0);
  const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial);
  const cleanup = () => rmSync(partial, { recursive: true, force: true });
  // An interrupt removes the partial directory; the write loop awaits I/O, so the handler gets to run.
  const onSignal = (sig: NodeJS.Signals) => {
    cleanup();
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const progress = startProgress(`synth-model ${opts.geometry.name}`, Math.ceil(totalBytes / (1024 * 1024)), { quiet: opts.quiet });
    let reportedMiB = 0;
    let writtenBytes = 0;
    const onBytes = (n: number) => {
      writtenBytes += n;
      const mib = Math.floor(writtenBytes / (1024 * 1024));
      if (mib > reportedMiB) {
        progress.tick(mib - reportedMiB);
        reportedMiB = mib;
      }
    };
    const threads = opts.threads ?? (totalBytes < SMALL_CHECKPOINT_BYTES ? 0 : Math.min(8, Math.max(1, availableParallelism() - 1)));
    const pool = threads > 0 ? new FillPool(threads) : null;
    try {
      for (const shard of shards) await writeShard(join(partial, shard.fileName), shard, onBytes, pool, threads + 2);
    } finally {
      await pool?.close();
    }
    progress.done();

    writeJson(join(partial, INDEX_FILE), indexJson(shards, totalBytes));
    writeFileSync(join(partial, 'config.json'), configJsonText(opts.geometry.config));
    writeJson(join(partial, 'generation_config.json'), generationConfig(config));
    const tok = buildTokenizerFiles(config.vocabSize, config.bosTokenId, config.eosTokenId);
    writeJson(join(partial, 'tokenizer.json'), tok.tokenizerJson);
    writeJson(join(partial, 'tokenizer_config.json'), tok.tokenizerConfigJson);
    publishDir(partial, out);
  } catch (err) {
    cleanup();
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  return { dir: out, config, shards: shards.map((s) => join(out, s.fileName)), totalBytes, seconds: (performance.now() - started) / 1000 };
}

/** A staging buffer's worth of blocks, in file order. */
interface Chunk {
  items: { seed: number; block: number; elems: number; byteOffset: number; table: Uint16Array }[];
  len: number;
}

function* chunksOf(shard: PlannedShard): Generator<Chunk> {
  let chunk: Chunk = { items: [], len: 0 };
  for (const t of shard.tensors) {
    const table = tableFor(t);
    for (const { block, elems } of blocksOf(t)) {
      if (chunk.len + 2 * elems > STAGING_BYTES) {
        yield chunk;
        chunk = { items: [], len: 0 };
      }
      chunk.items.push({ seed: t.seed, block, elems, byteOffset: chunk.len, table });
      chunk.len += 2 * elems;
    }
  }
  if (chunk.len > 0) yield chunk;
}

/**
 * Streams one shard: chunks are filled (by the worker pool, or inline) and written strictly in file
 * order; at most `maxBuffers` staging buffers exist at a time, so memory stays bounded.
 */
async function writeShard(path: string, shard: PlannedShard, onBytes: (n: number) => void, pool: FillPool | null, maxBuffers: number): Promise<void> {
  const fh: FileHandle = await open(path, 'w');
  try {
    await writeAll(fh, shard.header, 0);
    let position = shard.header.length;
    const free: SharedArrayBuffer[] = [];
    const outstanding: Promise<void>[] = [];
    let chain: Promise<void> = Promise.resolve();
    for (const chunk of chunksOf(shard)) {
      if (outstanding.length >= maxBuffers) await outstanding.shift();
      const buf = free.pop() ?? new SharedArrayBuffer(STAGING_BYTES);
      let filled: Promise<void>;
      if (pool) {
        filled = pool.fill(buf, chunk.items.map((it) => ({ ...it, table: pool.tableId(it.table) })));
      } else {
        for (const it of chunk.items) fillBlock(new Uint16Array(buf, it.byteOffset, it.elems), it.seed, it.block, it.table);
        filled = Promise.resolve();
      }
      const at = position;
      const len = chunk.len;
      position += len;
      chain = chain
        .then(() => filled)
        .then(() => writeAll(fh, Buffer.from(buf, 0, len), at))
        .then(() => {
          onBytes(len);
          free.push(buf);
        });
      chain.catch(() => {}); // awaited below or via `outstanding`; this only keeps Node from calling it unhandled
      outstanding.push(chain);
    }
    await chain;
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

function indexJson(shards: PlannedShard[], totalBytes: number): unknown {
  const weightMap: Record<string, string> = {};
  for (const s of shards) for (const t of s.tensors) weightMap[t.name] = s.fileName;
  return { metadata: { total_size: totalBytes }, weight_map: weightMap };
}

/** generation_config.json as DeepSeek-V2-Lite-Chat ships it (sampling defaults of the chat model). */
function generationConfig(c: ModelConfig): unknown {
  return { _from_model_config: true, bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, do_sample: true, temperature: 0.3, top_p: 0.95, transformers_version: '4.39.3' };
}

/**
 * Python-style floats for the keys that are floats in the Hub config (`1.0`, not `1`): transformers'
 * strict config classes reject an int where a float is declared (e.g. attention_dropout = 0).
 */
const FLOAT_KEYS = new Set(['attention_dropout', 'aux_loss_alpha', 'initializer_range', 'rms_norm_eps', 'routed_scaling_factor']);

export function configJsonText(config: Record<string, unknown>): string {
  const marked = JSON.stringify(
    config,
    (key, value) => (FLOAT_KEYS.has(key) && typeof value === 'number' && Number.isInteger(value) ? `@@float@@${value}` : value),
    2,
  );
  return marked.replace(/"@@float@@(-?\d+)"/g, '$1.0') + '\n';
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
}

/** Renames the finished directory into place; an existing DIR (with --force) is removed only afterwards. */
function publishDir(partial: string, out: string): void {
  if (!existsSync(out)) {
    renameSync(partial, out);
    return;
  }
  const old = join(dirname(out), `.${basename(out)}.old-${process.pid}`);
  renameSync(out, old);
  renameSync(partial, out);
  rmSync(old, { recursive: true, force: true });
}
