/**
 * The safetensors container, written and read here without any library: 8-byte little-endian header
 * length N, N bytes of JSON header ({name: {dtype, shape, data_offsets: [begin, end]}, optional
 * __metadata__ of string values}), then the raw little-endian tensor data. Only F32 is produced or accepted.
 * Readable by the Python `safetensors` package, by torch, and by a few lines of C++.
 */
import { BadInputError } from '../../runtime/src/util/errors.js';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`internal: tensor ${t.name} has ${t.data.length} values for shape [${t.shape}]`);
    if (t.name in header) throw new Error(`internal: tensor ${t.name} twice`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned (the format allows trailing whitespace in the header).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let o = 8 + headerBytes.length;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++, o += 4) view.setFloat32(o, t.data[i], true);
  }
  return out;
}

export interface DecodedSafetensors {
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
}

export function decodeSafetensors(bytes: Uint8Array, path: string): DecodedSafetensors {
  if (bytes.length < 8) throw new BadInputError(path, 'not a safetensors file (shorter than its 8-byte header length)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength < 2 || 8 + headerLength > bytes.length) throw new BadInputError(path, `not a safetensors file (header length ${headerLength} does not fit in ${bytes.length} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8'));
  } catch {
    throw new BadInputError(path, 'not a safetensors file (the header is not JSON)');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new BadInputError(path, 'safetensors header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e.dtype !== 'F32') throw new BadInputError(path, `tensor ${name}: dtype ${String(e.dtype)} is not supported (expected F32)`);
    const shape = e.shape;
    const offs = e.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new BadInputError(path, `tensor ${name}: bad shape`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0)) throw new BadInputError(path, `tensor ${name}: bad data_offsets`);
    const [begin, end] = offs as number[];
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== 4 * n) throw new BadInputError(path, `tensor ${name}: data_offsets span ${end - begin} bytes, shape [${shape}] needs ${4 * n}`);
    if (end > dataLength) throw new BadInputError(path, `tensor ${name}: data runs past the end of the file (truncated?)`);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(dataStart + begin + 4 * i, true);
    tensors.set(name, { shape: shape as number[], data });
  }
  return { tensors, metadata };
}
