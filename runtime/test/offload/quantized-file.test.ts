/**
 * The quantized experts file (quantized-file.ts + the addon's expertBlobs, which fills the blobs exactly as a
 * CUDA load's host memory): written on the first load and read on the next with the same bytes as a fresh
 * quantization; every way an existing file can be wrong (truncated, another checkpoint, dtype, group,
 * quantizer) is named in a warning and rebuilt; a file that is not ours, or part of the checkpoint, is
 * refused and left alone. The native side's own checks (checksums, a file changed after the plan) are in
 * native/tests/quant_tests.cpp.
 */
import { copyFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../../src/engine/native-binding.js';
import { toNativeConfig, toNativeTensors } from '../../src/engine/native-config.js';
import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.js';
import { autoQuantizedFilePath, planQuantizedFile, QUANTIZED_FILE_FORMAT, type QuantizedFilePlan } from '../../src/offload/quantized-file.js';
import type { ExpertFormat } from '../../src/offload/gpu-budget.js';
import { RAW_DTYPE_BYTES, readSafetensorsHeader } from '../../../core/src/safetensors.js';
import { UserError } from '../../../core/src/errors.js';
import { tempDir } from '../../../core/test/helpers.js';
import { makeCheckpoint, requireAddonOrSkip } from '../engine/helpers.js';

describe('auto names one file per format', () => {
  it('dtype, and the group for int4', () => {
    expect(autoQuantizedFilePath('/m', { dtype: 'int8', group: 64 })).toBe('/m/moe-offload-experts-int8.safetensors');
    expect(autoQuantizedFilePath('/m', { dtype: 'int4', group: 32 })).toBe('/m/moe-offload-experts-int4-g32.safetensors');
  });
});

const ready = requireAddonOrSkip('quantized experts file');

describe.skipIf(!ready)('quantized experts file', () => {
  const tmp = tempDir();
  let a: Checkpoint;
  let b: Checkpoint;
  const int4: ExpertFormat = { dtype: 'int4', group: 32 };
  const int8: ExpertFormat = { dtype: 'int8', group: 64 };
  const addon = () => loadNativeAddon();
  const quantizer = (f: ExpertFormat) => addon().expertLayout!(f.dtype, 64, 32, f.group).quantizer!;
  const blobs = (ckpt: Checkpoint, f: ExpertFormat, file?: QuantizedFilePlan) =>
    addon().expertBlobs!({ config: toNativeConfig(ckpt.config), tensors: toNativeTensors(ckpt), dtype: f.dtype, group: f.group, file, returnBlobs: true });
  const plan = (ckpt: Checkpoint, f: ExpertFormat, option: string, q = quantizer(f)) => {
    const warnings: string[] = [];
    return { plan: planQuantizedFile(ckpt, f, option, () => q, (w) => warnings.push(w)), warnings };
  };
  let fresh4: Buffer;

  beforeAll(async () => {
    a = openCheckpoint(await makeCheckpoint(join(tmp.path, 'a'), 'tiny-a', 1));
    b = openCheckpoint(await makeCheckpoint(join(tmp.path, 'b'), 'tiny-a', 2));
    fresh4 = (await blobs(a, int4)).blobs!;
  }, 120_000);
  afterAll(() => tmp.cleanup());

  it('off and no option: no file', () => {
    expect(plan(a, int4, 'off').plan).toBeNull();
    expect(planQuantizedFile(a, int4, undefined, () => 'q', () => {})).toBeNull();
  });

  it('first load writes it, the next reads the same bytes as a fresh quantization', async () => {
    const first = plan(a, int4, 'auto');
    expect(first.plan?.mode).toBe('write');
    expect(first.plan?.path).toBe(autoQuantizedFilePath(a.dir, int4));
    const w = await blobs(a, int4, first.plan!);
    expect(w.file).toMatchObject({ written: true, read: false, rebuiltExperts: 0, warning: '' });
    expect(w.blobs!.equals(fresh4)).toBe(true);
    // a safetensors file: its header says what it holds, one U8 tensor per MoE layer and the checksums last
    const h = readSafetensorsHeader(first.plan!.path, RAW_DTYPE_BYTES);
    expect(h.metadata).toMatchObject({ format: QUANTIZED_FILE_FORMAT, expert_dtype: 'int4', group: '32', quantizer: quantizer(int4), moe_layers: '1,2' });
    expect(h.dataStart % 4096).toBe(0);
    expect(h.tensors.map((t) => `${t.name}:${t.dtype}:${t.shape.join('x')}`)).toEqual([`layers.1.mlp.experts:U8:8x${fresh4.length / 16}`, `layers.2.mlp.experts:U8:8x${fresh4.length / 16}`, 'checksums:U64:2x8']);
    expect(readFileSync(first.plan!.path).subarray(h.dataStart, h.dataStart + fresh4.length).equals(fresh4)).toBe(true);

    const second = plan(a, int4, 'auto');
    expect(second).toMatchObject({ plan: { mode: 'read' }, warnings: [] });
    const r = await blobs(a, int4, second.plan!);
    expect(r.file).toMatchObject({ read: true, written: false, rebuiltExperts: 0, warning: '' });
    expect(r.quantizeSeconds).toBe(0);
    expect(r.blobs!.equals(fresh4)).toBe(true);
  });

  it('truncated: named in the warning, rebuilt by the load, whole again afterwards', async () => {
    const path = autoQuantizedFilePath(a.dir, int4);
    if (!existsSync(path)) await blobs(a, int4, plan(a, int4, 'auto').plan!);
    const size = statSync(path).size;
    truncateSync(path, size - 100);
    const p = plan(a, int4, 'auto');
    expect(p.plan?.mode).toBe('write');
    expect(p.warnings).toHaveLength(1);
    expect(p.warnings[0]).toContain(path);
    expect(p.warnings[0]).toMatch(/truncated/);
    const r = await blobs(a, int4, p.plan!);
    expect(r.file?.written).toBe(true);
    expect(r.blobs!.equals(fresh4)).toBe(true);
    expect(statSync(path).size).toBe(size);
    expect(plan(a, int4, 'auto').plan?.mode).toBe('read');
  });

  it('another checkpoint, dtype, group or quantizer: never used, rebuilt, the warning says which', async () => {
    const path = join(tmp.path, 'one.safetensors');
    await blobs(a, int4, plan(a, int4, path).plan!);
    const cases: Array<[Checkpoint, ExpertFormat, string | undefined, RegExp]> = [
      [b, int4, undefined, /written from another checkpoint/],
      [a, int8, undefined, /holds int4 experts, not int8/],
      [a, { dtype: 'int4', group: 16 }, undefined, /holds int4 groups of 32, not 16/],
      [a, int4, 'int4-other-quantizer', /written by quantizer .* this build quantizes with int4-other-quantizer/],
    ];
    for (const [ckpt, f, q, why] of cases) {
      const p = plan(ckpt, f, path, q ?? quantizer(f));
      expect(p.plan?.mode, String(why)).toBe('write');
      expect(p.warnings.join('\n'), String(why)).toMatch(why);
      expect(p.warnings[0]).toContain(path);
    }
    // seeds 1 and 2 have identical safetensors headers: only the sampled weight bytes tell them apart
    copyFileSync(autoQuantizedFilePath(a.dir, int4), autoQuantizedFilePath(b.dir, int4));
    const other = plan(b, int4, 'auto');
    expect(other.warnings.join('\n')).toMatch(/written from another checkpoint/);
    const rebuilt = await blobs(b, int4, other.plan!);
    expect(rebuilt.blobs!.equals(fresh4)).toBe(false);
    expect(rebuilt.blobs!.equals((await blobs(b, int4)).blobs!)).toBe(true);
  });

  it('a file that is not ours, a checkpoint file, bf16, a missing folder: refused before loading, nothing overwritten', () => {
    const foreign = join(tmp.path, 'notes.safetensors');
    writeFileSync(foreign, 'not a quantized experts file');
    expect(() => plan(a, int4, foreign)).toThrow(/is not a moe-offload quantized experts file .*not overwritten/);
    expect(readFileSync(foreign, 'utf8')).toBe('not a quantized experts file');
    expect(() => plan(a, int4, a.shards[0])).toThrow(/is part of the checkpoint/);
    expect(() => plan(a, { dtype: 'bf16', group: 64 }, 'auto')).toThrow(UserError);
    expect(() => plan(a, { dtype: 'bf16', group: 64 }, 'auto')).toThrow(/only with --expert-dtype int8 or int4/);
    expect(() => plan(a, int4, join(tmp.path, 'no', 'such', 'f.safetensors'))).toThrow(/no such folder/);
  });

  it('partial files of loads that died are removed; a running process keeps its own', () => {
    const path = autoQuantizedFilePath(a.dir, int8);
    const dead = `${path}.partial-${2 ** 22 + 7}`; // above Linux's largest pid: no such process
    const alive = `${path}.partial-${process.pid}`;
    writeFileSync(dead, 'x');
    writeFileSync(alive, 'x');
    plan(a, int8, 'auto');
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(alive)).toBe(true);
  });
});
