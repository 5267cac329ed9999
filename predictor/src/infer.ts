/**
 * Inference without TensorFlow.js: loads DIR/predictor.json + DIR/weights.safetensors and runs the MLP
 * with plain Float32Array loops. This is what the simulator uses and the reference that a native
 * (C++/CUDA) port must match; predictor/test checks it against the TF.js model.
 *
 * Inputs are mostly zeros (a few multi-hot routing sets and a one-hot layer), so each layer walks
 * the nonzero inputs and adds rows of W^T: the same sums as a dense matmul, in a different order.
 */
import type { SequenceRouting } from '../../traces/src/sequences.js';
import { featureWidth, writeFeatures, type FeatureSpec } from './features.js';
import { topIndices } from './metrics.js';
import type { MlpWeights } from './mlp.js';
import { readPredictorDir, type PredictorManifest } from './predictor-dir.js';

export interface InferLayer {
  inWidth: number;
  outWidth: number;
  /** [in, out]: W transposed, so a nonzero input adds one contiguous row. */
  weightT: Float32Array;
  bias: Float32Array;
}

export class PredictorRuntime {
  readonly spec: FeatureSpec;
  readonly width: number;
  /** The dense layers, W transposed (what the runtime's C++ port, native/src/offload/predictor_mlp.cpp, takes). */
  readonly layers: readonly InferLayer[];
  private readonly scratch: Float32Array[];
  private readonly features: Float32Array;
  private readonly logits: Float32Array;

  constructor(readonly manifest: PredictorManifest, weights: MlpWeights) {
    this.spec = manifest.features;
    this.width = featureWidth(this.spec);
    this.layers = weights.map((l) => {
      const weightT = new Float32Array(l.inWidth * l.outWidth);
      for (let o = 0; o < l.outWidth; o++) for (let i = 0; i < l.inWidth; i++) weightT[i * l.outWidth + o] = l.weight[o * l.inWidth + i];
      return { inWidth: l.inWidth, outWidth: l.outWidth, weightT, bias: l.bias };
    });
    this.scratch = this.layers.map((l) => new Float32Array(l.outWidth));
    this.features = new Float32Array(this.width);
    this.logits = new Float32Array(manifest.geometry.numExperts);
  }

  static load(dir: string): PredictorRuntime {
    const p = readPredictorDir(dir);
    return new PredictorRuntime(p.manifest, p.weights);
  }

  /** Logits of one feature row x[offset .. offset + width) into out[outOffset .. + numExperts). */
  forwardRow(x: Float32Array, offset: number, out: Float32Array, outOffset: number): void {
    let input = x;
    let inOffset = offset;
    this.layers.forEach((l, n) => {
      const y = this.scratch[n];
      y.set(l.bias);
      for (let i = 0; i < l.inWidth; i++) {
        const v = input[inOffset + i];
        if (v === 0) continue;
        const row = i * l.outWidth;
        for (let o = 0; o < l.outWidth; o++) y[o] += v * l.weightT[row + o];
      }
      if (n + 1 < this.layers.length) for (let o = 0; o < l.outWidth; o++) if (y[o] < 0) y[o] = 0;
      input = y;
      inOffset = 0;
    });
    out.set(this.scratch[this.layers.length - 1], outOffset);
  }

  /** Feature rows [n * width] -> logits [n * numExperts] (the Scorer shape evaluate() takes). */
  forward(features: Float32Array, n: number): Float32Array {
    const E = this.manifest.geometry.numExperts;
    const out = new Float32Array(n * E);
    for (let r = 0; r < n; r++) this.forwardRow(features, r * this.width, out, r * E);
    return out;
  }

  /**
   * The `budget` experts predicted for token t at MoE layer i + k, best first, into out[0 .. budget);
   * all numExperts logits into `logits` when given.
   */
  predict(s: SequenceRouting, t: number, i: number, budget: number, out: Uint16Array, logits?: Float32Array): void {
    writeFeatures(s, t, i, this.spec, this.features, 0);
    this.forwardRow(this.features, 0, this.logits, 0);
    topIndices(this.logits, 0, this.logits.length, budget, out);
    logits?.set(this.logits);
  }
}
