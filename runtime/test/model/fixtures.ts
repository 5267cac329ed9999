/** Helpers for the checkpoint tests: tiny synthetic checkpoints and surgery on their shards. */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveGeometry } from '../../src/model/synth/geometries.js';
import { writeSyntheticCheckpoint } from '../../src/model/synth/write-checkpoint.js';

export async function makeTiny(out: string, variant = 'tiny-a', seed = 1, maxShardBytes?: number): Promise<string> {
  await writeSyntheticCheckpoint({ geometry: resolveGeometry(variant), seed, out, quiet: true, maxShardBytes });
  return out;
}

export function copyDir(src: string, dst: string): string {
  cpSync(src, dst, { recursive: true });
  return dst;
}

export interface RawEntry {
  name: string;
  dtype: string;
  shape: number[];
  data: Buffer;
  /** when set, written as data_offsets verbatim instead of the computed ones (to make a header lie) */
  offsets?: [number, number];
}

/** Reads a shard without validation (the tests corrupt shards on purpose). */
export function readShardRaw(path: string): RawEntry[] {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const start = 8 + n;
  return Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: buf.subarray(start + e.data_offsets[0], start + e.data_offsets[1]) }))
    .sort((a, b) => a.data.byteOffset - b.data.byteOffset);
}

/** Writes entries back as a shard; offsets follow the data unless an entry carries its own. */
export function writeShardRaw(path: string, entries: RawEntry[], extraData = Buffer.alloc(0)): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: e.offsets ?? [at, at + e.data.length] };
    at += e.data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...entries.map((e) => e.data), extraData]));
}

/** The shard file (basename) that holds `tensor`, from the index. */
export function shardOf(dir: string, tensor: string): string {
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  return index.weight_map[tensor];
}

export function editJson(path: string, edit: (o: Record<string, any>) => void): void {
  const o = JSON.parse(readFileSync(path, 'utf8'));
  edit(o);
  writeFileSync(path, JSON.stringify(o, null, 2));
}
