import { closeSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { expectedTensors } from '../../src/model/tensor-names.js';
import { BLOCK_ELEMS, bf16BitsToF32, bf16Table, fillBlock, tensorSeed } from '../../src/model/synth/random-weights.js';
import { distributionFor } from '../../src/model/synth/shard-plan.js';
import { TINY_VARIANTS } from '../../src/model/synth/geometries.js';
import { BadInputError } from '../../../core/src/errors.js';
import { tempDir } from '../../../core/test/helpers.js';
import { copyDir, editJson, makeTiny, readShardRaw, shardOf, writeShardRaw } from './fixtures.js';

const d = tempDir();
let base: string;
let n = 0;
/** A fresh copy of the tiny-a checkpoint to damage. */
const fresh = () => copyDir(base, join(d.path, `copy${n++}`));

beforeAll(async () => {
  base = await makeTiny(join(d.path, 'tiny-a'), 'tiny-a', 1);
});
afterAll(() => d.cleanup());

function readBytes(file: string, offset: number, nbytes: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(nbytes);
    readSync(fd, b, 0, nbytes, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

describe('openCheckpoint on synthetic checkpoints', () => {
  it('opens every tiny geometry with exactly the tensors its config implies', async () => {
    for (const v of TINY_VARIANTS) {
      const dir = v === 'tiny-a' ? base : await makeTiny(join(d.path, v), v, 1);
      const warnings: string[] = [];
      const c = openCheckpoint(dir, { onWarning: (m) => warnings.push(m) });
      const want = expectedTensors(c.config);
      expect(c.tensors.size, v).toBe(want.length);
      for (const e of want) expect(c.tensors.get(e.name)?.shape, e.name).toEqual(e.shape);
      expect(warnings, v).toEqual([]);
      expect(c.shards.length, v).toBeGreaterThan(1);
      expect(c.configHash).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('TensorInfo points at the tensor bytes (absolute offset in the shard)', () => {
    const c = openCheckpoint(base);
    for (const name of ['model.embed_tokens.weight', 'model.layers.2.mlp.experts.7.down_proj.weight', 'lm_head.weight']) {
      const t = c.tensors.get(name)!;
      const elems = Math.min(t.nbytes / 2, BLOCK_ELEMS);
      const want = new Uint16Array(elems);
      const e = expectedTensors(c.config).find((x) => x.name === name)!;
      fillBlock(want, tensorSeed(1, name), 0, bf16Table(distributionFor(e)));
      const got = readBytes(t.file, t.offset, 2 * elems);
      expect(Buffer.from(want.buffer).equals(got), name).toBe(true);
      expect(t.offset + t.nbytes).toBeLessThanOrEqual(statSync(t.file).size);
    }
  });

  it('weights have the intended scale: norms near 1, projections std ~ 1/sqrt(fan_in)', () => {
    const c = openCheckpoint(base);
    const stats = (name: string) => {
      const t = c.tensors.get(name)!;
      const b = readBytes(t.file, t.offset, t.nbytes);
      const v = Array.from({ length: t.nbytes / 2 }, (_, i) => bf16BitsToF32(b.readUInt16LE(2 * i)));
      const mean = v.reduce((a, x) => a + x, 0) / v.length;
      return { mean, std: Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / v.length) };
    };
    const norm = stats('model.layers.0.input_layernorm.weight');
    expect(norm.mean).toBeCloseTo(1, 1);
    expect(norm.std).toBeLessThan(0.1);
    const q = stats('model.layers.1.self_attn.q_proj.weight'); // fan_in = hidden 64
    expect(Math.abs(q.mean)).toBeLessThan(0.01);
    expect(q.std).toBeGreaterThan(0.95 / 8);
    expect(q.std).toBeLessThan(1.05 / 8);
  });

  it('reads the single-file layout (model.safetensors, no index)', async () => {
    const dir = await makeTiny(join(d.path, 'single'), 'tiny-d', 3, Number.MAX_SAFE_INTEGER);
    const [only] = openCheckpoint(dir).shards;
    renameSync(only, join(dir, 'model.safetensors'));
    unlinkSync(join(dir, 'model.safetensors.index.json'));
    const c = openCheckpoint(dir);
    expect(c.shards).toEqual([join(dir, 'model.safetensors')]);
    expect(c.tensors.size).toBe(expectedTensors(c.config).length);
  });

  it('warns about, and ignores, tensors the model does not use', () => {
    const dir = fresh();
    const shard = join(dir, shardOf(dir, 'model.norm.weight'));
    writeShardRaw(shard, [...readShardRaw(shard), { name: 'model.mtp.extra.weight', dtype: 'BF16', shape: [2], data: Buffer.alloc(4) }]);
    editJson(join(dir, 'model.safetensors.index.json'), (o) => (o.weight_map['model.mtp.extra.weight'] = shardOf(dir, 'model.norm.weight')));
    const c = openCheckpoint(dir);
    expect(c.warnings.join('\n')).toMatch(/1 tensor\(s\) not used by a DeepSeek-V2 model of this config, ignored: model\.mtp\.extra\.weight/);
  });
});

describe('openCheckpoint: bad checkpoints give errors naming the file and the tensor', () => {
  const expectBad = (dir: string, ...messages: RegExp[]) => {
    let err: unknown;
    try {
      openCheckpoint(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadInputError);
    for (const m of messages) expect((err as Error).message).toMatch(m);
  };
  const expert = 'model.layers.1.mlp.experts.3.up_proj.weight';

  it('missing shard', () => {
    const dir = fresh();
    const shard = shardOf(dir, expert);
    unlinkSync(join(dir, shard));
    expectBad(dir, new RegExp(`${shard}: missing shard: model\\.safetensors\\.index\\.json maps model\\.`));
  });

  it('missing tensor', () => {
    const dir = fresh();
    const shard = join(dir, shardOf(dir, expert));
    writeShardRaw(shard, readShardRaw(shard).filter((e) => e.name !== expert));
    editJson(join(dir, 'model.safetensors.index.json'), (o) => delete o.weight_map[expert]);
    expectBad(dir, /tensor model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight is missing \(config\.json implies it, shape \[32, 64\]/);
  });

  it('tensor listed in the index but absent from its shard', () => {
    const dir = fresh();
    const shard = join(dir, shardOf(dir, expert));
    writeShardRaw(shard, readShardRaw(shard).filter((e) => e.name !== expert));
    expectBad(dir, new RegExp(`tensor ${expert.replace(/\./g, '\\.')}: model\\.safetensors\\.index\\.json says this shard holds it but its header does not`));
  });

  it('wrong shape', () => {
    const dir = fresh();
    const shard = join(dir, shardOf(dir, expert));
    writeShardRaw(shard, readShardRaw(shard).map((e) => (e.name === expert ? { ...e, shape: [64, 32] } : e)));
    expectBad(dir, /tensor model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight has shape \[64, 32\] but config\.json implies \[32, 64\] \(moe_intermediate_size, hidden_size\)/);
  });

  it('truncated shard', () => {
    const dir = fresh();
    const shard = join(dir, shardOf(dir, 'lm_head.weight'));
    truncateSync(shard, statSync(shard).size - 100);
    expectBad(dir, new RegExp(`${shard.replace(/[.]/g, '\\.')}: tensor lm_head\\.weight: data ends at byte \\d+ but the file has only`));
  });

  it('header offsets that lie', () => {
    const dir = fresh();
    const shard = join(dir, shardOf(dir, expert));
    const entries = readShardRaw(shard);
    let at = 0;
    const lying = entries.map((e) => {
      const begin = at;
      at += e.data.length;
      // the expert claims to start 2 bytes early: it overlaps its neighbour
      return e.name === expert ? { ...e, offsets: [begin - 2, begin - 2 + e.data.length] as [number, number] } : e;
    });
    writeShardRaw(shard, lying);
    expectBad(dir, /tensor model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight: data_offsets \[\d+, \d+\] overlap tensor/);
  });

  it('config.json contradicting the tensors: expert count', () => {
    const dir = fresh();
    editJson(join(dir, 'config.json'), (o) => (o.n_routed_experts = 16));
    expectBad(dir, /config\.json: n_routed_experts = 16 contradicts the checkpoint: layer 1 holds experts 0\.\.7 \(8 experts\)/);
  });

  it('config.json contradicting the tensors: layer count', () => {
    const dir = fresh();
    editJson(join(dir, 'config.json'), (o) => (o.num_hidden_layers = 5));
    expectBad(dir, /num_hidden_layers = 5 contradicts the checkpoint, whose tensors cover layers 0\.\.2 \(3 layers\)/);
  });

  it('config.json contradicting the tensors: q_lora_rank and first_k_dense_replace', () => {
    const a = fresh();
    editJson(join(a, 'config.json'), (o) => (o.q_lora_rank = 16));
    expectBad(a, /q_lora_rank = 16 contradicts the checkpoint, which holds a plain q_proj/);
    const b = fresh();
    editJson(join(b, 'config.json'), (o) => (o.first_k_dense_replace = 2));
    expectBad(b, /first_k_dense_replace = 2 contradicts the checkpoint: layer 1 holds a MoE block, not a dense MLP/);
  });

  it('config.json contradicting the tensors: sizes', () => {
    const dir = fresh();
    editJson(join(dir, 'config.json'), (o) => (o.hidden_size = 128));
    expectBad(dir, /tensor model\.embed_tokens\.weight has shape \[512, 64\] but config\.json implies \[512, 128\] \(vocab_size, hidden_size\)/);
  });

  it('pickle checkpoints are refused', () => {
    const dir = join(d.path, 'pickle');
    mkdirSync(dir);
    copyDir(join(base, 'config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, 'pytorch_model.bin'), Buffer.from('PK\x03\x04 pickle'));
    expectBad(dir, /pytorch_model\.bin: pickle checkpoints \(\.bin\/\.pt\) are refused: loading them can run arbitrary code/);
    const viaIndex = fresh();
    editJson(join(viaIndex, 'model.safetensors.index.json'), (o) => (o.weight_map['lm_head.weight'] = 'pytorch_model-00001-of-00002.bin'));
    expectBad(viaIndex, /pickle checkpoints/);
  });

  it('shard names that leave the checkpoint directory', () => {
    const dir = fresh();
    editJson(join(dir, 'model.safetensors.index.json'), (o) => (o.weight_map['lm_head.weight'] = '../elsewhere.safetensors'));
    expectBad(dir, /weight_map\[lm_head\.weight\] = "\.\.\/elsewhere\.safetensors" is not a \.safetensors file name in the checkpoint directory/);
  });

  it('no weights, no config, not a directory', () => {
    const dir = fresh();
    unlinkSync(join(dir, 'model.safetensors.index.json'));
    expectBad(dir, /no weights: expected model\.safetensors\.index\.json with its shards, or model\.safetensors/);
    const noConfig = fresh();
    rmSync(join(noConfig, 'config.json'));
    expectBad(noConfig, /config\.json: missing/);
    expectBad(join(d.path, 'absent'), /not a directory/);
  });

  it('a broken index', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": 3}');
    expectBad(dir, /model\.safetensors\.index\.json: weight_map is missing or not an object/);
  });
});
