/**
 * Traces in, samples out: loads trace files into routing corpora (one geometry for all), splits their
 * sequences into train / validation / test (by sequence, or by task = by trace file), and enumerates the
 * (sequence, token, layer) samples of each part.
 */
import { existsSync } from 'node:fs';
import { readTrace } from '../../traces/src/reader.js';
import { toSequences, type RoutingCorpus, type SequenceRouting } from '../../traces/src/sequences.js';
import { BadInputError, UserError } from '../../core/src/errors.js';
import type { FeatureGeometry } from './features.js';
import { mulberry32, shuffleInPlace } from './random.js';

export interface LoadedTrace {
  path: string;
  /** The trace's dataset (e.g. esft/intent): what "task" means for a split by task. */
  task: string;
  corpus: RoutingCorpus;
}

export interface Geometry extends FeatureGeometry {
  /** Model layer ids of the MoE layers. */
  moeLayers: number[];
}

export function corpusGeometry(c: RoutingCorpus): Geometry {
  return { numMoeLayers: c.moeLayers.length, moeLayers: c.moeLayers.slice(), numExperts: c.numExperts, topK: c.topK };
}

export function sameGeometry(a: Geometry, b: Geometry): boolean {
  return a.numExperts === b.numExperts && a.topK === b.topK && a.moeLayers.length === b.moeLayers.length && a.moeLayers.every((l, i) => l === b.moeLayers[i]);
}

export function describeGeometry(g: Geometry): string {
  return `${g.moeLayers.length} MoE layers (${g.moeLayers[0]}..${g.moeLayers.at(-1)}), ${g.numExperts} experts, top-${g.topK}`;
}

/** Reads each file; every file must have the geometry of the first (or of `expected`). */
export function loadTraces(paths: string[], expected?: { geometry: Geometry; what: string }): LoadedTrace[] {
  if (paths.length === 0) throw new UserError('no trace files given');
  const seen = new Set<string>();
  const out: LoadedTrace[] = [];
  for (const path of paths) {
    if (seen.has(path)) throw new UserError(`${path}: given twice`);
    seen.add(path);
    if (!existsSync(path)) throw new BadInputError(path, 'no such file');
    const corpus = toSequences(readTrace(path));
    if (corpus.sequences.length === 0) throw new BadInputError(path, 'the trace has no sequences');
    const g = corpusGeometry(corpus);
    const ref = expected ?? (out.length > 0 ? { geometry: corpusGeometry(out[0].corpus), what: out[0].path } : undefined);
    if (ref && !sameGeometry(g, ref.geometry)) {
      throw new BadInputError(path, `geometry ${describeGeometry(g)} differs from ${ref.what}: ${describeGeometry(ref.geometry)}`);
    }
    out.push({ path, task: corpus.meta.dataset || path, corpus });
  }
  return out;
}

/** Which sequences of one trace file a split part holds (seq ids as in the trace). */
export interface PartFile {
  path: string;
  task: string;
  seqs: number[];
}

export interface Split {
  kind: 'sequence' | 'task';
  seed: number;
  train: SequenceRouting[];
  val: SequenceRouting[];
  test: SequenceRouting[];
  /** Provenance for predictor.json: enough to rebuild the held-out set. */
  files: { train: PartFile[]; val: PartFile[]; test: PartFile[] };
}

export const TEST_FRACTION = 0.2;
export const VAL_FRACTION = 0.1;

/**
 * Per trace file, a seeded shuffle of its sequences: the first TEST_FRACTION to test, the next
 * VAL_FRACTION of the rest to validation. Done per file so that every task appears in every part.
 */
export function splitBySequence(traces: LoadedTrace[], seed: number): Split {
  const total = traces.reduce((n, t) => n + t.corpus.sequences.length, 0);
  if (total < 3) throw new UserError(`a split by sequence needs at least 3 sequences (train, validation, test); the traces hold ${total}`);
  const rand = mulberry32(seed);
  const split: Split = { kind: 'sequence', seed, train: [], val: [], test: [], files: { train: [], val: [], test: [] } };
  // Files with few sequences cannot give one to each part; they go to training, as long as some file can.
  const assignments = traces.map((tr) => {
    const order = shuffleInPlace(tr.corpus.sequences.map((_, i) => i), rand);
    const n = order.length;
    const nTest = n >= 3 ? Math.max(1, Math.round(n * TEST_FRACTION)) : 0;
    const nVal = n >= 3 ? Math.max(1, Math.round((n - nTest) * VAL_FRACTION)) : 0;
    return { tr, test: order.slice(0, nTest), val: order.slice(nTest, nTest + nVal), train: order.slice(nTest + nVal) };
  });
  if (assignments.every((a) => a.test.length === 0)) {
    // Only tiny files: pool them so the split still exists.
    const pooled = traces.flatMap((tr) => tr.corpus.sequences.map((_, i) => ({ tr, i })));
    shuffleInPlace(pooled, rand);
    for (const a of assignments) a.train = [];
    pooled.forEach((p, n) => {
      const a = assignments.find((x) => x.tr === p.tr)!;
      (n === 0 ? a.test : n === 1 ? a.val : a.train).push(p.i);
    });
  }
  for (const a of assignments) {
    for (const part of ['train', 'val', 'test'] as const) {
      const idx = a[part].slice().sort((x, y) => x - y);
      if (idx.length === 0) continue;
      split[part].push(...idx.map((i) => a.tr.corpus.sequences[i]));
      split.files[part].push({ path: a.tr.path, task: a.tr.task, seqs: idx.map((i) => a.tr.corpus.sequences[i].seq) });
    }
  }
  return split;
}

/** Test = whole test files (unseen tasks); validation = a seeded VAL_FRACTION of the training files' sequences. */
export function splitByTask(trainTraces: LoadedTrace[], testTraces: LoadedTrace[], seed: number): Split {
  if (testTraces.length === 0) throw new UserError('a split by task needs at least one test trace');
  const trainTasks = new Set(trainTraces.map((t) => t.task));
  for (const t of testTraces) {
    if (trainTasks.has(t.task)) throw new BadInputError(t.path, `its task '${t.task}' is also in the training traces; a split by task holds out whole tasks (use --split sequence)`);
  }
  const total = trainTraces.reduce((n, t) => n + t.corpus.sequences.length, 0);
  if (total < 2) throw new UserError(`training needs at least 2 sequences (train and validation); the training traces hold ${total}`);
  const rand = mulberry32(seed);
  const split: Split = { kind: 'task', seed, train: [], val: [], test: [], files: { train: [], val: [], test: [] } };
  const pooled = shuffleInPlace(trainTraces.flatMap((tr) => tr.corpus.sequences.map((s) => ({ tr, s }))), rand);
  const nVal = Math.max(1, Math.round(pooled.length * VAL_FRACTION));
  const parts = { val: pooled.slice(0, nVal), train: pooled.slice(nVal) };
  for (const part of ['train', 'val'] as const) {
    for (const tr of trainTraces) {
      const mine = parts[part].filter((p) => p.tr === tr).map((p) => p.s).sort((a, b) => a.seq - b.seq);
      if (mine.length === 0) continue;
      split[part].push(...mine);
      split.files[part].push({ path: tr.path, task: tr.task, seqs: mine.map((s) => s.seq) });
    }
  }
  for (const tr of testTraces) {
    split.test.push(...tr.corpus.sequences);
    split.files.test.push({ path: tr.path, task: tr.task, seqs: tr.corpus.sequences.map((s) => s.seq) });
  }
  return split;
}

/** Samples as flat triples (sequence index, token, source layer i); the label is layer i + lookahead. */
export interface SampleSet {
  sequences: SequenceRouting[];
  /** [n * 3]: sequence index into `sequences`, token t, source MoE layer index i. */
  samples: Int32Array;
  count: number;
}

export function buildSamples(sequences: SequenceRouting[], numMoeLayers: number, lookahead: number): SampleSet {
  const perToken = Math.max(0, numMoeLayers - lookahead);
  const count = sequences.reduce((n, s) => n + s.length * perToken, 0);
  const samples = new Int32Array(count * 3);
  let o = 0;
  sequences.forEach((s, si) => {
    for (let t = 0; t < s.length; t++) {
      for (let i = 0; i < perToken; i++) {
        samples[o++] = si;
        samples[o++] = t;
        samples[o++] = i;
      }
    }
  });
  return { sequences, samples, count };
}
