/**
 * Mini-batch training of the MLP with Adam and early stopping on the validation loss. Features are built
 * batch by batch from the routing (a full ESFT feature matrix would be ~0.5 GB), in a seeded order.
 */
import { UserError } from '../../core/src/errors.js';
import type { SampleSet } from './dataset.js';
import { featureWidth, maxNonzeros, writeFeatures, writeLabel, type FeatureSpec } from './features.js';
import type { MlpWeights } from './mlp.js';
import { mulberry32, shuffleInPlace } from './random.js';
import type { Tf } from './tf-backend.js';
import { sparsify, type SparseRows, type TfMlp } from './tf-mlp.js';
import { MetricsAccumulator, topIndices } from './metrics.js';

export interface TrainOptions {
  maxEpochs: number;
  batchSize: number;
  learningRate: number;
  /** Epochs without a better validation loss before stopping. */
  patience: number;
  seed: number;
  /** One line per epoch (progress); nothing when absent. */
  log?: (line: string) => void;
}

export const DEFAULT_TRAIN_OPTIONS: Omit<TrainOptions, 'seed'> = { maxEpochs: 8, batchSize: 512, learningRate: 2e-3, patience: 2 };

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  valLoss: number;
  /** Recall at top-k on the validation samples (the metric the report leads with). */
  valRecall: number;
  seconds: number;
}

export interface TrainResult {
  /** The weights of the epoch with the lowest validation loss. */
  weights: MlpWeights;
  bestEpoch: number;
  stoppedEarly: boolean;
  history: EpochRecord[];
}

function fillBatch(set: SampleSet, order: Uint32Array | null, start: number, n: number, spec: FeatureSpec, x: Float32Array, y: Float32Array): void {
  const width = featureWidth(spec);
  for (let r = 0; r < n; r++) {
    const q = (order ? order[start + r] : start + r) * 3;
    const s = set.sequences[set.samples[q]];
    const t = set.samples[q + 1];
    const i = set.samples[q + 2];
    writeFeatures(s, t, i, spec, x, r * width);
    writeLabel(s, t, i + spec.lookahead, spec, y, r * spec.numExperts);
  }
}

/** Mean loss and recall@topK over a sample set, in eval batches. */
export function validate(tf: Tf, model: TfMlp, spec: FeatureSpec, set: SampleSet, batchSize = 4096): { loss: number; recall: number } {
  const width = featureWidth(spec);
  const E = spec.numExperts;
  const x = new Float32Array(batchSize * width);
  const y = new Float32Array(batchSize * E);
  const acc = new MetricsAccumulator(spec.numMoeLayers, [spec.topK]);
  const ranked = new Uint16Array(spec.topK);
  const truth = new Uint8Array(E);
  let lossSum = 0;
  for (let start = 0; start < set.count; start += batchSize) {
    const n = Math.min(batchSize, set.count - start);
    fillBatch(set, null, start, n, spec, x, y);
    const logits = tf.tidy(() => model.logits(tf.tensor2d(x.subarray(0, n * width), [n, width])));
    lossSum += tf.tidy(() => tf.losses.sigmoidCrossEntropy(tf.tensor2d(y.subarray(0, n * E), [n, E]), logits).dataSync()[0]) * n;
    const v = logits.dataSync();
    logits.dispose();
    for (let r = 0; r < n; r++) {
      topIndices(v, r * E, E, spec.topK, ranked);
      let count = 0;
      for (let e = 0; e < E; e++) count += truth[e] = y[r * E + e] > 0 ? 1 : 0;
      acc.add(set.samples[(start + r) * 3 + 2] + spec.lookahead, ranked, truth, count);
    }
  }
  const m = acc.result(Array.from({ length: spec.numMoeLayers }, (_, l) => l));
  return { loss: lossSum / Math.max(1, set.count), recall: m.overall.at[spec.topK].recall };
}

export async function trainMlp(tf: Tf, model: TfMlp, spec: FeatureSpec, train: SampleSet, val: SampleSet, opts: TrainOptions): Promise<TrainResult> {
  if (train.count === 0) throw new Error('internal: no training samples');
  if (val.count === 0) throw new Error('internal: no validation samples');
  const width = featureWidth(spec);
  const E = spec.numExperts;
  const B = opts.batchSize;
  const x = new Float32Array(B * width);
  const y = new Float32Array(B * E);
  const perRow = maxNonzeros(spec);
  const sparse: SparseRows = { perRow, index: new Int32Array(B * perRow), value: new Float32Array(B * perRow) };
  const optimizer = tf.train.adam(opts.learningRate);
  const rand = mulberry32(opts.seed);
  const order = Uint32Array.from({ length: train.count }, (_, n) => n);
  const history: EpochRecord[] = [];
  let best = { loss: Infinity, epoch: 0, weights: model.readWeights() };
  let stoppedEarly = false;
  try {
    for (let epoch = 1; epoch <= opts.maxEpochs; epoch++) {
      const t0 = performance.now();
      shuffleInPlace(order, rand);
      let lossSum = 0;
      for (let start = 0; start < train.count; start += B) {
        const n = Math.min(B, train.count - start);
        fillBatch(train, order, start, n, spec, x, y);
        sparsify(x, n, width, sparse);
        const loss = tf.tidy(() => {
          const xb = tf.tensor2d(x.subarray(0, n * width), [n, width]);
          const yb = tf.tensor2d(y.subarray(0, n * E), [n, E]);
          return optimizer.minimize(() => model.loss(xb, yb, sparse), true, model.variables)!;
        });
        lossSum += loss.dataSync()[0] * n;
        loss.dispose();
        // Yield now and then so progress output and signals get through during long epochs.
        if ((start / B) % 200 === 199) await new Promise((r) => setImmediate(r));
      }
      const v = validate(tf, model, spec, val);
      // A NaN or infinite loss means the weights are garbage from here on (e.g. a learning rate that
      // diverged): fail the run, so that nothing is exported as if it had trained.
      if (!Number.isFinite(lossSum) || !Number.isFinite(v.loss)) {
        throw new UserError(`training diverged in epoch ${epoch}: train loss ${lossSum / train.count}, validation loss ${v.loss}; nothing was written (try a smaller --learning-rate)`);
      }
      const rec: EpochRecord = { epoch, trainLoss: lossSum / train.count, valLoss: v.loss, valRecall: v.recall, seconds: (performance.now() - t0) / 1000 };
      history.push(rec);
      const improved = v.loss < best.loss;
      if (improved) best = { loss: v.loss, epoch, weights: model.readWeights() };
      opts.log?.(
        `epoch ${epoch}/${opts.maxEpochs}: train loss ${rec.trainLoss.toFixed(4)}, val loss ${rec.valLoss.toFixed(4)}, ` +
          `val recall@${spec.topK} ${rec.valRecall.toFixed(4)}${improved ? ' (best)' : ''}, ${rec.seconds.toFixed(1)} s`,
      );
      if (epoch - best.epoch >= opts.patience) {
        stoppedEarly = epoch < opts.maxEpochs;
        if (stoppedEarly) opts.log?.(`early stop: no better validation loss for ${opts.patience} epochs; keeping epoch ${best.epoch}`);
        break;
      }
    }
  } finally {
    optimizer.dispose();
  }
  model.writeWeights(best.weights);
  return { weights: best.weights, bestEpoch: best.epoch, stoppedEarly, history };
}
