import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BadInputError } from '../../../core/src/errors.js';
import { configHash, loadModelConfig, type ModelConfig } from './config.js';
import { readSafetensorsHeader, type SafetensorsHeader, type TensorDtype } from '../../../core/src/safetensors.js';
import { expectedTensors } from './tensor-names.js';
import { requireRegularFile } from './regular-file.js';

/**
 * A checkpoint directory in the Hugging Face Hub layout (config.json + model.safetensors.index.json
 * + shards, or a single model.safetensors), opened and fully validated against its config: every
 * tensor the config implies is present with the right shape, every header is bound-checked. The
 * weights themselves are not read here; TensorInfo says where each one lies so the engine can map it.
 */
export interface TensorInfo {
  name: string;
  /** absolute path of the shard */
  file: string;
  /** absolute byte offset of the tensor's data in `file` */
  offset: number;
  nbytes: number;
  dtype: TensorDtype;
  shape: number[];
}

export interface Checkpoint {
  /** absolute path of the checkpoint directory */
  dir: string;
  config: ModelConfig;
  /** sha256 of config.json */
  configHash: string;
  tensors: Map<string, TensorInfo>;
  /** absolute paths of the shards, in index order */
  shards: string[];
  /** problems that do not stop loading (unexpected extra tensors) */
  warnings: string[];
}

export interface OpenCheckpointOptions {
  /** called once per warning as well as collected in Checkpoint.warnings */
  onWarning?: (message: string) => void;
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export function openCheckpoint(dirArg: string, opts: OpenCheckpointOptions = {}): Checkpoint {
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new BadInputError(dir, 'not a directory (expected a checkpoint directory)');
  const config = loadModelConfig(dir);
  const hash = configHash(dir);
  const { shardOf, indexFile } = readWeightMap(dir);

  const shards = [...new Set(shardOf.values())];
  const headers = new Map<string, SafetensorsHeader>();
  for (const shard of shards) {
    const path = join(dir, shard);
    if (!existsSync(path)) {
      const example = [...shardOf].find(([, s]) => s === shard)![0];
      throw new BadInputError(path, `missing shard: ${indexFile} maps ${example} (and maybe others) to it`);
    }
    requireRegularFile(path, `a shard of ${indexFile}`);
    headers.set(shard, readSafetensorsHeader(path));
  }

  const tensors = new Map<string, TensorInfo>();
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  for (const [shard, header] of headers) {
    for (const t of header.tensors) {
      const listed = shardOf.get(t.name);
      if (listed === undefined) {
        warn(`${header.file}: tensor ${t.name} is not listed in ${indexFile}; ignored`);
        continue;
      }
      if (listed !== shard) {
        // The index is authoritative: a second copy elsewhere is dead weight, worth a warning only.
        warn(`${header.file}: tensor ${t.name} is also here but ${indexFile} maps it to ${listed}; this copy is ignored`);
        continue;
      }
      tensors.set(t.name, { name: t.name, file: header.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape });
    }
  }
  for (const [name, shard] of shardOf) {
    if (!tensors.has(name)) throw new BadInputError(join(dir, shard), `tensor ${name}: ${indexFile} says this shard holds it but its header does not`);
  }

  checkAgainstConfig(dir, config, tensors, warn);
  return { dir, config, configHash: hash, tensors, shards: shards.map((s) => join(dir, s)), warnings };
}

/** name -> shard file name, from the index or from the single-file layout. */
function readWeightMap(dir: string): { shardOf: Map<string, string>; indexFile: string } {
  const indexPath = join(dir, INDEX_FILE);
  const singlePath = join(dir, SINGLE_FILE);
  if (existsSync(indexPath)) {
    requireRegularFile(indexPath, 'the index of the checkpoint\'s shards');
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (err) {
      throw new BadInputError(indexPath, `not valid JSON (${(err as Error).message})`);
    }
    const weightMap = (raw as { weight_map?: unknown } | null)?.weight_map;
    if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
      throw new BadInputError(indexPath, 'weight_map is missing or not an object');
    }
    const shardOf = new Map<string, string>();
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string') throw new BadInputError(indexPath, `weight_map[${name}] is not a file name`);
      if (isPickleName(shard)) throw pickleRefusal(join(dir, shard));
      // A shard must be a plain file beside the index: no directories, no escaping the checkpoint.
      if (!/^[^/\\]+\.safetensors$/.test(shard) || shard.startsWith('..')) {
        throw new BadInputError(indexPath, `weight_map[${name}] = ${JSON.stringify(shard)} is not a .safetensors file name in the checkpoint directory`);
      }
      shardOf.set(name, shard);
    }
    if (shardOf.size === 0) throw new BadInputError(indexPath, 'weight_map is empty');
    return { shardOf, indexFile: INDEX_FILE };
  }
  if (existsSync(singlePath)) {
    requireRegularFile(singlePath, 'the checkpoint\'s weights');
    const header = readSafetensorsHeader(singlePath);
    return { shardOf: new Map(header.tensors.map((t) => [t.name, SINGLE_FILE])), indexFile: SINGLE_FILE };
  }
  const pickles = readdirSync(dir).filter(isPickleName);
  if (pickles.length > 0) throw pickleRefusal(join(dir, pickles[0]));
  throw new BadInputError(dir, `no weights: expected ${INDEX_FILE} with its shards, or ${SINGLE_FILE}`);
}

function isPickleName(name: string): boolean {
  return /\.(bin|pt|pth|ckpt|pkl)$/i.test(name) || name === 'pytorch_model.bin.index.json';
}

function pickleRefusal(path: string): BadInputError {
  return new BadInputError(
    path,
    'pickle checkpoints (.bin/.pt) are refused: loading them can run arbitrary code. Convert the model to safetensors (e.g. save_pretrained(..., safe_serialization=True)) and try again',
  );
}

/**
 * Compares the tensors with what config.json implies. Contradictions that have a clear cause (expert
 * count, layer count, q LoRA, dense layers) are reported as such before the generic missing/shape errors.
 */
function checkAgainstConfig(dir: string, c: ModelConfig, tensors: Map<string, TensorInfo>, warn: (m: string) => void): void {
  const cfg = join(dir, 'config.json');
  const layerRe = /^model\.layers\.(\d+)\.(.*)$/;
  const layersSeen = new Set<number>();
  const expertsByLayer = new Map<number, Set<number>>();
  const qProjKinds = new Set<string>();
  const mlpKind = new Map<number, Set<'dense' | 'moe'>>();
  for (const name of tensors.keys()) {
    const m = layerRe.exec(name);
    if (!m) continue;
    const layer = Number(m[1]);
    const rest = m[2];
    layersSeen.add(layer);
    const ex = /^mlp\.experts\.(\d+)\./.exec(rest);
    if (ex) {
      if (!expertsByLayer.has(layer)) expertsByLayer.set(layer, new Set());
      expertsByLayer.get(layer)!.add(Number(ex[1]));
    }
    if (rest.startsWith('self_attn.q_proj.')) qProjKinds.add('q_proj');
    if (rest.startsWith('self_attn.q_a_proj.')) qProjKinds.add('q_a_proj');
    const kind = /^mlp\.(gate_proj|up_proj|down_proj)\./.test(rest) ? 'dense' : /^mlp\.(gate|experts)\./.test(rest) ? 'moe' : null;
    if (kind) {
      if (!mlpKind.has(layer)) mlpKind.set(layer, new Set());
      mlpKind.get(layer)!.add(kind);
    }
  }

  const maxLayer = Math.max(-1, ...layersSeen);
  if (maxLayer + 1 !== c.numHiddenLayers) {
    throw new BadInputError(cfg, `num_hidden_layers = ${c.numHiddenLayers} contradicts the checkpoint, whose tensors cover layers 0..${maxLayer} (${maxLayer + 1} layers)`);
  }
  for (const layer of c.moeLayers) {
    const experts = expertsByLayer.get(layer);
    if (!experts) continue;
    const max = Math.max(...experts);
    if (max + 1 !== c.nRoutedExperts) {
      throw new BadInputError(cfg, `n_routed_experts = ${c.nRoutedExperts} contradicts the checkpoint: layer ${layer} holds experts 0..${max} (${max + 1} experts)`);
    }
  }
  if (c.qLoraRank === null && qProjKinds.has('q_a_proj') && !qProjKinds.has('q_proj')) {
    throw new BadInputError(cfg, 'q_lora_rank = null contradicts the checkpoint, which holds q_a_proj/q_b_proj (a low-rank query) instead of q_proj');
  }
  if (c.qLoraRank !== null && qProjKinds.has('q_proj') && !qProjKinds.has('q_a_proj')) {
    throw new BadInputError(cfg, `q_lora_rank = ${c.qLoraRank} contradicts the checkpoint, which holds a plain q_proj instead of q_a_proj/q_b_proj`);
  }
  for (const [layer, kinds] of mlpKind) {
    const wantDense = layer < c.firstKDenseReplace;
    if (wantDense && !kinds.has('dense') && kinds.has('moe')) {
      throw new BadInputError(cfg, `first_k_dense_replace = ${c.firstKDenseReplace} contradicts the checkpoint: layer ${layer} holds a MoE block, not a dense MLP`);
    }
    if (!wantDense && !kinds.has('moe') && kinds.has('dense')) {
      throw new BadInputError(cfg, `first_k_dense_replace = ${c.firstKDenseReplace} contradicts the checkpoint: layer ${layer} holds a dense MLP, not a MoE block`);
    }
  }

  const expected = expectedTensors(c);
  const wanted = new Set<string>();
  for (const e of expected) {
    wanted.add(e.name);
    const t = tensors.get(e.name);
    if (!t) throw new BadInputError(dir, `tensor ${e.name} is missing (config.json implies it, shape [${e.shape.join(', ')}] from ${e.from})`);
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new BadInputError(t.file, `tensor ${e.name} has shape [${t.shape.join(', ')}] but config.json implies [${e.shape.join(', ')}] (${e.from})`);
    }
  }
  const extras = [...tensors.keys()].filter((n) => !wanted.has(n));
  if (extras.length > 0) {
    const shown = extras.slice(0, 5).join(', ');
    warn(`${dir}: ${extras.length} tensor(s) not used by a DeepSeek-V2 model of this config, ignored: ${shown}${extras.length > 5 ? ', ...' : ''}`);
  }
}
