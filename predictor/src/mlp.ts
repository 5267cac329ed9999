/**
 * The predictor's network as plain data: an MLP of dense layers with ReLU between them and logits out
 * (sigmoid gives per-expert probabilities). No TensorFlow.js here: infer.ts, the exporter and the
 * TF.js trainer all share these types.
 */
import { mulberry32 } from './random.js';

export interface MlpArchitecture {
  inputWidth: number;
  /** Hidden layer widths, input side first. */
  hidden: number[];
  outputWidth: number;
  /** Between layers; the output layer is linear (logits). */
  activation: 'relu';
}

export interface DenseWeights {
  inWidth: number;
  outWidth: number;
  /** [outWidth, inWidth] f32, row-major: the layout of PyTorch's nn.Linear.weight. */
  weight: Float32Array;
  /** [outWidth] f32. */
  bias: Float32Array;
}

/** One entry per dense layer, input side first. */
export type MlpWeights = DenseWeights[];

export function layerWidths(a: MlpArchitecture): number[] {
  return [a.inputWidth, ...a.hidden, a.outputWidth];
}

/** Glorot-uniform weights and zero biases from a seeded PRNG, so a training run repeats exactly. */
export function initMlpWeights(a: MlpArchitecture, seed: number): MlpWeights {
  const rand = mulberry32(seed ^ 0x5eed);
  const widths = layerWidths(a);
  const layers: MlpWeights = [];
  for (let n = 0; n + 1 < widths.length; n++) {
    const inWidth = widths[n];
    const outWidth = widths[n + 1];
    const limit = Math.sqrt(6 / (inWidth + outWidth));
    const weight = new Float32Array(outWidth * inWidth);
    for (let i = 0; i < weight.length; i++) weight[i] = (rand() * 2 - 1) * limit;
    layers.push({ inWidth, outWidth, weight, bias: new Float32Array(outWidth) });
  }
  return layers;
}

export function tensorName(layer: number, part: 'weight' | 'bias'): string {
  return `mlp.${layer}.${part}`;
}
