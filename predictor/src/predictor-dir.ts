/**
 * A trained predictor on disk, readable without TensorFlow.js:
 *   DIR/predictor.json         geometry, lookahead k, feature spec, architecture, provenance, metrics
 *   DIR/weights.safetensors    f32 tensors mlp.<n>.weight [out, in] and mlp.<n>.bias [out]
 * predictor.json names the weights file and its sha256, so a stale or swapped weights file is caught.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import { BadInputError, UserError } from '../../core/src/errors.js';
import { writeFileAtomic } from '../../core/src/atomic-file.js';
import { discardDir, makePartialDir, publishDir } from '../../core/src/atomic-dir.js';
import { featureSpecProblems, featureWidth, type FeatureSpec } from './features.js';
import { layerWidths, tensorName, type MlpArchitecture, type MlpWeights } from './mlp.js';
import { decodeSafetensors, encodeSafetensors } from './safetensors.js';
import type { EvalReport } from './evaluate.js';
import type { EpochRecord } from './train.js';
import type { PartFile } from './dataset.js';

export const PREDICTOR_FORMAT = 'moe-offload-predictor';
export const PREDICTOR_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'predictor.json';
export const WEIGHTS_FILE = 'weights.safetensors';

export interface PredictorManifest {
  format: typeof PREDICTOR_FORMAT;
  version: number;
  geometry: { moeLayers: number[]; numExperts: number; topK: number; modelId: string; configHash: string };
  /** k: predicts MoE layer i + k at MoE layer i. */
  lookahead: number;
  features: FeatureSpec & { width: number };
  model: MlpArchitecture & { output: 'logits'; weightLayout: string; tensors: string[] };
  weights: { file: string; sha256: string };
  /** The "most popular" baseline: routed-token counts per MoE layer index and expert, from the training data. */
  popularity: number[][];
  training: {
    backend: string;
    createdAt: string;
    seed: number;
    options: Record<string, unknown>;
    split: { kind: 'sequence' | 'task'; train: PartFile[]; val: PartFile[]; test: PartFile[] };
    samples: { train: number; val: number; test: number };
    history: EpochRecord[];
    bestEpoch: number;
    stoppedEarly: boolean;
    /** Routing provenance of the training traces (RunMeta.routingSource and dataset). */
    routing: { path: string; dataset: string; routingSource: string; modelId: string }[];
  };
  evaluation?: { test: EvalReport };
}

export function writePredictorDir(dir: string, manifest: Omit<PredictorManifest, 'weights' | 'model'> & { model: MlpArchitecture }, weights: MlpWeights): PredictorManifest {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`option --out: ${dir} exists and is not a directory`);
  // Built beside the target and swapped in whole: never a folder with one run's weights and another's manifest.
  const target = dir;
  dir = makePartialDir(target);
  const tensors = weights.flatMap((l, n) => [
    { name: tensorName(n, 'weight'), shape: [l.outWidth, l.inWidth], data: l.weight },
    { name: tensorName(n, 'bias'), shape: [l.outWidth], data: l.bias },
  ]);
  const bytes = encodeSafetensors(tensors, { format: PREDICTOR_FORMAT, lookahead: String(manifest.lookahead) });
  const full: PredictorManifest = {
    ...manifest,
    model: {
      ...manifest.model,
      output: 'logits',
      weightLayout: 'mlp.<n>.weight is [out, in] row-major (PyTorch nn.Linear); y = x W^T + b; ReLU between layers, none after the last',
      tensors: tensors.map((t) => t.name),
    },
    weights: { file: WEIGHTS_FILE, sha256: createHash('sha256').update(bytes).digest('hex') },
  };
  try {
    writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
    writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(full, null, 2) + '\n');
    publishDir(dir, target);
  } catch (err) {
    discardDir(dir);
    throw err;
  }
  return full;
}

export interface LoadedPredictor {
  dir: string;
  manifest: PredictorManifest;
  weights: MlpWeights;
}

export function readPredictorDir(dir: string): LoadedPredictor {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${dir}: not a predictor directory (no such directory)`);
  const mpath = join(dir, MANIFEST_FILE);
  if (!existsSync(mpath)) throw new BadInputError(dir, `not a predictor directory (no ${MANIFEST_FILE})`);
  if (!statSync(mpath).isFile()) throw new BadInputError(mpath, 'not a regular file');
  let m: PredictorManifest;
  try {
    m = JSON.parse(readFileSync(mpath, 'utf8'));
  } catch (err) {
    throw new BadInputError(mpath, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof m !== 'object' || m === null || m.format !== PREDICTOR_FORMAT) throw new BadInputError(mpath, `not a moe-offload predictor manifest (format is not '${PREDICTOR_FORMAT}')`);
  if (m.version !== PREDICTOR_FORMAT_VERSION) throw new BadInputError(mpath, `predictor format version ${m.version} is not supported (this build reads ${PREDICTOR_FORMAT_VERSION})`);
  const problems = manifestProblems(m);
  if (problems.length > 0) throw new BadInputError(mpath, problems.join('; '));
  const wpath = weightsPath(dir, mpath, m.weights.file);
  const bytes = readFileSync(wpath);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== m.weights.sha256) throw new BadInputError(wpath, `sha256 ${sha.slice(0, 12)}… does not match ${MANIFEST_FILE} (${String(m.weights.sha256).slice(0, 12)}…): weights from another training run?`);
  const { tensors } = decodeSafetensors(bytes, wpath);
  const widths = layerWidths(m.model);
  const weights: MlpWeights = [];
  for (let n = 0; n + 1 < widths.length; n++) {
    const w = tensors.get(tensorName(n, 'weight'));
    const b = tensors.get(tensorName(n, 'bias'));
    if (!w || !b) throw new BadInputError(wpath, `tensor ${!w ? tensorName(n, 'weight') : tensorName(n, 'bias')} is missing`);
    if (w.shape.length !== 2 || w.shape[0] !== widths[n + 1] || w.shape[1] !== widths[n]) throw new BadInputError(wpath, `${tensorName(n, 'weight')} has shape [${w.shape}], the manifest says [${widths[n + 1]}, ${widths[n]}]`);
    if (b.shape.length !== 1 || b.shape[0] !== widths[n + 1]) throw new BadInputError(wpath, `${tensorName(n, 'bias')} has shape [${b.shape}], the manifest says [${widths[n + 1]}]`);
    weights.push({ inWidth: widths[n], outWidth: widths[n + 1], weight: w.data, bias: b.data });
  }
  return { dir, manifest: m, weights };
}

/**
 * The weights file the manifest names, which must be a plain file name inside the predictor folder:
 * `..` or an absolute path would read outside it, and a folder or FIFO would crash or block the read.
 */
function weightsPath(dir: string, mpath: string, file: unknown): string {
  if (typeof file !== 'string' || file === '' || file !== basename(file) || file === '.' || file === '..' || isAbsolute(file)) {
    throw new BadInputError(mpath, `weights.file ${JSON.stringify(file)} must be a file name inside the predictor folder (no folders, no '..')`);
  }
  const wpath = join(dir, file);
  if (!existsSync(wpath)) throw new BadInputError(dir, `${file} is missing`);
  if (!statSync(wpath).isFile()) throw new BadInputError(wpath, 'not a regular file');
  return wpath;
}

function manifestProblems(m: PredictorManifest): string[] {
  const p: string[] = [];
  const g = m.geometry;
  if (!g || !Array.isArray(g.moeLayers) || !Number.isInteger(g.numExperts) || !Number.isInteger(g.topK)) return ['geometry is missing or malformed'];
  if (!m.features || !m.model || !m.weights || typeof m.weights !== 'object') return ['features, model or weights section is missing'];
  if (typeof m.weights.sha256 !== 'string') p.push('weights.sha256 must be a string');
  p.push(...featureSpecProblems(m.features).map((x) => `features: ${x}`));
  if (m.features.numMoeLayers !== g.moeLayers.length || m.features.numExperts !== g.numExperts || m.features.topK !== g.topK) p.push('features geometry differs from geometry');
  if (m.features.lookahead !== m.lookahead) p.push('features.lookahead differs from lookahead');
  if (p.length === 0 && featureWidth(m.features) !== m.features.width) p.push(`features.width ${m.features.width} differs from the blocks' ${featureWidth(m.features)}`);
  if (m.model.inputWidth !== m.features.width) p.push('model.inputWidth differs from features.width');
  if (m.model.outputWidth !== g.numExperts) p.push('model.outputWidth differs from numExperts');
  if (m.model.activation !== 'relu') p.push(`model.activation '${m.model.activation}' is not supported`);
  if (!Array.isArray(m.model.hidden) || !m.model.hidden.every((h) => Number.isInteger(h) && h > 0)) p.push('model.hidden must be positive integers');
  if (!Array.isArray(m.popularity) || m.popularity.length !== g.moeLayers.length || !m.popularity.every((r) => Array.isArray(r) && r.length === g.numExperts)) p.push('popularity must be [numMoeLayers][numExperts]');
  return p;
}
