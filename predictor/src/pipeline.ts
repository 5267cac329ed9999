/**
 * The two jobs behind `train-predictor`: train (load, split, train, evaluate against the baselines,
 * export) and evaluate a trained predictor on other traces. Pure functions of their options; the CLI
 * only parses and prints.
 */
import { existsSync, statSync } from 'node:fs';
import { BadInputError, UserError } from '../../core/src/errors.js';
import { buildSamples, corpusGeometry, describeGeometry, loadTraces, splitBySequence, splitByTask, type Geometry, type LoadedTrace, type Split } from './dataset.js';
import { countPopularity } from './baselines.js';
import { evaluate, type EvalReport } from './evaluate.js';
import { defaultFeatureSpec, featureWidth, usesScores } from './features.js';
import { defaultBudgets } from './metrics.js';
import { initMlpWeights, type MlpArchitecture } from './mlp.js';
import { writePredictorDir, type PredictorManifest } from './predictor-dir.js';
import { PredictorRuntime } from './infer.js';
import { loadTf, type BackendChoice } from './tf-backend.js';
import { TfMlp } from './tf-mlp.js';
import { DEFAULT_TRAIN_OPTIONS, trainMlp } from './train.js';

export interface TrainPredictorOptions {
  traces: string[];
  /** Held-out traces (a split by task); empty for none. */
  testTraces: string[];
  /** 'task' without testTraces holds out the last of `traces`. */
  split: 'sequence' | 'task';
  lookahead: number;
  out: string;
  hidden: number[];
  history?: number;
  /** Add the per-layer slot of layer i's routing to the features (default true). */
  perLayer?: boolean;
  maxEpochs?: number;
  batchSize?: number;
  learningRate?: number;
  patience?: number;
  seed: number;
  backend?: BackendChoice;
  log?: (line: string) => void;
}

export interface TrainPredictorResult {
  dir: string;
  manifest: PredictorManifest;
  report: EvalReport;
}

function chooseSplit(o: TrainPredictorOptions, log: (l: string) => void): { split: Split; all: LoadedTrace[] } {
  if (o.split === 'sequence') {
    if (o.testTraces.length > 0) throw new UserError('option --test-traces: held-out traces make a split by task; drop --split sequence or --test-traces');
    const traces = loadTraces(o.traces);
    return { split: splitBySequence(traces, o.seed), all: traces };
  }
  let trainPaths = o.traces;
  let testPaths = o.testTraces;
  if (testPaths.length === 0) {
    if (o.traces.length < 2) throw new UserError('option --split task: needs at least two traces (train on all but the last, test on the last) or --test-traces');
    trainPaths = o.traces.slice(0, -1);
    testPaths = o.traces.slice(-1);
  }
  const overlap = testPaths.find((p) => trainPaths.includes(p));
  if (overlap) throw new UserError(`option --test-traces: ${overlap} is also a training trace`);
  const train = loadTraces(trainPaths);
  const test = loadTraces(testPaths, { geometry: corpusGeometry(train[0].corpus), what: train[0].path });
  log(`split by task: train on ${train.map((t) => t.task).join(', ')}; test on ${test.map((t) => t.task).join(', ')}`);
  return { split: splitByTask(train, test, o.seed), all: [...train, ...test] };
}

export async function trainPredictor(o: TrainPredictorOptions): Promise<TrainPredictorResult> {
  const log = o.log ?? (() => {});
  // Before minutes of training, not after.
  if (existsSync(o.out) && !statSync(o.out).isDirectory()) throw new UserError(`option --out: ${o.out} exists and is not a directory`);
  const { split, all } = chooseSplit(o, log);
  const g: Geometry = corpusGeometry(all[0].corpus);
  if (o.lookahead >= g.numMoeLayers) throw new UserError(`option --k: ${o.lookahead} must be below the ${g.numMoeLayers} MoE layers of the traces`);
  const scores = all.every((t) => t.corpus.sequences.every((s) => s.scores));
  const spec = defaultFeatureSpec(g, o.lookahead, { history: o.history, scores, perLayer: o.perLayer ?? true });
  const sets = {
    train: buildSamples(split.train, g.numMoeLayers, o.lookahead),
    val: buildSamples(split.val, g.numMoeLayers, o.lookahead),
    test: buildSamples(split.test, g.numMoeLayers, o.lookahead),
  };
  if (sets.train.count === 0 || sets.val.count === 0 || sets.test.count === 0) throw new UserError('the split left a part without samples; give more sequences');
  log(`${describeGeometry(g)}; k = ${o.lookahead}; samples: train ${sets.train.count}, validation ${sets.val.count}, test ${sets.test.count}; ${featureWidth(spec)} features${scores ? ' (with router scores)' : ''}`);

  const { tf, backend } = await loadTf(o.backend ?? 'auto');
  log(`TensorFlow.js backend: ${backend}`);
  const arch: MlpArchitecture = { inputWidth: featureWidth(spec), hidden: o.hidden, outputWidth: g.numExperts, activation: 'relu' };
  const model = new TfMlp(tf, arch, initMlpWeights(arch, o.seed));
  const trainOpts = {
    maxEpochs: o.maxEpochs ?? DEFAULT_TRAIN_OPTIONS.maxEpochs,
    batchSize: o.batchSize ?? DEFAULT_TRAIN_OPTIONS.batchSize,
    learningRate: o.learningRate ?? DEFAULT_TRAIN_OPTIONS.learningRate,
    patience: o.patience ?? DEFAULT_TRAIN_OPTIONS.patience,
    seed: o.seed,
  };
  try {
    const result = await trainMlp(tf, model, spec, sets.train, sets.val, { ...trainOpts, log });
    const popularity = countPopularity([...split.train, ...split.val], g);
    const report = evaluate(sets.test, spec, model.scorer(), { budgets: defaultBudgets(g), moeLayers: g.moeLayers, popularity });
    const meta = all[0].corpus.meta;
    const manifest = writePredictorDir(
      o.out,
      {
        format: 'moe-offload-predictor',
        version: 1,
        geometry: { moeLayers: g.moeLayers, numExperts: g.numExperts, topK: g.topK, modelId: meta.modelId, configHash: meta.configHash },
        lookahead: o.lookahead,
        features: { ...spec, width: featureWidth(spec) },
        model: arch,
        popularity: Array.from({ length: g.numMoeLayers }, (_, l) => Array.from(popularity.subarray(l * g.numExperts, (l + 1) * g.numExperts))),
        training: {
          backend,
          createdAt: new Date().toISOString(),
          seed: o.seed,
          options: { ...trainOpts, hidden: o.hidden, history: o.history ?? null, perLayer: o.perLayer ?? true, split: split.kind },
          split: { kind: split.kind, ...split.files },
          samples: { train: sets.train.count, val: sets.val.count, test: sets.test.count },
          history: result.history,
          bestEpoch: result.bestEpoch,
          stoppedEarly: result.stoppedEarly,
          routing: all.map((t) => ({ path: t.path, dataset: t.corpus.meta.dataset, routingSource: t.corpus.meta.routingSource, modelId: t.corpus.meta.modelId })),
        },
        evaluation: { test: report },
      },
      result.weights,
    );
    return { dir: o.out, manifest, report };
  } finally {
    model.dispose();
  }
}

export interface EvalPredictorResult {
  manifest: PredictorManifest;
  report: EvalReport;
}

/** Evaluates an exported predictor (pure-TypeScript inference, no TF.js) on other traces. */
export function evalPredictor(dir: string, traces: string[], onProgress?: (done: number, total: number) => void): EvalPredictorResult {
  const runtime = PredictorRuntime.load(dir);
  const m = runtime.manifest;
  const geometry: Geometry = { moeLayers: m.geometry.moeLayers, numMoeLayers: m.geometry.moeLayers.length, numExperts: m.geometry.numExperts, topK: m.geometry.topK };
  const loaded = loadTraces(traces, { geometry, what: `the predictor ${dir}` });
  if (usesScores(runtime.spec)) {
    const without = loaded.find((t) => t.corpus.sequences.some((s) => !s.scores));
    if (without) throw new BadInputError(without.path, `the predictor ${dir} uses router scores, and this trace has none`);
  }
  const set = buildSamples(loaded.flatMap((t) => t.corpus.sequences), geometry.numMoeLayers, m.lookahead);
  const report = evaluate(set, runtime.spec, (x, n) => runtime.forward(x, n), {
    budgets: defaultBudgets(geometry),
    moeLayers: geometry.moeLayers,
    popularity: m.popularity.flat(),
    onBatch: onProgress ? (done) => onProgress(done, set.count) : undefined,
  });
  return { manifest: m, report };
}
