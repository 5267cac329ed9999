import { describe, expect, it } from 'vitest';
import { loadTf } from '../src/tf-backend.js';
import { TfMlp, sparsify } from '../src/tf-mlp.js';
import { initMlpWeights } from '../src/mlp.js';

describe('TfMlp', () => {
  it('sparsify keeps the nonzeros of each row, padded with zeros', () => {
    const x = Float32Array.from([0, 2, 0, 3, 0, 0, 0, 0, 1, 0, 0, 0]);
    const into = { perRow: 2, index: new Int32Array(6).fill(7), value: new Float32Array(6).fill(7) };
    sparsify(x, 3, 4, into);
    expect(Array.from(into.index)).toEqual([1, 3, 0, 0, 0, 0]);
    expect(Array.from(into.value)).toEqual([2, 3, 0, 0, 1, 0]);
    expect(() => sparsify(Float32Array.from([1, 1, 1, 0]), 1, 4, into)).toThrow(/more than 2 nonzeros/);
  });

  it('takes the same training step with the scatter-add first-layer gradient as with the dense one', async () => {
    const { tf } = await loadTf();
    const arch = { inputWidth: 12, hidden: [8], outputWidth: 5, activation: 'relu' as const };
    const n = 6;
    const x = new Float32Array(n * 12);
    const y = new Float32Array(n * 5);
    for (let r = 0; r < n; r++) {
      x[r * 12 + (r % 12)] = 0.5;
      x[r * 12 + ((r * 5 + 3) % 12)] = 0.25; // two rows share columns: the scatter must add them up
      y[r * 5 + (r % 5)] = 1;
    }
    const sparse = { perRow: 3, index: new Int32Array(n * 3), value: new Float32Array(n * 3) };
    sparsify(x, n, 12, sparse);
    const step = (useSparse: boolean) => {
      const model = new TfMlp(tf, arch, initMlpWeights(arch, 3));
      const opt = tf.train.sgd(0.5);
      const xb = tf.tensor2d(x, [n, 12]);
      const yb = tf.tensor2d(y, [n, 5]);
      opt.minimize(() => model.loss(xb, yb, useSparse ? sparse : undefined), false, model.variables);
      const w = model.readWeights();
      model.dispose();
      tf.dispose([xb, yb]);
      opt.dispose();
      return w;
    };
    const dense = step(false);
    const viaScatter = step(true);
    const before = initMlpWeights(arch, 3);
    // The step must have changed the first layer (else the comparison proves nothing).
    expect(Math.max(...dense[0].weight.map((v, i) => Math.abs(v - before[0].weight[i])))).toBeGreaterThan(1e-4);
    for (let l = 0; l < dense.length; l++) {
      dense[l].weight.forEach((v, i) => expect(viaScatter[l].weight[i]).toBeCloseTo(v, 5));
      dense[l].bias.forEach((v, i) => expect(viaScatter[l].bias[i]).toBeCloseTo(v, 5));
    }
  });
});
