/**
 * The quantized experts file (issue 13): `--quantized-file auto|off|PATH` (load option `quantizedFile`).
 * Quantizing DeepSeek-V2-Lite's 1,664 routed experts at load takes seconds (int4's scale search about 18 s
 * on 16 cores); with a file the first load quantizes and writes the blobs beside the checkpoint and later
 * loads read them back. `auto` is `<checkpoint>/moe-offload-experts-<dtype>[-g<group>].safetensors`.
 *
 * This module owns the file's header and the decision; the native side (native/include/moe/quant/
 * quantized_file.h) reads or writes the data and checks every blob's checksum. The header is a pure
 * function of the checkpoint and the format, so a file is used only when its header bytes equal the
 * expected ones and its size is what they imply; otherwise the warning says why (truncated, another
 * checkpoint, another dtype, group or quantizer, another version of this format) and the file is rebuilt.
 * A file that exists but is not one of ours is refused, never overwritten.
 *
 * The checkpoint's fingerprint (metadata `checkpoint`): sha256 over config.json's hash and every tensor's
 * entry as openCheckpoint parsed it (name, dtype, shape, shard, offset, size: the shards' layout), and 64 bytes
 * at the start and in the middle of every routed expert tensor. It tells checkpoints apart (two synthetic
 * checkpoints of different seeds have identical layouts), but an in-place
 * edit of an expert's weights that leaves those bytes alone is not seen: after editing weights in place,
 * delete the file (or use --quantized-file off).
 */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import type { Checkpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import type { NativeAddon } from '../engine/native-binding.js';
import type { ExpertFormat } from './gpu-budget.js';
import { expertLayout } from '../../../sim/src/cost/expert-layout.js';
import { encodeSafetensorsHeader, MAX_HEADER_BYTES, RAW_DTYPE_BYTES, type HeaderTensor, type RawDtype } from '../../../core/src/safetensors.js';
import { UserError } from '../../../core/src/errors.js';

export const QUANTIZED_FILE_FORMAT = 'moe-offload-quantized-experts';
/** the layout of the data region and the metadata keys; a file of another version is rebuilt */
export const QUANTIZED_FILE_VERSION = '1';
/** data region alignment: blobs start on page boundaries */
const DATA_ALIGN = 4096;
/** bytes of each expert tensor sampled into the fingerprint, at its start and in its middle */
const SAMPLE_BYTES = 64;

/** `off` (default), `auto`, or a path */
export type QuantizedFileOption = string;

/** What the native load gets (NativeLoadOptions.quantizedFile). */
export interface QuantizedFilePlan {
  path: string;
  mode: 'read' | 'write';
  /** the whole safetensors header (u64 length + JSON); the data starts at header.length */
  header: Buffer;
}

/** The file `auto` names for a format. */
export function autoQuantizedFilePath(checkpointDir: string, format: ExpertFormat): string {
  return join(checkpointDir, `moe-offload-experts-${format.dtype}${format.dtype === 'int4' ? `-g${format.group}` : ''}.safetensors`);
}

/** sha256 hex of what identifies the checkpoint's routed experts (see the module comment). */
export function checkpointFingerprint(ckpt: Checkpoint): string {
  const h = createHash('sha256');
  h.update(ckpt.configHash);
  const tensors = [...ckpt.tensors.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const t of tensors) h.update(`\0${t.name}\0${t.dtype}\0${t.shape.join(',')}\0${basename(t.file)}\0${t.offset}\0${t.nbytes}`);
  const experts = tensors.filter((t) => /\.mlp\.experts\.\d+\./.test(t.name)).sort((a, b) => (a.name < b.name ? -1 : 1));
  const byFile = new Map<string, number>();
  const sample = Buffer.alloc(SAMPLE_BYTES);
  try {
    for (const t of experts) {
      let fd = byFile.get(t.file);
      if (fd === undefined) byFile.set(t.file, (fd = openSync(t.file, 'r')));
      for (const at of [0, Math.floor(t.nbytes / 2)]) {
        const got = readSync(fd, sample, 0, Math.min(SAMPLE_BYTES, t.nbytes - at), t.offset + at);
        h.update(t.name).update(sample.subarray(0, got));
      }
    }
  } finally {
    for (const fd of byFile.values()) closeSync(fd);
  }
  return h.digest('hex');
}

/** The metadata and header a file for this checkpoint and format must have. `quantizer`: the native quantizer's id. */
export function expectedQuantizedFileHeader(ckpt: Checkpoint, format: ExpertFormat, quantizer: string, fingerprint: string): { header: Buffer; metadata: Record<string, string>; fileBytes: number } {
  const c = ckpt.config;
  const blob = expertLayout(format.dtype, c.hiddenSize, c.moeIntermediateSize, format.group).bytes;
  const tensors: HeaderTensor<RawDtype>[] = c.moeLayers.map((l) => ({ name: `layers.${l}.mlp.experts`, dtype: 'U8', shape: [c.nRoutedExperts, blob] }));
  tensors.push({ name: 'checksums', dtype: 'U64', shape: [c.moeLayers.length, c.nRoutedExperts] });
  const metadata: Record<string, string> = {
    format: QUANTIZED_FILE_FORMAT,
    version: QUANTIZED_FILE_VERSION,
    expert_dtype: format.dtype,
    group: String(format.dtype === 'int4' ? format.group : 0),
    quantizer,
    checksum: 'xxh64',
    hidden_size: String(c.hiddenSize),
    moe_intermediate_size: String(c.moeIntermediateSize),
    n_routed_experts: String(c.nRoutedExperts),
    moe_layers: c.moeLayers.join(','),
    blob_bytes: String(blob),
    checkpoint: fingerprint,
  };
  const header = encodeSafetensorsHeader(tensors, metadata, { dtypes: RAW_DTYPE_BYTES, align: DATA_ALIGN });
  const dataBytes = c.moeLayers.length * c.nRoutedExperts * (blob + RAW_DTYPE_BYTES.U64);
  return { header, metadata, fileBytes: header.length + dataBytes };
}

/** The metadata of a file if it says it is ours (read leniently: a truncated data region still answers). */
function ownMetadata(path: string): Record<string, unknown> | 'unreadable' | 'foreign' {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    const len = Buffer.alloc(8);
    if (size < 8 || readSync(fd, len, 0, 8, 0) < 8) return 'unreadable';
    const n = len.readBigUInt64LE(0);
    if (n > BigInt(size - 8) || n > BigInt(MAX_HEADER_BYTES)) return 'unreadable';
    const body = Buffer.alloc(Number(n));
    readSync(fd, body, 0, body.length, 8);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      return 'unreadable';
    }
    const meta = (json as { __metadata__?: unknown } | null)?.__metadata__;
    if (meta === null || typeof meta !== 'object' || (meta as Record<string, unknown>).format !== QUANTIZED_FILE_FORMAT) return 'foreign';
    return meta as Record<string, unknown>;
  } finally {
    closeSync(fd);
  }
}

/** Why an existing file of ours cannot be read as it is; null: it can. */
function mismatch(path: string, expected: ReturnType<typeof expectedQuantizedFileHeader>, got: Record<string, unknown>): string | null {
  const e = expected.metadata;
  const differs = (key: string, what: (g: string, e: string) => string): string | null => (got[key] === e[key] ? null : what(String(got[key]), e[key]));
  const reason =
    differs('version', (g, w) => `written by version ${g} of the format, this build reads version ${w}`) ??
    differs('checkpoint', () => 'written from another checkpoint (its fingerprint differs: other weights or config)') ??
    differs('expert_dtype', (g, w) => `holds ${g} experts, not ${w}`) ??
    differs('group', (g, w) => `holds int4 groups of ${g}, not ${w}`) ??
    differs('quantizer', (g, w) => `written by quantizer ${g}, this build quantizes with ${w}`) ??
    ['hidden_size', 'moe_intermediate_size', 'n_routed_experts', 'moe_layers', 'blob_bytes', 'checksum'].map((k) => differs(k, (g, w) => `its ${k} is ${g}, expected ${w}`)).find((r) => r !== null) ??
    null;
  if (reason !== null) return reason;
  // same metadata: the header must also be byte for byte the expected one, and the data all there
  const head = Buffer.alloc(expected.header.length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.equals(expected.header)) return 'its header differs from the one this build writes';
  const size = statSync(path).size;
  if (size !== expected.fileBytes) return `it is ${size} bytes, expected ${expected.fileBytes} (${size < expected.fileBytes ? 'truncated' : 'longer than its header says'})`;
  return null;
}

/** Removes `<path>.partial-<pid>` files that a killed load left (pid no longer running). */
function removeStalePartials(path: string): void {
  const dir = dirname(path);
  const prefix = `${basename(path)}.partial-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isSafeInteger(pid) || pid <= 0 || isRunning(pid)) continue;
    try {
      unlinkSync(join(dir, name));
    } catch {
      // another process may have removed it first
    }
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Checks the option's shape (before anything loads): `off`, `auto` or a path. */
function checkQuantizedFileOption(option: unknown, format: ExpertFormat): void {
  if (option === undefined || option === 'off') return;
  if (typeof option !== 'string' || option.length === 0) throw new UserError(`option --quantized-file: must be auto, off or a file path, got ${JSON.stringify(option)}`);
  if (format.dtype === 'bf16') throw new UserError('option --quantized-file: only with --expert-dtype int8 or int4 (bf16 experts are the checkpoint\'s own weights)');
}

/**
 * Read or write, and the header, for a load of `format`; null with `off` (or no option). Warns (via `warn`)
 * naming the file when an existing file is rebuilt. `quantizer`: the native quantizer's id (nativeQuantizerId),
 * asked for only once the option is known to need a file.
 */
export function planQuantizedFile(ckpt: Checkpoint, format: ExpertFormat, option: QuantizedFileOption | undefined, quantizer: () => string, warn: (message: string) => void): QuantizedFilePlan | null {
  checkQuantizedFileOption(option, format);
  if (option === undefined || option === 'off') return null;
  const auto = option === 'auto';
  const path = auto ? autoQuantizedFilePath(ckpt.dir, format) : resolve(option);
  const protectedFiles = new Set([...ckpt.shards.map((s) => resolve(s)), resolve(ckpt.dir, 'config.json'), resolve(ckpt.dir, 'model.safetensors.index.json')]);
  if (protectedFiles.has(path)) throw new UserError(`option --quantized-file: ${path} is part of the checkpoint; name another file`);
  if (!existsSync(dirname(path)) || !statSync(dirname(path)).isDirectory()) throw new UserError(`option --quantized-file: ${dirname(path)}: no such folder`);
  removeStalePartials(path);
  const expected = expectedQuantizedFileHeader(ckpt, format, quantizer(), checkpointFingerprint(ckpt));
  if (!existsSync(path)) return { path, mode: 'write', header: expected.header };
  if (!statSync(path).isFile()) throw new UserError(`option --quantized-file: ${path} exists and is not a file`);
  const meta = ownMetadata(path);
  if (meta === 'foreign' || (meta === 'unreadable' && !auto)) {
    throw new UserError(
      `option --quantized-file: ${path} exists and is not a moe-offload quantized experts file${meta === 'unreadable' ? ' (its header cannot be read)' : ''}; it is not overwritten: remove it or name another file`,
    );
  }
  const reason = meta === 'unreadable' ? 'its header cannot be read (truncated or corrupt)' : mismatch(path, expected, meta);
  if (reason === null) return { path, mode: 'read', header: expected.header };
  warn(`quantized experts file ${path}: ${reason}; it is not used, and is rebuilt by this load`);
  return { path, mode: 'write', header: expected.header };
}

/**
 * The native quantizer's id for a quantized format (recorded in the file; a file of another is rebuilt). An
 * addon built before the quantized experts file cannot say it, and cannot read or write the file: refused.
 */
export function nativeQuantizerId(addon: NativeAddon, config: ModelConfig, format: ExpertFormat): string {
  const id = addon.expertLayout?.(format.dtype, config.hiddenSize, config.moeIntermediateSize, format.group).quantizer;
  if (id === undefined || addon.expertBlobs === undefined) {
    throw new UserError('option --quantized-file: this build of the native engine has no quantized experts file; rebuild it (npm run build:native, or tools/gpu/build-cuda.sh)');
  }
  return id;
}

/** Where a quantized load's experts came from, for a log line: "quantized in 18.2 s, written to F" or "read from F in 2.0 s". */
export function describeExpertSource(stats: { quantizeSeconds?: number; quantizedFile?: { path: string; read: boolean; written: boolean; rebuiltExperts: number; readSeconds: number } | null } | null): string {
  const q = `quantized in ${Number(stats?.quantizeSeconds ?? 0).toFixed(1)} s`;
  const f = stats?.quantizedFile;
  if (!f) return q;
  if (f.read) return `read from ${f.path} in ${f.readSeconds.toFixed(1)} s${f.rebuiltExperts > 0 ? `, ${f.rebuiltExperts} experts ${q}, file rewritten` : ''}`;
  return `${q}${f.written ? `, written to ${f.path}` : `; ${f.path} not written`}`;
}
