import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { BadInputError } from './errors.js';

/**
 * The header of a .safetensors file: read with every field bound-checked, so that a corrupt or hostile
 * file yields an error naming the file and the tensor, never an out-of-bounds read later; and written
 * (encodeSafetensorsHeader) for the files this project produces (synthetic checkpoints, predictor weights).
 *
 * Layout: u64 little-endian N, then N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__"?: {string: string}}, then the data region; offsets are relative to its start (8 + N).
 */

export type TensorDtype = 'BF16' | 'F16' | 'F32';

export const DTYPE_BYTES: Readonly<Record<TensorDtype, number>> = { BF16: 2, F16: 2, F32: 4 };

/** Raw bytes and 64-bit words: the quantized experts file's dtypes (runtime/src/offload/quantized-file.ts), never weights. */
export type RawDtype = 'U8' | 'U64';
export const RAW_DTYPE_BYTES: Readonly<Record<RawDtype, number>> = { U8: 1, U64: 8 };

/** dtypes of the safetensors format that are valid but not weights this engine uses */
const OTHER_SAFETENSORS_DTYPES = new Set(['F64', 'F8_E4M3', 'F8_E5M2', 'I8', 'U8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'BOOL']);

/** A header longer than this is refused outright (real ones are a few MB at most). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsEntry<D extends string = TensorDtype> {
  name: string;
  dtype: D;
  shape: number[];
  /** absolute byte offset of the tensor's data in the file */
  offset: number;
  nbytes: number;
}

export interface SafetensorsHeader<D extends string = TensorDtype> {
  file: string;
  fileSize: number;
  /** absolute offset of the data region (8 + header length) */
  dataStart: number;
  metadata: Record<string, string>;
  /** in file order (ascending offset) */
  tensors: SafetensorsEntry<D>[];
}

/** `dtypes`: the dtypes accepted and their sizes (default: the weights' BF16, F16, F32). */
export function readSafetensorsHeader<D extends string = TensorDtype>(file: string, dtypes: Readonly<Record<D, number>> = DTYPE_BYTES as Record<D, number>): SafetensorsHeader<D> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BadInputError(file, code === 'ENOENT' ? 'missing safetensors file' : `cannot open (${code ?? (err as Error).message})`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) throw new BadInputError(file, `truncated: ${fileSize} bytes, too short for a safetensors header`);
    const lenBuf = Buffer.alloc(8);
    readExactly(fd, lenBuf, 0, file);
    const headerBuf = Buffer.alloc(checkedHeaderLength(file, lenBuf.readBigUInt64LE(0), fileSize));
    readExactly(fd, headerBuf, 8, file);
    return parseHeader(file, headerBuf, fileSize, dtypes);
  } finally {
    closeSync(fd);
  }
}

/**
 * The same checks on a whole file already in memory (`bytes`, read from `file`, which only names it in
 * errors): for callers that need the bytes anyway, e.g. to hash them.
 */
export function parseSafetensorsBytes(file: string, bytes: Uint8Array): SafetensorsHeader {
  const fileSize = bytes.length;
  if (fileSize < 8) throw new BadInputError(file, `truncated: ${fileSize} bytes, too short for a safetensors header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = checkedHeaderLength(file, view.getBigUint64(0, true), fileSize);
  return parseHeader(file, Buffer.from(bytes.buffer, bytes.byteOffset + 8, n), fileSize, DTYPE_BYTES);
}

function checkedHeaderLength(file: string, headerLen: bigint, fileSize: number): number {
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new BadInputError(file, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or corrupt)`);
  }
  if (headerLen > BigInt(fileSize - 8)) {
    throw new BadInputError(file, `header length ${headerLen} is larger than the file (${fileSize} bytes): truncated or corrupt`);
  }
  return Number(headerLen);
}

function readExactly(fd: number, buf: Buffer, position: number, file: string): void {
  let done = 0;
  while (done < buf.length) {
    const got = readSync(fd, buf, done, buf.length - done, position + done);
    if (got === 0) throw new BadInputError(file, `truncated while reading the header at byte ${position + done}`);
    done += got;
  }
}

function parseHeader<D extends string>(file: string, headerBuf: Buffer, fileSize: number, dtypes: Readonly<Record<D, number>>): SafetensorsHeader<D> {
  const dataStart = 8 + headerBuf.length;
  let json: unknown;
  try {
    json = JSON.parse(headerBuf.toString('utf8'));
  } catch (err) {
    throw new BadInputError(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new BadInputError(file, 'header is not a JSON object');

  const metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry<D>[] = [];
  const dataSize = fileSize - dataStart;
  const ranges: { name: string; begin: number; end: number }[] = [];

  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BadInputError(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new BadInputError(file, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor ${name}`;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BadInputError(file, `${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (typeof dtype !== 'string') throw new BadInputError(file, `${where}: dtype is missing or not a string`);
    if (!Object.hasOwn(dtypes, dtype)) {
      const known = OTHER_SAFETENSORS_DTYPES.has(dtype) || dtype in DTYPE_BYTES;
      const why = known ? `not supported ${(dtypes as unknown) === DTYPE_BYTES ? 'for weights' : 'in this file'}` : 'unknown dtype';
      throw new BadInputError(file, `${where}: dtype ${JSON.stringify(dtype)} is ${why} (expected ${Object.keys(dtypes).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new BadInputError(file, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new BadInputError(file, `${where}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw new BadInputError(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    const elems = (shape as number[]).reduce((a, d) => a * d, 1);
    const expected = elems * dtypes[dtype as D];
    if (!Number.isSafeInteger(expected) || end - begin !== expected) {
      throw new BadInputError(
        file,
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} shape [${(shape as number[]).join(', ')}] needs ${expected}`,
      );
    }
    if (end > dataSize) {
      throw new BadInputError(file, `${where}: data ends at byte ${dataStart + end} but the file has only ${fileSize} bytes (truncated, or the header lies)`);
    }
    ranges.push({ name, begin, end });
    tensors.push({ name, dtype: dtype as D, shape: (shape as number[]).slice(), offset: dataStart + begin, nbytes: end - begin });
  }

  checkCoverage(file, ranges, dataSize);
  tensors.sort((a, b) => a.offset - b.offset);
  return { file, fileSize, dataStart, metadata, tensors };
}

/** The data region must be exactly tiled by the tensors: no overlaps, no holes, nothing after the last. */
function checkCoverage(file: string, ranges: { name: string; begin: number; end: number }[], dataSize: number): void {
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev = '';
  for (const r of ranges) {
    if (r.begin < cursor) {
      throw new BadInputError(file, `tensor ${r.name}: data_offsets [${r.begin}, ${r.end}] overlap tensor ${prev} (which ends at ${cursor})`);
    }
    if (r.begin > cursor) {
      throw new BadInputError(file, `tensor ${r.name}: data starts at ${r.begin} but the previous tensor ends at ${cursor}: ${r.begin - cursor} bytes unaccounted for`);
    }
    cursor = r.end;
    prev = r.name;
  }
  if (cursor !== dataSize) {
    throw new BadInputError(file, `the tensors cover ${cursor} bytes of data but the file holds ${dataSize}: ${dataSize - cursor} trailing bytes unaccounted for`);
  }
}

/** A tensor of a file being written; the data follows the header in this order, back to back. */
export interface HeaderTensor<D extends string = TensorDtype> {
  name: string;
  dtype: D;
  shape: readonly number[];
}

/**
 * The header bytes (u64 length + JSON) for `tensors` laid out back to back in the given order, with
 * `metadata` first when there is any. The JSON is padded with spaces (the format allows trailing
 * whitespace) so that the data region starts `align`-byte aligned (default 8; a multiple of 8).
 */
export function encodeSafetensorsHeader<D extends string = TensorDtype>(
  tensors: readonly HeaderTensor<D>[],
  metadata: Readonly<Record<string, string>> = {},
  options: { dtypes?: Readonly<Record<D, number>>; align?: number } = {},
): Buffer {
  const dtypes = options.dtypes ?? (DTYPE_BYTES as Record<D, number>);
  const align = options.align ?? 8;
  if (!Number.isInteger(align) || align < 8 || align % 8 !== 0) throw new Error(`internal: header alignment ${align} is not a positive multiple of 8`);
  const obj: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) obj.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(obj, t.name)) throw new Error(`internal: tensor name ${t.name} is reserved or used twice`);
    const nbytes = t.shape.reduce((a, d) => a * d, 1) * dtypes[t.dtype];
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  let json = JSON.stringify(obj);
  json += ' '.repeat((align - ((8 + Buffer.byteLength(json)) % align)) % align);
  const body = Buffer.from(json, 'utf8');
  const header = Buffer.alloc(8 + body.length);
  header.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(header, 8);
  return header;
}
