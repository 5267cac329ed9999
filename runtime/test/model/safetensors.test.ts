import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeSafetensorsHeader, parseSafetensorsBytes, readSafetensorsHeader } from '../../../core/src/safetensors.js';
import { BadInputError } from '../../../core/src/errors.js';
import { tempDir } from '../../../core/test/helpers.js';
import { writeShardRaw, type RawEntry } from './fixtures.js';

const d = tempDir();
afterAll(() => d.cleanup());
let n = 0;
const path = () => join(d.path, `t${n++}.safetensors`);

const bf16 = (name: string, shape: number[]): RawEntry => ({ name, dtype: 'BF16', shape, data: Buffer.alloc(2 * shape.reduce((a, b) => a * b, 1), 7) });

/** A file whose 8-byte length prefix and JSON are given verbatim. */
function rawFile(header: string | object, data: Buffer, lengthOverride?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  const p = path();
  writeFileSync(p, Buffer.concat([len, json, data]));
  return p;
}

describe('safetensors header: well-formed files', () => {
  it('returns absolute offsets, sizes, dtypes and metadata', () => {
    const p = path();
    writeShardRaw(p, [bf16('a', [2, 3]), { name: 'b', dtype: 'F32', shape: [4], data: Buffer.alloc(16) }, { name: 'c', dtype: 'F16', shape: [0], data: Buffer.alloc(0) }]);
    const h = readSafetensorsHeader(p);
    expect(h.metadata).toEqual({ format: 'pt' });
    const [a, b] = h.tensors;
    expect(a).toMatchObject({ name: 'a', dtype: 'BF16', shape: [2, 3], offset: h.dataStart, nbytes: 12 });
    expect(b).toMatchObject({ name: 'b', dtype: 'F32', shape: [4], offset: h.dataStart + 12, nbytes: 16 });
    expect(h.fileSize).toBe(h.dataStart + 28);
    expect(parseSafetensorsBytes(p, readFileSync(p))).toEqual(h);
  });

  it('reads back what encodeSafetensorsHeader writes, data 8-byte aligned', () => {
    const header = encodeSafetensorsHeader(
      [{ name: 'w', dtype: 'BF16', shape: [3, 5] }, { name: 'b', dtype: 'F32', shape: [3] }, { name: 'e', dtype: 'F16', shape: [0] }],
      { format: 'pt' },
    );
    expect(header.length % 8).toBe(0);
    const p = path();
    writeFileSync(p, Buffer.concat([header, Buffer.alloc(30 + 12)]));
    const h = readSafetensorsHeader(p);
    expect(h.dataStart).toBe(header.length);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors.map((t) => [t.name, t.dtype, t.shape, t.offset - h.dataStart, t.nbytes])).toEqual([
      ['w', 'BF16', [3, 5], 0, 30],
      ['b', 'F32', [3], 30, 12],
      ['e', 'F16', [0], 42, 0],
    ]);
    expect(() => encodeSafetensorsHeader([{ name: 'w', dtype: 'F32', shape: [1] }, { name: 'w', dtype: 'F32', shape: [1] }])).toThrow(/w is reserved or used twice/);
  });
});

describe('safetensors header: bad input gives an error naming the file and the tensor', () => {
  // Each case also goes through parseSafetensorsBytes (the same checks on a file read into memory).
  const expectBad = (p: string, message: RegExp) => {
    expect(() => readSafetensorsHeader(p)).toThrow(BadInputError);
    expect(() => readSafetensorsHeader(p)).toThrow(message);
    expect(() => readSafetensorsHeader(p)).toThrow(p);
    if (!existsSync(p)) return;
    const bytes = readFileSync(p);
    expect(() => parseSafetensorsBytes(p, bytes)).toThrow(BadInputError);
    expect(() => parseSafetensorsBytes(p, bytes)).toThrow(message);
    expect(() => parseSafetensorsBytes(p, bytes)).toThrow(p);
  };

  it('missing file', () => expectBad(join(d.path, 'nope.safetensors'), /missing safetensors file/));

  it('file shorter than the length prefix', () => {
    const p = path();
    writeFileSync(p, Buffer.from([1, 2, 3]));
    expectBad(p, /truncated: 3 bytes/);
  });

  it('header length larger than the file', () => {
    expectBad(rawFile({ a: { dtype: 'BF16', shape: [1], data_offsets: [0, 2] } }, Buffer.alloc(2), 10_000n), /header length 10000 is larger than the file/);
  });

  it('header length beyond the 100 MB limit', () => {
    expectBad(rawFile('{}', Buffer.alloc(0), 1n << 40n), /exceeds the 104857600-byte limit/);
  });

  it('header that is not JSON', () => expectBad(rawFile('{"a": [', Buffer.alloc(0)), /header is not valid JSON/));

  it('unknown dtype', () => {
    expectBad(rawFile({ w: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 4] } }, Buffer.alloc(4)), /tensor w: dtype "Q4_K" is unknown dtype/);
  });

  it('valid safetensors dtype that is not a weight dtype', () => {
    expectBad(rawFile({ w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, Buffer.alloc(8)), /tensor w: dtype "I64" is not supported for weights/);
  });

  it('offsets that disagree with dtype and shape', () => {
    expectBad(rawFile({ w: { dtype: 'BF16', shape: [3, 4], data_offsets: [0, 12] } }, Buffer.alloc(12)), /tensor w: data_offsets \[0, 12\] span 12 bytes but BF16 shape \[3, 4\] needs 24/);
  });

  it('data past the end of the file (truncated shard, or a lying header)', () => {
    expectBad(rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(10)), /tensor w: data ends at byte \d+ but the file has only \d+ bytes/);
  });

  it('overlapping ranges', () => {
    const p = path();
    writeShardRaw(p, [
      { ...bf16('first', [4]), offsets: [0, 8] },
      { ...bf16('second', [4]), offsets: [4, 12] },
    ]);
    expectBad(p, /tensor second: data_offsets \[4, 12\] overlap tensor first/);
  });

  it('a hole between tensors', () => {
    const p = path();
    writeShardRaw(p, [{ ...bf16('a', [2]), offsets: [0, 4] }, { ...bf16('b', [2]), offsets: [8, 12] }], Buffer.alloc(4));
    expectBad(p, /tensor b: data starts at 8 but the previous tensor ends at 4: 4 bytes unaccounted for/);
  });

  it('trailing bytes no tensor accounts for', () => {
    const p = path();
    writeShardRaw(p, [bf16('a', [2])], Buffer.alloc(6));
    expectBad(p, /cover 4 bytes of data but the file holds 10: 6 trailing bytes/);
  });

  it('end before begin, negative or fractional numbers', () => {
    expectBad(rawFile({ w: { dtype: 'BF16', shape: [0], data_offsets: [4, 2] } }, Buffer.alloc(4)), /tensor w: data_offsets \[4, 2\] end before they begin/);
    expectBad(rawFile({ w: { dtype: 'BF16', shape: [-2], data_offsets: [0, 4] } }, Buffer.alloc(4)), /tensor w: shape \[-2\] is not a list of non-negative integers/);
    expectBad(rawFile({ w: { dtype: 'BF16', shape: [2], data_offsets: [0, 4.5] } }, Buffer.alloc(4)), /tensor w: data_offsets \[0,4\.5\] is not a pair/);
  });

  it('entries and metadata of the wrong type', () => {
    expectBad(rawFile({ w: 3 }, Buffer.alloc(0)), /tensor w: header entry is not an object/);
    expectBad(rawFile({ __metadata__: { format: 1 } }, Buffer.alloc(0)), /__metadata__\.format is not a string/);
    expectBad(rawFile('[1]', Buffer.alloc(0)), /header is not a JSON object/);
  });
});
