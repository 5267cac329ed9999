/**
 * The golden test: for every tiny geometry, the engine's logits at the prefill and at each of 32
 * greedy decode steps are within 1e-4 relative error of transformers' (fp32, eager attention), the
 * greedy tokens are identical, and the same holds when the three prompts of different lengths run
 * as one batch. The prefill's per-layer residual stream is compared too (the debug capture hook),
 * so a regression points at the first layer that diverges.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { TINY_VARIANTS } from '../../src/model/synth/geometries.js';
import { requirePythonOrSkip, runCli, tempDir } from '../../../core/test/helpers.js';
import { makeCheckpoint, relativeError, requireAddonOrSkip, runOracle, type OracleResult } from './helpers.js';

const TOLERANCE = 1e-4;
const DECODE_STEPS = 32;
const ready = requireAddonOrSkip('engine vs transformers') && requirePythonOrSkip('engine vs transformers', 'torch', 'transformers', 'safetensors');

/** Three prompts of different lengths (5, 2 and 23 tokens) starting with <bos>. */
function promptsFor(bos: number, vocab: number): number[][] {
  const ids = (n: number, mul: number) => Array.from({ length: n }, (_, i) => (7 + i * mul) % (vocab - 30));
  return [[bos, ...ids(4, 37)], [bos, 9], [bos, ...ids(22, 11)]];
}

function compare(label: string, got: { tokens: number[]; logits: Float32Array[] }, want: OracleResult): number {
  expect(got.logits.length, `${label}: logit vectors`).toBe(want.logits.length);
  let worst = 0;
  want.logits.forEach((row, k) => {
    const err = relativeError(got.logits[k], row);
    worst = Math.max(worst, err);
    expect(err, `${label}: relative logit error at step ${k}`).toBeLessThan(TOLERANCE);
  });
  expect(got.tokens, `${label}: greedy tokens`).toEqual(want.tokens);
  return worst;
}

describe.skipIf(!ready).each(TINY_VARIANTS)('engine vs transformers on %s', (geometry) => {
  const tmp = tempDir(`moe-engine-${geometry}-`);
  let model: string;
  let prompts: number[][];
  let oracle: OracleResult[];
  let engine: Engine;

  beforeAll(async () => {
    model = await makeCheckpoint(`${tmp.path}/ckpt`, geometry, 11);
    engine = await Engine.load(model, { threads: 2 });
    prompts = promptsFor(engine.config.bosTokenId, engine.config.vocabSize);
    oracle = runOracle(model, prompts, DECODE_STEPS + 1, tmp.path, true);
  });
  afterAll(() => {
    engine?.close();
    tmp.cleanup();
  });

  it('matches each prompt alone: prefill + 32 greedy steps, and the prefill hidden states', async () => {
    let worst = 0;
    for (let i = 0; i < prompts.length; i++) {
      engine.setDebugCapture(['h']);
      const r = await engine.generateAll({ prompts: [prompts[i]], maxNewTokens: DECODE_STEPS + 1, stopOnEos: false, recordLogits: true });
      const captured = engine.takeDebugCapture();
      engine.setDebugCapture(null);
      worst = Math.max(worst, compare(`${geometry} prompt ${i}`, { tokens: r.tokens[0], logits: engine.logits!.perSequence[0] }, oracle[i]));
      // Prefill: the first num_hidden_layers captures are the layers' outputs over the whole prompt.
      const layers = oracle[i].hidden_states!.layers;
      layers.forEach((want, l) => {
        const got = captured[l];
        expect(got.name === 'h' && got.layer === l && got.rows === prompts[i].length).toBe(true);
        expect(relativeError(got.data, want.flat()), `${geometry} prompt ${i}: hidden state of layer ${l}`).toBeLessThan(TOLERANCE);
      });
    }
    console.log(`[agreement] ${geometry}: max relative logit error ${worst.toExponential(2)} (prompts alone)`);
  });

  it('matches with the three prompts as one batch', async () => {
    const r = await engine.generateAll({ prompts, maxNewTokens: DECODE_STEPS + 1, stopOnEos: false, recordLogits: true });
    let worst = 0;
    prompts.forEach((_, i) => {
      worst = Math.max(worst, compare(`${geometry} batch row ${i}`, { tokens: r.tokens[i], logits: engine.logits!.perSequence[i] }, oracle[i]));
    });
    console.log(`[agreement] ${geometry}: max relative logit error ${worst.toExponential(2)} (batch of 3)`);
  });

  it('generate --json prints the oracle tokens', () => {
    const r = runCli(['generate', '--model', model, '--prompt-ids', prompts[0].join(','), '--max-new-tokens', String(DECODE_STEPS + 1), '--no-stop-on-eos', '--json', '--threads', '2']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.tokens).toEqual(oracle[0].tokens);
    expect(typeof doc.text).toBe('string');
  });
});
