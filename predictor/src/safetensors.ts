/**
 * The predictor's weights file: f32 tensors in a safetensors container. The container's header is the
 * project's (core/src/safetensors.ts: bound-checked reader, aligned writer); this file adds only
 * the f32 data and the predictor's rule that every tensor is F32.
 * Readable by the Python `safetensors` package, by torch, and by a few lines of C++.
 */
import { DTYPE_BYTES, encodeSafetensorsHeader, parseSafetensorsBytes } from '../../core/src/safetensors.js';
import { BadInputError } from '../../core/src/errors.js';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`internal: tensor ${t.name} has ${t.data.length} values for shape [${t.shape}]`);
  }
  const header = encodeSafetensorsHeader(
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape })),
    metadata,
  );
  const dataBytes = tensors.reduce((a, t) => a + DTYPE_BYTES.F32 * t.data.length, 0);
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header, 0);
  const view = new DataView(out.buffer);
  let o = header.length;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++, o += 4) view.setFloat32(o, t.data[i], true);
  }
  return out;
}

export interface DecodedSafetensors {
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
}

/** `bytes` is the whole file read from `path` (which names it in errors). */
export function decodeSafetensors(bytes: Uint8Array, path: string): DecodedSafetensors {
  const header = parseSafetensorsBytes(path, bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of header.tensors) {
    if (t.dtype !== 'F32') throw new BadInputError(path, `tensor ${t.name}: dtype ${t.dtype} is not supported (expected F32)`);
    const data = new Float32Array(t.nbytes / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(t.offset + 4 * i, true);
    tensors.set(t.name, { shape: t.shape, data });
  }
  return { tensors, metadata: header.metadata };
}
