/**
 * The MLP in TensorFlow.js, for training. Weights live in tf.variables shaped [in, out]; conversion to
 * and from the plain MlpWeights ([out, in], the exported layout) happens at the edges.
 *
 * Dense layers go through a custom gradient: the wasm backend's matMul with a transposed operand runs
 * 15-25x slower than an explicit transpose followed by a plain matMul (measured on this project's
 * machines, 2048x300x256), and the default gradient of matMul uses the transposed forms.
 *
 * The input is mostly zeros, so in training the first layer's weight gradient is a scatter-add of
 * dy rows into the rows of the nonzero inputs (SparseRows), not X^T dy over the whole width; the forward
 * pass stays a dense matMul (the wasm backend's gather is far slower than its matMul).
 */
import type * as TfModule from '@tensorflow/tfjs';
import type { Tf } from './tf-backend.js';
import type { MlpArchitecture, MlpWeights } from './mlp.js';
import type { Scorer } from './evaluate.js';

type Tensor2D = TfModule.Tensor2D;

/** The nonzeros of a batch of input rows, padded to `perRow` per row with (index 0, value 0). */
export interface SparseRows {
  perRow: number;
  /** [n * perRow] column of each nonzero. */
  index: Int32Array;
  /** [n * perRow] its value. */
  value: Float32Array;
}

/** Fills `into` with the nonzeros of x[0 .. n * width); a row with more than into.perRow nonzeros is a bug upstream. */
export function sparsify(x: Float32Array, n: number, width: number, into: SparseRows): void {
  const { perRow, index, value } = into;
  for (let r = 0; r < n; r++) {
    let m = r * perRow;
    const end = m + perRow;
    for (let c = 0; c < width; c++) {
      const v = x[r * width + c];
      if (v === 0) continue;
      if (m === end) throw new Error(`internal: feature row ${r} has more than ${perRow} nonzeros`);
      index[m] = c;
      value[m++] = v;
    }
    index.fill(0, m, end);
    value.fill(0, m, end);
  }
}

export class TfMlp {
  private readonly w: TfModule.Variable[] = [];
  private readonly b: TfModule.Variable[] = [];
  private readonly denseFirst: (x: TfModule.Tensor, w: TfModule.Tensor) => TfModule.Tensor;
  private readonly denseInner: (x: TfModule.Tensor, w: TfModule.Tensor) => TfModule.Tensor;

  constructor(private readonly tf: Tf, readonly arch: MlpArchitecture, weights: MlpWeights) {
    for (const layer of weights) {
      this.w.push(tf.variable(tf.tidy(() => tf.transpose(tf.tensor2d(layer.weight, [layer.outWidth, layer.inWidth])))));
      this.b.push(tf.variable(tf.tensor1d(layer.bias)));
    }
    const dense = (inputGrad: boolean) =>
      tf.customGrad(((...args: unknown[]) => {
        const [x, w, save] = args as [Tensor2D, Tensor2D, (t: TfModule.Tensor[]) => void];
        save([x, w]);
        return {
          value: tf.matMul(x, w),
          gradFunc: (dy: TfModule.Tensor, saved: TfModule.Tensor[]) => {
            const [xs, ws] = saved as Tensor2D[];
            const dx = inputGrad ? tf.matMul(dy as Tensor2D, tf.transpose(ws)) : tf.zerosLike(xs);
            return [dx, tf.matMul(tf.transpose(xs), dy as Tensor2D)];
          },
        };
      }) as never) as (x: TfModule.Tensor, w: TfModule.Tensor) => TfModule.Tensor;
    // The network's input needs no gradient: skip that matMul for the first layer.
    this.denseFirst = dense(false);
    this.denseInner = dense(true);
  }

  get variables(): TfModule.Variable[] {
    return [...this.w, ...this.b];
  }

  /** x: [n, inputWidth] -> logits [n, outputWidth]. */
  logits(x: TfModule.Tensor, firstLayer = this.denseFirst): TfModule.Tensor {
    const tf = this.tf;
    let h = x;
    for (let n = 0; n < this.w.length; n++) {
      h = tf.add((n === 0 ? firstLayer : this.denseInner)(h, this.w[n]), this.b[n]);
      if (n + 1 < this.w.length) h = tf.relu(h);
    }
    return h;
  }

  /**
   * Mean sigmoid binary cross-entropy over all (sample, expert) pairs. With `sparse` (the nonzeros of
   * x's n rows), the first layer's weight gradient is computed by scatter-add; the value is the same.
   */
  loss(x: TfModule.Tensor, labels: TfModule.Tensor, sparse?: SparseRows): TfModule.Scalar {
    const tf = this.tf;
    if (!sparse) return tf.losses.sigmoidCrossEntropy(labels, this.logits(x)) as TfModule.Scalar;
    const n = x.shape[0] as number;
    const [inWidth, hidden] = this.w[0].shape as [number, number];
    const index = tf.tensor2d(sparse.index.subarray(0, n * sparse.perRow), [n * sparse.perRow, 1], 'int32');
    const value = tf.tensor3d(sparse.value.subarray(0, n * sparse.perRow), [n, sparse.perRow, 1]);
    // index and value are inputs (and saved) so that the tape keeps them alive until the backward pass.
    const sparseDense = tf.customGrad(((...args: unknown[]) => {
      const [xs, w, idx, val, save] = args as [Tensor2D, Tensor2D, Tensor2D, TfModule.Tensor3D, (t: TfModule.Tensor[]) => void];
      save([xs, idx, val]);
      return {
        value: tf.matMul(xs, w),
        gradFunc: (dy: TfModule.Tensor, saved: TfModule.Tensor[]) => {
          const [xsS, idxS, valS] = saved;
          const rows = tf.reshape(tf.mul(tf.reshape(dy, [n, 1, hidden]), valS), [n * sparse.perRow, hidden]);
          return [tf.zerosLike(xsS), tf.scatterND(idxS, rows, [inWidth, hidden]), tf.zerosLike(idxS), tf.zerosLike(valS)];
        },
      };
    }) as never) as (x: TfModule.Tensor, w: TfModule.Tensor, idx: TfModule.Tensor, val: TfModule.Tensor) => TfModule.Tensor;
    const first = (xs: TfModule.Tensor, w: TfModule.Tensor) => sparseDense(xs, w, index, value);
    return tf.losses.sigmoidCrossEntropy(labels, this.logits(x, first)) as TfModule.Scalar;
  }

  scorer(): Scorer {
    const tf = this.tf;
    return (features, n) => {
      const width = this.arch.inputWidth;
      return tf.tidy(() => this.logits(tf.tensor2d(features.subarray(0, n * width), [n, width]))).dataSync() as Float32Array;
    };
  }

  readWeights(): MlpWeights {
    return this.w.map((w, n) => {
      const [inWidth, outWidth] = w.shape as [number, number];
      const weight = this.tf.tidy(() => this.tf.transpose(w)).dataSync() as Float32Array;
      return { inWidth, outWidth, weight: Float32Array.from(weight), bias: Float32Array.from(this.b[n].dataSync() as Float32Array) };
    });
  }

  writeWeights(weights: MlpWeights): void {
    const tf = this.tf;
    weights.forEach((layer, n) => {
      tf.tidy(() => this.w[n].assign(tf.transpose(tf.tensor2d(layer.weight, [layer.outWidth, layer.inWidth]))));
      tf.tidy(() => this.b[n].assign(tf.tensor1d(layer.bias)));
    });
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}
