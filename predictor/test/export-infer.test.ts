import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTf } from '../src/tf-backend.js';
import { TfMlp } from '../src/tf-mlp.js';
import { initMlpWeights, type MlpArchitecture } from '../src/mlp.js';
import { defaultFeatureSpec, featureWidth, writeFeatures } from '../src/features.js';
import { readPredictorDir, writePredictorDir, type PredictorManifest } from '../src/predictor-dir.js';
import { PredictorRuntime } from '../src/infer.js';
import { decodeSafetensors, encodeSafetensors } from '../src/safetensors.js';
import { structuredSequences } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'predictor-export-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const g = { L: 4, k: 2, E: 8 };
const geometry = { numMoeLayers: 4, numExperts: 8, topK: 2 };

function manifestFor(arch: MlpArchitecture, lookahead: number): Omit<PredictorManifest, 'weights' | 'model'> & { model: MlpArchitecture } {
  const spec = defaultFeatureSpec(geometry, lookahead, { perLayer: true });
  return {
    format: 'moe-offload-predictor',
    version: 1,
    geometry: { moeLayers: [1, 2, 3, 4], numExperts: 8, topK: 2, modelId: 'tiny', configHash: 'test' },
    lookahead,
    features: { ...spec, width: featureWidth(spec) },
    model: arch,
    popularity: Array.from({ length: 4 }, () => Array(8).fill(1)),
    training: {
      backend: 'test', createdAt: new Date(0).toISOString(), seed: 1, options: {},
      split: { kind: 'sequence', train: [], val: [], test: [] },
      samples: { train: 0, val: 0, test: 0 }, history: [], bestEpoch: 0, stoppedEarly: false, routing: [],
    },
  };
}

describe('safetensors', () => {
  it('round-trips f32 tensors with an 8-byte aligned data section', () => {
    const bytes = encodeSafetensors([{ name: 'a', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) }, { name: 'b', shape: [1], data: Float32Array.from([7]) }], { k: '1' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const d = decodeSafetensors(bytes, 'mem');
    expect(d.metadata).toEqual({ k: '1' });
    expect(d.tensors.get('a')).toEqual({ shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) });
    expect(Array.from(d.tensors.get('b')!.data)).toEqual([7]);
  });

  it('refuses truncated, foreign and non-f32 files by name', () => {
    const bytes = encodeSafetensors([{ name: 'a', shape: [4], data: new Float32Array(4) }]);
    expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), 'w.st')).toThrow(/w\.st: tensor a: data ends at byte \d+ but the file has only \d+ bytes/);
    expect(() => decodeSafetensors(Buffer.from('hello world, not safetensors'), 'x.st')).toThrow(/x\.st: header length \d+ exceeds .*not a safetensors file/);
    expect(() => decodeSafetensors(Buffer.from('short'), 's.st')).toThrow(/s\.st: truncated: 5 bytes/);
    const header = Buffer.from(JSON.stringify({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }));
    const f16 = Buffer.concat([Buffer.from(new BigUint64Array([BigInt(header.length)]).buffer), header, Buffer.alloc(4)]);
    expect(() => decodeSafetensors(f16, 'h.st')).toThrow(/dtype F16 is not supported/);
  });
});

describe('export and pure-TypeScript inference', () => {
  it('gives the TF.js model outputs from predictor.json + weights.safetensors', async () => {
    const { tf } = await loadTf();
    const m = manifestFor({ inputWidth: 0, hidden: [16, 12], outputWidth: 8, activation: 'relu' }, 2);
    const arch = { ...m.model, inputWidth: m.features.width };
    m.model = arch;
    const weights = initMlpWeights(arch, 11);
    // Non-zero biases, so that a dropped or misplaced bias shows up.
    weights.forEach((l, n) => l.bias.forEach((_, i) => (l.bias[i] = 0.05 * (i - n))));
    const model = new TfMlp(tf, arch, weights);
    const dir = join(tmp, 'p1');
    writePredictorDir(dir, m, model.readWeights());

    const seqs = structuredSequences(g, 2, 5, 7);
    const rows: Float32Array[] = [];
    for (const s of seqs) for (let t = 0; t < s.length; t++) for (let i = 0; i + 2 < 4; i++) {
      const x = new Float32Array(arch.inputWidth);
      writeFeatures(s, t, i, m.features, x, 0);
      rows.push(x);
    }
    const x = new Float32Array(rows.length * arch.inputWidth);
    rows.forEach((r, n) => x.set(r, n * arch.inputWidth));
    const expected = model.scorer()(x, rows.length);
    model.dispose();

    const runtime = PredictorRuntime.load(dir);
    const got = runtime.forward(x, rows.length);
    expect(got.length).toBe(expected.length);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]) / (1e-5 + 1e-4 * Math.abs(expected[i])));
    expect(worst, 'largest |infer - tfjs| / (atol + rtol |tfjs|)').toBeLessThan(1);
    // Logits must not be all alike (a constant output would match trivially).
    expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(0.1);

    // predict() = features + forward + top-budget
    const out = new Uint16Array(3);
    runtime.predict(seqs[1], 4, 1, 3, out);
    const row = rows[(5 + 4) * 2 + 1];
    const logits = runtime.forward(row, 1);
    const best = Array.from(logits).map((v, e) => [v, e]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 3).map((p) => p[1]);
    expect(Array.from(out)).toEqual(best);
  });

  it('refuses a missing directory, a foreign manifest, a swapped weights file and a mismatched tensor', () => {
    const arch = { inputWidth: 0, hidden: [4], outputWidth: 8, activation: 'relu' as const };
    const m = manifestFor(arch, 1);
    m.model = { ...arch, inputWidth: m.features.width };
    const dir = join(tmp, 'p2');
    writePredictorDir(dir, m, initMlpWeights(m.model, 1));
    expect(() => readPredictorDir(join(tmp, 'nope'))).toThrow(/nope: not a predictor directory/);
    expect(() => readPredictorDir(tmp)).toThrow(/no predictor\.json/);

    const other = join(tmp, 'p3');
    writePredictorDir(other, m, initMlpWeights(m.model, 2));
    writeFileSync(join(dir, 'weights.safetensors'), readFileSync(join(other, 'weights.safetensors')));
    expect(() => readPredictorDir(dir)).toThrow(/does not match predictor\.json.*another training run/);

    const manifest = JSON.parse(readFileSync(join(other, 'predictor.json'), 'utf8'));
    writeFileSync(join(other, 'predictor.json'), JSON.stringify({ ...manifest, format: 'something-else' }));
    expect(() => readPredictorDir(other)).toThrow(/not a moe-offload predictor manifest/);
    writeFileSync(join(other, 'predictor.json'), JSON.stringify({ ...manifest, model: { ...manifest.model, hidden: [5] } }));
    expect(() => readPredictorDir(other)).toThrow(/mlp\.0\.weight has shape \[4,\d+\], the manifest says \[5,/);
    writeFileSync(join(other, 'predictor.json'), JSON.stringify({ ...manifest, features: { ...manifest.features, blocks: [{ kind: 'routing', layerOffset: 1, tokenOffset: 0 }] } }));
    expect(() => readPredictorDir(other)).toThrow(/not yet computed/);
  });
});
