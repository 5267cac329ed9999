/**
 * Deterministic random bf16 weights, generated fast enough to write the full DeepSeek-V2-Lite
 * geometry (15.7 G values) in tens of seconds.
 *
 * Each tensor's data is cut into fixed blocks of BLOCK_ELEMS values; block b of tensor T is filled
 * from an xorshift128 stream seeded by hash(seed, T, b). Any block can therefore be produced on
 * its own (by any worker, in any order) and the bytes depend only on (seed, name, shape, kind).
 * Values are drawn by table lookup: 16 random bits index a 65,536-entry table holding the bf16
 * quantiles of the wanted normal distribution (a normal truncated at about 4.3 sigma).
 */

export const BLOCK_ELEMS = 1 << 20;

/** How a tensor's values are distributed: normal(mean, std), as bf16. */
export interface Distribution {
  mean: number;
  std: number;
}

/** 32-bit FNV-1a over a string: turns tensor names into seeds. */
export function hashString(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** splitmix32-style finaliser: well mixed 32-bit outputs from consecutive inputs. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export function tensorSeed(seed: number, name: string): number {
  return hashString(name, mix32(seed >>> 0) ^ mix32(Math.floor(seed / 2 ** 32)));
}

const tableCache = new Map<string, Uint16Array>();

/** The 65,536 bf16 quantiles of normal(mean, std); index order is irrelevant because indices are random. */
export function bf16Table(dist: Distribution): Uint16Array {
  const key = `${dist.mean}/${dist.std}`;
  let table = tableCache.get(key);
  if (table) return table;
  table = new Uint16Array(65536);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < 65536; i++) {
    f32[0] = dist.mean + dist.std * inverseNormalCdf((i + 0.5) / 65536);
    table[i] = f32ToBf16Bits(u32[0]);
  }
  tableCache.set(key, table);
  return table;
}

/** Round-to-nearest-even truncation of float32 bits to bf16 bits (finite inputs only). */
export function f32ToBf16Bits(bits: number): number {
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

export function bf16BitsToF32(bits: number): number {
  const u32 = new Uint32Array([bits << 16]);
  return new Float32Array(u32.buffer)[0];
}

/**
 * Fills `out` (bf16 values as u16, little-endian host) with block `block` of the tensor stream
 * `tSeed`. `out.length` is BLOCK_ELEMS except for a tensor's last block.
 * Self-contained (no outside references): parallel-fill.ts ships its source text to worker threads.
 */
export function fillBlock(out: Uint16Array, tSeed: number, block: number, table: Uint16Array): void {
  const mix32 = (v: number): number => {
    v = (v + 0x9e3779b9) | 0;
    v = Math.imul(v ^ (v >>> 16), 0x85ebca6b);
    v = Math.imul(v ^ (v >>> 13), 0xc2b2ae35);
    return (v ^ (v >>> 16)) >>> 0;
  };
  if (out.byteOffset % 4 !== 0) {
    // The u32 fast path needs 4-byte alignment; a tensor after one with an odd element count lacks it.
    const aligned = new Uint16Array(out.length);
    fillBlock(aligned, tSeed, block, table);
    out.set(aligned);
    return;
  }
  let x = mix32(tSeed ^ Math.imul(block + 1, 0x27d4eb2d));
  let y = mix32(x ^ 0x68e31da4);
  let z = mix32(y ^ 0xb5297a4d);
  let w = mix32(z ^ 0x1b56c4e9);
  if ((x | y | z | w) === 0) w = 1;
  const pairs = out.length >>> 1;
  // Two values per 32-bit draw (little-endian host: the low half is the first value).
  const out32 = new Uint32Array(out.buffer, out.byteOffset, pairs);
  for (let i = 0; i < pairs; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    out32[i] = table[w & 0xffff] | (table[w >>> 16] << 16);
  }
  if (out.length & 1) {
    const t = x ^ (x << 11);
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    out[out.length - 1] = table[w & 0xffff];
  }
}

/** Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9). */
export function inverseNormalCdf(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -inverseNormalCdf(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}
