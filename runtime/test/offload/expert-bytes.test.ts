/**
 * Bytes of one expert per dtype (sim/src/cost/expert-layout.ts, the TypeScript mirror of expert_layout() in
 * native/src/quant/expert_format.cpp): DeepSeek-V2-Lite's sizes worked out by hand from the format, the
 * budget's larger slot counts, and, when the addon is built and exports `expertLayout` (issue 13, added by
 * native/addon/quant_binding.cpp), the mirror against the native function for several shapes.
 */
import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../../src/model/config.js';
import { LITE_CONFIG } from '../../src/model/synth/geometries.js';
import { expertBytes, planGpuMemory } from '../../src/offload/gpu-budget.js';
import { expertLayout, EXPERT_DTYPES } from '../../../sim/src/cost/expert-layout.js';
import { loadNativeAddon } from '../../src/engine/native-binding.js';
import { addonBuilt } from '../engine/helpers.js';

const lite = parseModelConfig(structuredClone(LITE_CONFIG), 'config.json');
const GiB = 2 ** 30;

interface NativeLayout {
  bytes: number;
  gate: { q: number; scale: number; zero: number };
  up: { q: number; scale: number; zero: number };
  down: { q: number; scale: number; zero: number };
}
type ExpertLayoutFn = (dtype: string, hidden: number, dff: number, group?: number) => NativeLayout;

function nativeExpertLayout(): ExpertLayoutFn | null {
  if (!addonBuilt) return null;
  const fn = (loadNativeAddon() as unknown as { expertLayout?: ExpertLayoutFn }).expertLayout;
  return typeof fn === 'function' ? fn : null;
}

describe('expert bytes per dtype (DeepSeek-V2-Lite: hidden 2048, d_ff 1408)', () => {
  it('bf16: 3 x 1408 x 2048 x 2 = 17,301,504 bytes, no scales', () => {
    const L = expertLayout('bf16', 2048, 1408);
    expect(L.bytes).toBe(17_301_504);
    expect([L.gate.q, L.up.q, L.down.q]).toEqual([0, 1408 * 2048 * 2, 2 * 1408 * 2048 * 2]);
    expect(expertBytes(lite)).toBe(17_301_504);
  });

  it('int8: 8,650,752 weight bytes + fp32 scales for 1408 + 1408 + 2048 rows = 8,670,208 bytes', () => {
    const L = expertLayout('int8', 2048, 1408);
    // q region 3 x 1408 x 2048 = 8,650,752 (256-aligned already); scales 4 x (1408 + 1408 + 2048) = 19,456
    expect(L.gate.scale).toBe(8_650_752);
    expect(L.up.scale).toBe(8_650_752 + 1408 * 4);
    expect(L.down.scale).toBe(8_650_752 + 2 * 1408 * 4);
    expect(L.bytes).toBe(8_670_208);
    expect(expertBytes(lite, { dtype: 'int8', group: 64 })).toBe(8_670_208);
  });

  it('int4, group 64: 4,325,376 packed bytes + fp16 scales and zeros of 1408 x 32 + 1408 x 32 + 2048 x 22 groups = 4,866,048 bytes', () => {
    const L = expertLayout('int4', 2048, 1408, 64);
    const groups = 1408 * 32 * 2 + 2048 * 22; // 135,168 groups, 2 bytes each per region
    expect(L.gate.scale).toBe(4_325_376);
    expect(L.gate.zero).toBe(4_325_376 + groups * 2);
    expect(L.bytes).toBe(4_325_376 + 2 * groups * 2);
    expect(L.bytes).toBe(4_866_048);
    // group 128: half the groups
    expect(expertLayout('int4', 2048, 1408, 128).bytes).toBe(4_325_376 + 2 * (groups / 2) * 2);
  });

  it('aligns every region to 256 bytes (odd shapes)', () => {
    const L = expertLayout('int4', 96, 40, 8);
    // q: 3 x 96 x 40 / 2 = 5760 (aligned: 5888)
    expect(L.gate.scale).toBe(5888);
    expect(L.gate.zero % 256).toBe(0);
    expect(L.bytes % 256).toBe(0);
    expect(expertLayout('int8', 10, 6).bytes).toBe(Math.ceil((Math.ceil(180 / 256) * 256 + 4 * 22) / 256) * 256);
  });

  it('refuses what expert_layout() refuses, naming the figures', () => {
    expect(() => expertLayout('int4', 2048, 1408, 96)).toThrow(/group size 96 must divide hidden \(2048\) and moe_intermediate_size \(1408\)/);
    expect(() => expertLayout('int4', 2048, 1408, 3)).toThrow(/positive even number/);
    expect(() => expertLayout('fp8' as never, 2048, 1408)).toThrow(/unknown expert dtype 'fp8'/);
    expect(() => expertBytes(lite, { dtype: 'int4', group: 96 })).toThrow(/option --expert-group: .*group size 96/);
  });

  it('the same 12 GiB budget gives about 2x (int8) and 3.5x (int4) the bf16 slots, capped at 64', () => {
    const shape = { batch: 1, contextTokens: 192 };
    const bf16 = planGpuMemory(lite, 12 * GiB, shape);
    const int8 = planGpuMemory(lite, 12 * GiB, shape, { dtype: 'int8', group: 64 });
    const int4 = planGpuMemory(lite, 12 * GiB, shape, { dtype: 'int4', group: 64 });
    expect(int8.expertBytes).toBe(8_670_208);
    expect(int4.expertBytes).toBe(4_866_048);
    expect(int8.slotsPerLayer).toBeGreaterThanOrEqual(2 * bf16.slotsPerLayer - 1);
    expect(int4.slotsPerLayer).toBe(Math.min(64, Math.floor((12 * GiB - int4.fixedBytes) / int4.slotBytes)));
    expect(int4.slotsPerLayer).toBeGreaterThan(int8.slotsPerLayer);
    expect(int8.totalBytes).toBeLessThanOrEqual(12 * GiB);
    // staging buffers hold quantized blobs too
    expect(int8.stagingBytes).toBe(4 * 8_670_208);
  });
});

const native = nativeExpertLayout();
if (!native) {
  console.warn(
    `[skip] expert layout mirror vs native: ${addonBuilt ? 'this build of the addon does not export expertLayout (issue 13, native/addon/quant_binding.cpp, added in parallel)' : 'the native addon is not built; run `npm run build:native`'}`,
  );
}

describe.skipIf(!native)('expert layout mirror vs the addon\'s expertLayout', () => {
  const shapes: Array<[number, number, number]> = [[2048, 1408, 64], [2048, 1408, 128], [64, 32, 32], [96, 40, 8], [4096, 1536, 64]];
  for (const dtype of EXPERT_DTYPES) {
    for (const [h, f, g] of shapes) {
      it(`${dtype} hidden ${h} d_ff ${f}${dtype === 'int4' ? ` group ${g}` : ''}: every offset and the size equal`, () => {
        const mine = expertLayout(dtype, h, f, g);
        const theirs = native!(dtype, h, f, g);
        expect(theirs.bytes).toBe(mine.bytes);
        for (const m of ['gate', 'up', 'down'] as const) {
          expect(theirs[m].q).toBe(mine[m].q);
          if (dtype !== 'bf16') expect(theirs[m].scale).toBe(mine[m].scale);
          if (dtype === 'int4') expect(theirs[m].zero).toBe(mine[m].zero);
        }
      });
    }
  }
});
