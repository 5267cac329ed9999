/**
 * Converts the ESFT expert-score dumps (`<task>/expert_weights_<L>.txt`, one TSV line per sequence: 6*T ids,
 * an empty field, 6*T weights) into trace v1. Sequences keep file order, each token is its own step
 * (the traces were teacher-forced, so there is no batching to preserve), routing source 'imported'.
 * Every line is checked; the first problem is reported with file and line, and no output is left behind
 * (nor on Ctrl-C / SIGTERM: the writer's partial file is removed). Files are read in chunks, so a layer
 * file of any size is fine; anything that is not a regular file (a FIFO would block) is refused unopened.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BadInputError, UserError } from '../../core/src/errors.js';
import { withInterruptCleanup, yieldToEventLoop } from '../../core/src/interrupt.js';
import { startProgress } from '../../core/src/progress.js';
import { forEachLine } from './line-reader.js';
import { PHASE_DECODE, type RunMeta } from './schema.js';
import { TraceWriter, type TraceRows } from './writer.js';

export interface EsftGeometry {
  /** Model layers, dense ones included (27 for DeepSeek-V2-Lite). */
  numLayers: number;
  /** Model index of the first MoE layer (first_k_dense_replace; 1 for DeepSeek-V2-Lite). */
  firstMoeLayer: number;
  numExperts: number;
  topK: number;
}

export const DEEPSEEK_V2_LITE_GEOMETRY: EsftGeometry = { numLayers: 27, firstMoeLayer: 1, numExperts: 64, topK: 6 };

export interface ImportOptions {
  geometry?: EsftGeometry;
  modelId?: string;
  quiet?: boolean;
}

interface ParsedLayer {
  file: string;
  /** per sequence: ids and weights of all its tokens */
  ids: Uint16Array[];
  weights: Float32Array[];
}

const FILE_RE = /^expert_weights_(\d+)\.txt$/;

/** The layer files of an ESFT task folder by layer; two names for one layer (`_01` and `_1`) are refused. */
export function esftLayerFiles(dir: string): Map<number, string> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${dir}: not a directory`);
  const files = new Map<number, string>();
  for (const name of readdirSync(dir).sort()) {
    const m = FILE_RE.exec(name);
    if (!m) continue;
    const layer = Number(m[1]);
    const path = join(dir, name);
    const other = files.get(layer);
    if (other) throw new BadInputError(dir, `${basename(other)} and ${name} are both layer ${layer}; keep one`);
    // stat, not open: opening a FIFO blocks until a writer appears.
    const st = statSync(path);
    if (!st.isFile()) throw new BadInputError(path, 'not a regular file (a FIFO, device or folder); ESFT layer files are plain text');
    files.set(layer, path);
  }
  return files;
}

export interface ImportResult {
  sequences: number;
  tokens: number;
}

/** Parses and writes in one synchronous call (for programs and tests; a signal kills it as usual). */
export function importEsft(dir: string, out: string, opts: ImportOptions = {}): ImportResult {
  const parsed = parseEsft(dir, opts);
  const writer = TraceWriter.create(out, parsed.meta);
  try {
    for (const rows of rowBatches(parsed)) writer.append(rows);
    writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  }
  return parsed.result;
}

/**
 * The CLI's import: the same, but the write yields to the event loop now and then, so that Ctrl-C or
 * SIGTERM removes the partial output before the process ends (nothing exists yet while parsing).
 */
export async function importEsftInterruptible(dir: string, out: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const parsed = parseEsft(dir, opts);
  // The handlers go in before the partial file exists: a signal in between would leave it behind.
  let writer: TraceWriter | undefined;
  await withInterruptCleanup(
    () => writer?.abort(),
    async () => {
      writer = TraceWriter.create(out, parsed.meta);
      try {
        let n = 0;
        for (const rows of rowBatches(parsed)) {
          writer.append(rows);
          if (++n % 16 === 0) await yieldToEventLoop();
        }
        writer.close();
      } catch (err) {
        writer.abort();
        throw err;
      }
    },
  );
  return parsed.result;
}

interface ParsedEsft {
  layers: ParsedLayer[];
  moeLayers: number[];
  g: EsftGeometry;
  meta: RunMeta;
  result: ImportResult;
}

function parseEsft(dir: string, opts: ImportOptions): ParsedEsft {
  const g = opts.geometry ?? DEEPSEEK_V2_LITE_GEOMETRY;
  const files = esftLayerFiles(dir);
  const moeLayers: number[] = [];
  for (let l = g.firstMoeLayer; l < g.numLayers; l++) moeLayers.push(l);
  if (files.size === 0) throw new BadInputError(dir, 'no expert_weights_<layer>.txt files');
  for (const l of moeLayers) {
    if (!files.has(l)) throw new BadInputError(dir, `expert_weights_${l}.txt is missing: expected MoE layers ${moeLayers[0]}..${moeLayers.at(-1)} (${moeLayers.length} files), found ${files.size}`);
  }
  for (const l of files.keys()) {
    if (!moeLayers.includes(l)) throw new BadInputError(files.get(l)!, `layer ${l} is not an MoE layer of a ${g.numLayers}-layer model whose first MoE layer is ${g.firstMoeLayer}`);
  }

  const progress = startProgress('parsing ESFT layers', moeLayers.length, { quiet: opts.quiet });
  const layers: ParsedLayer[] = [];
  for (const l of moeLayers) {
    layers.push(parseLayerFile(files.get(l)!, g));
    const ref = layers[0];
    const cur = layers.at(-1)!;
    if (cur.ids.length !== ref.ids.length) {
      throw new BadInputError(cur.file, `${cur.ids.length} sequences, but ${basename(ref.file)} has ${ref.ids.length}`);
    }
    for (let s = 0; s < cur.ids.length; s++) {
      if (cur.ids[s].length !== ref.ids[s].length) {
        throw new BadInputError(cur.file, `line ${s + 1}: ${cur.ids[s].length / g.topK} tokens, but ${basename(ref.file)} has ${ref.ids[s].length / g.topK} on that line`);
      }
    }
    progress.tick();
  }
  progress.done();

  const meta: RunMeta = {
    modelId: opts.modelId ?? 'ESFT-vanilla-lite (DeepSeek-V2-Lite architecture)',
    configHash: geometryHash(g),
    numLayers: g.numLayers,
    moeLayers,
    numExperts: g.numExperts,
    topK: g.topK,
    routingSource: 'imported',
    dataset: `esft/${basename(dir.replace(/\/+$/, ''))}`,
    batchSize: 1,
    promptLength: null,
    device: null,
    engineVersion: 'moe-offload traces import esft',
    gitRevision: null,
    createdAt: new Date().toISOString(),
    notes: 'Imported from ESFT expert-score dumps (teacher-forced, one token per step); configHash is the sha256 of the geometry JSON.',
  };
  const tokens = layers[0].ids.reduce((a, x) => a + x.length / g.topK, 0);
  return { layers, moeLayers, g, meta, result: { sequences: layers[0].ids.length, tokens } };
}

/** What an import knows of the model: its geometry, hashed the way SCHEMA.md says. */
export function geometryHash(g: EsftGeometry): string {
  const canonical = JSON.stringify({ numLayers: g.numLayers, firstMoeLayer: g.firstMoeLayer, numExperts: g.numExperts, topK: g.topK });
  return 'geometry-sha256:' + createHash('sha256').update(canonical).digest('hex');
}

/** The rows of each sequence in turn, in trace order. */
function* rowBatches({ layers, moeLayers, g }: ParsedEsft): Generator<TraceRows> {
  const k = g.topK;
  const L = moeLayers.length;
  let step = 0;
  for (let s = 0; s < layers[0].ids.length; s++) {
    const T = layers[0].ids[s].length / k;
    const n = T * L;
    const rows = {
      step: new Int32Array(n),
      phase: new Uint8Array(n).fill(PHASE_DECODE),
      layer: new Uint16Array(n),
      seq: new Int32Array(n).fill(s),
      pos: new Int32Array(n),
      experts: new Uint16Array(n * k),
      weights: new Float32Array(n * k),
    };
    for (let t = 0; t < T; t++) {
      for (let l = 0; l < L; l++) {
        const r = t * L + l;
        rows.step[r] = step + t;
        rows.layer[r] = moeLayers[l];
        rows.pos[r] = t;
        rows.experts.set(layers[l].ids[s].subarray(t * k, t * k + k), r * k);
        rows.weights.set(layers[l].weights[s].subarray(t * k, t * k + k), r * k);
      }
    }
    yield rows;
    step += T;
  }
}

function parseLayerFile(file: string, g: EsftGeometry): ParsedLayer {
  const ids: Uint16Array[] = [];
  const weights: Float32Array[] = [];
  const lines = forEachLine(file, (line, lineNumber) => {
    const where = `line ${lineNumber}`;
    const fields = line.split('\t');
    const sep = fields.indexOf('');
    if (sep < 0) throw new BadInputError(file, `${where}: no empty field between expert ids and weights`);
    const n = sep;
    if (fields.length - sep - 1 !== n) {
      throw new BadInputError(file, `${where}: ${n} expert ids but ${fields.length - sep - 1} weights`);
    }
    if (n === 0 || n % g.topK !== 0) throw new BadInputError(file, `${where}: ${n} expert ids is not a positive multiple of top-k ${g.topK}`);
    const lineIds = new Uint16Array(n);
    const lineWeights = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const f = fields[j];
      if (!/^\d+$/.test(f)) throw new BadInputError(file, `${where}: expert id '${f}' (field ${j + 1}) is not an integer`);
      const e = Number(f);
      if (e >= g.numExperts) throw new BadInputError(file, `${where}: expert id ${e} (field ${j + 1}) is not below ${g.numExperts}`);
      lineIds[j] = e;
      const wf = fields[sep + 1 + j];
      const w = Number(wf);
      if (wf === '' || !Number.isFinite(w) || w < 0 || w > 1) throw new BadInputError(file, `${where}: weight '${wf}' (field ${sep + 2 + j}) is not a probability`);
      lineWeights[j] = w;
    }
    for (let t = 0; t < n; t += g.topK) {
      const tok = lineIds.subarray(t, t + g.topK);
      if (new Set(tok).size !== g.topK) throw new BadInputError(file, `${where}: token ${t / g.topK} repeats an expert (${[...tok].join(',')})`);
    }
    ids.push(lineIds);
    weights.push(lineWeights);
  });
  if (lines === 0) throw new BadInputError(file, 'empty file');
  return { file, ids, weights };
}
