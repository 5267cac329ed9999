import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadInputError } from '../../../core/src/errors.js';
import { requireRegularFile } from './regular-file.js';

/**
 * The blueprint of a DeepSeek-V2 model, read from the checkpoint's config.json (Hub layout).
 * Field names are the camelCase of the config.json keys; derived fields follow at the end.
 * Every value comes from the file: nothing is inferred from the layer count or the model's size.
 */
export interface ModelConfig {
  modelType: 'deepseek_v2';
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  /** layers [0, firstKDenseReplace) use the dense MLP, the rest the MoE block */
  firstKDenseReplace: number;
  /** width of the dense MLP (layers below firstKDenseReplace) */
  intermediateSize: number;
  /** width of one routed expert; the shared experts form one MLP of width nSharedExperts * this */
  moeIntermediateSize: number;
  nRoutedExperts: number;
  numExpertsPerTok: number;
  nSharedExperts: number;
  /** always 1 (checked): every layer from firstKDenseReplace on is MoE */
  moeLayerFreq: number;
  scoringFunc: 'softmax';
  topkMethod: 'greedy';
  /** unused by greedy routing; kept as read (null when absent) */
  nGroup: number | null;
  topkGroup: number | null;
  /** true: the top-k softmax scores are renormalised to sum to 1 before weighting the experts */
  normTopkProb: boolean;
  routedScalingFactor: number;
  numAttentionHeads: number;
  /** equals numAttentionHeads (checked): MLA expands one latent into per-head keys and values */
  numKeyValueHeads: number;
  /** null: plain q_proj; a number: q_a_proj -> q_a_layernorm -> q_b_proj */
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  ropeScaling: YarnRopeScaling | null;
  bosTokenId: number;
  eosTokenId: number;
  /** all end-of-sequence ids (config.json may give a list; eosTokenId is its first entry) */
  eosTokenIds: number[];
  /** always false (checked): the checkpoint has its own lm_head.weight */
  tieWordEmbeddings: false;
  hiddenAct: 'silu';
  /** the dtype the checkpoint declares (torch_dtype or dtype), informational */
  torchDtype: string | null;

  // ---- derived ----
  /** qkNopeHeadDim + qkRopeHeadDim: per-head width of queries and keys */
  qkHeadDim: number;
  /** indices of the dense-MLP layers, ascending */
  denseLayers: number[];
  /** indices of the MoE layers, ascending */
  moeLayers: number[];
}

export interface YarnRopeScaling {
  type: 'yarn';
  factor: number;
  originalMaxPositionEmbeddings: number;
  betaFast: number;
  betaSlow: number;
  mscale: number;
  mscaleAllDim: number;
}

/**
 * Ranges of the numeric hyper-parameters that every DeepSeek-V2/V2-Lite/V3 config lies well inside (V2-Lite:
 * rms_norm_eps 1e-6, rope_theta 10000, routed_scaling_factor 1.0; V2: 16.0; V3: 2.5; YaRN factor 40, beta_fast 32,
 * beta_slow 1, mscale 0.707 or 1, mscale_all_dim 0.707 or 0). Values outside pass a type check but make the
 * forward produce NaN, zeros or garbage (rope_theta 1, rms_norm_eps 1e300, mscale 1e300), so they are refused.
 */
export const CONFIG_RANGES = {
  rms_norm_eps: [1e-10, 1e-3],
  rope_theta: [100, 1e8],
  routed_scaling_factor: [0.01, 100],
  factor: [1, 1024],
  beta_fast: [1, 1024],
  beta_slow: [1e-3, 1024],
  mscale: [0, 10],
  mscale_all_dim: [0, 10],
} as const satisfies Record<string, readonly [number, number]>;

/** Generous upper bounds that keep a hostile config from asking for absurd allocations. */
const MAX_DIM = 1 << 20;
const MAX_LAYERS = 1024;
const MAX_EXPERTS = 4096;

export function configPath(dir: string): string {
  return join(dir, 'config.json');
}

/** Reads, validates and returns the config of the checkpoint in `dir`. */
export function loadModelConfig(dir: string): ModelConfig {
  const file = configPath(dir);
  requireRegularFile(file, 'a checkpoint directory needs config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new BadInputError(file, `not valid JSON (${(err as Error).message})`);
  }
  return parseModelConfig(raw, file);
}

/** sha256 (hex) of the config.json bytes: identifies the model blueprint in traces and caches. */
export function configHash(dir: string): string {
  const file = configPath(dir);
  requireRegularFile(file, 'a checkpoint directory needs config.json');
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Validates a parsed config.json object; `file` is only used in error messages. */
export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new BadInputError(file, 'expected a JSON object');
  const r = new FieldReader(raw as Record<string, unknown>, file);

  const modelType = r.optionalString('model_type');
  if (modelType !== undefined && modelType !== 'deepseek_v2') {
    r.unsupported('model_type', modelType, "only 'deepseek_v2' is supported");
  }
  const hiddenAct = r.optionalString('hidden_act') ?? 'silu';
  if (hiddenAct !== 'silu') r.unsupported('hidden_act', hiddenAct, "only 'silu' is supported");
  for (const key of ['attention_bias', 'mlp_bias'] as const) {
    const v = r.optionalBool(key);
    if (v === true) r.unsupported(key, true, 'biases are not supported (DeepSeek-V2 has none)');
  }

  const vocabSize = r.int('vocab_size', 1, 1 << 24);
  const hiddenSize = r.int('hidden_size', 1, MAX_DIM);
  const numHiddenLayers = r.int('num_hidden_layers', 1, MAX_LAYERS);
  const firstKDenseReplace = r.int('first_k_dense_replace', 0, numHiddenLayers);
  const intermediateSize = r.int('intermediate_size', 1, MAX_DIM);
  const moeIntermediateSize = r.int('moe_intermediate_size', 1, MAX_DIM);
  const nRoutedExperts = r.int('n_routed_experts', 1, MAX_EXPERTS);
  const numExpertsPerTok = r.int('num_experts_per_tok', 1, nRoutedExperts);
  const nSharedExperts = r.int('n_shared_experts', 1, MAX_EXPERTS, 'a MoE block without shared experts is not supported');
  const moeLayerFreq = r.optionalNumber('moe_layer_freq') ?? 1;
  if (moeLayerFreq !== 1) r.unsupported('moe_layer_freq', moeLayerFreq, 'only 1 is supported (every layer from first_k_dense_replace on is MoE)');

  const scoringFunc = r.optionalString('scoring_func') ?? 'softmax';
  if (scoringFunc !== 'softmax') r.unsupported('scoring_func', scoringFunc, "only 'softmax' is supported");
  const topkMethod = r.optionalString('topk_method') ?? 'greedy';
  if (topkMethod !== 'greedy') {
    r.unsupported('topk_method', topkMethod, "only 'greedy' is supported (DeepSeek-V2-Lite's routing)");
  }
  const nGroup = r.optionalIntOrNull('n_group', 1, MAX_EXPERTS);
  const topkGroup = r.optionalIntOrNull('topk_group', 1, MAX_EXPERTS);
  const normTopkProb = r.optionalBool('norm_topk_prob') ?? false;
  const routedScalingFactor = r.optionalNumber('routed_scaling_factor') ?? 1.0;
  r.inRange('routed_scaling_factor', routedScalingFactor);
  if (normTopkProb && routedScalingFactor !== 1) {
    // DeepSeek-V2's own code skips the scaling factor when it renormalises, V3's applies both, and
    // transformers' port ignores norm_topk_prob: the combination has no single meaning, so refuse it.
    r.unsupported('routed_scaling_factor', routedScalingFactor, 'must be 1.0 when norm_topk_prob is true (the reference implementations disagree on that combination)');
  }

  const numAttentionHeads = r.int('num_attention_heads', 1, 4096);
  const numKeyValueHeads = r.optionalIntOrNull('num_key_value_heads', 1, 4096) ?? numAttentionHeads;
  if (numKeyValueHeads !== numAttentionHeads) {
    r.unsupported('num_key_value_heads', numKeyValueHeads, `must equal num_attention_heads (${numAttentionHeads}) for MLA attention`);
  }
  const qLoraRank = r.optionalIntOrNull('q_lora_rank', 1, MAX_DIM);
  const kvLoraRank = r.int('kv_lora_rank', 1, MAX_DIM);
  const qkNopeHeadDim = r.int('qk_nope_head_dim', 1, MAX_DIM);
  const qkRopeHeadDim = r.int('qk_rope_head_dim', 2, MAX_DIM);
  if (qkRopeHeadDim % 2 !== 0) r.unsupported('qk_rope_head_dim', qkRopeHeadDim, 'must be even (rotary pairs)');
  const vHeadDim = r.int('v_head_dim', 1, MAX_DIM);
  const rmsNormEps = r.inRange('rms_norm_eps', r.positiveNumber('rms_norm_eps'));
  const maxPositionEmbeddings = r.int('max_position_embeddings', 1, 1 << 30);

  // transformers 5 writes rope_parameters {rope_type, rope_theta, ...} instead of rope_theta + rope_scaling.
  const ropeParameters = r.optionalObject('rope_parameters');
  const ropeTheta = r.optionalNumber('rope_theta') ?? numberIn(ropeParameters, 'rope_theta') ?? 10000;
  r.inRange('rope_theta', ropeTheta);
  const ropeScaling = parseRopeScaling(r, ropeParameters);
  if (ropeScaling && ropeScaling.originalMaxPositionEmbeddings > maxPositionEmbeddings) {
    r.unsupported('rope_scaling.original_max_position_embeddings', ropeScaling.originalMaxPositionEmbeddings, `must be at most max_position_embeddings (${maxPositionEmbeddings}): YaRN extends the original context`);
  }

  const bosTokenId = r.int('bos_token_id', 0, vocabSize - 1);
  const eosTokenIds = r.intOrIntList('eos_token_id', 0, vocabSize - 1);
  const tie = r.optionalBool('tie_word_embeddings') ?? false;
  if (tie) r.unsupported('tie_word_embeddings', true, 'tied embeddings are not supported (the checkpoint must hold lm_head.weight)');
  const torchDtype = r.optionalString('torch_dtype') ?? r.optionalString('dtype') ?? null;

  const layers = Array.from({ length: numHiddenLayers }, (_, i) => i);
  return {
    modelType: 'deepseek_v2',
    vocabSize,
    hiddenSize,
    numHiddenLayers,
    firstKDenseReplace,
    intermediateSize,
    moeIntermediateSize,
    nRoutedExperts,
    numExpertsPerTok,
    nSharedExperts,
    moeLayerFreq,
    scoringFunc: 'softmax',
    topkMethod: 'greedy',
    nGroup,
    topkGroup,
    normTopkProb,
    routedScalingFactor,
    numAttentionHeads,
    numKeyValueHeads,
    qLoraRank,
    kvLoraRank,
    qkNopeHeadDim,
    qkRopeHeadDim,
    vHeadDim,
    rmsNormEps,
    ropeTheta,
    maxPositionEmbeddings,
    ropeScaling,
    bosTokenId,
    eosTokenId: eosTokenIds[0],
    eosTokenIds,
    tieWordEmbeddings: false,
    hiddenAct: 'silu',
    torchDtype,
    qkHeadDim: qkNopeHeadDim + qkRopeHeadDim,
    denseLayers: layers.filter((i) => i < firstKDenseReplace),
    moeLayers: layers.filter((i) => i >= firstKDenseReplace),
  };
}

export function isMoeLayer(config: ModelConfig, layer: number): boolean {
  return layer >= config.firstKDenseReplace && layer < config.numHiddenLayers;
}

function parseRopeScaling(r: FieldReader, ropeParameters: Record<string, unknown> | undefined): YarnRopeScaling | null {
  let src = r.optionalObjectOrNull('rope_scaling');
  let key = 'rope_scaling';
  if (src === undefined || src === null) {
    if (ropeParameters === undefined) return null;
    src = ropeParameters;
    key = 'rope_parameters';
  }
  const type = src.type ?? src.rope_type ?? 'default';
  if (type === 'default' && key === 'rope_parameters') return null;
  if (type !== 'yarn') r.unsupported(`${key}.type`, type, "only 'yarn' (or no rope_scaling) is supported");
  const sub = new FieldReader(src, r.file, `${key}.`);
  const factor = sub.inRange('factor', sub.positiveNumber('factor'));
  const betaFast = sub.inRange('beta_fast', sub.optionalNumber('beta_fast') ?? 32);
  const betaSlow = sub.inRange('beta_slow', sub.optionalNumber('beta_slow') ?? 1);
  // YaRN ramps between the dimensions of beta_fast and beta_slow rotations: the range must not be empty.
  if (betaSlow >= betaFast) sub.unsupported('beta_slow', betaSlow, `must be below beta_fast (${betaFast})`);
  return {
    type: 'yarn',
    factor,
    originalMaxPositionEmbeddings: sub.int('original_max_position_embeddings', 1, 1 << 30),
    betaFast,
    betaSlow,
    // Defaults of DeepSeek's own YaRN code (mscale 1, mscale_all_dim 0).
    mscale: sub.inRange('mscale', sub.optionalNumber('mscale') ?? 1),
    mscaleAllDim: sub.inRange('mscale_all_dim', sub.optionalNumber('mscale_all_dim') ?? 0),
  };
}

function numberIn(obj: Record<string, unknown> | undefined, key: string): number | undefined {
  const v = obj?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Typed access to config.json fields; every error names the file and the field. */
class FieldReader {
  constructor(
    private readonly obj: Record<string, unknown>,
    readonly file: string,
    private readonly prefix = '',
  ) {}

  private fail(key: string, problem: string): never {
    throw new BadInputError(this.file, `${this.prefix}${key} ${problem}`);
  }

  unsupported(key: string, value: unknown, why: string): never {
    throw new BadInputError(this.file, `unsupported ${this.prefix}${key} = ${JSON.stringify(value)}: ${why}`);
  }

  /** A value inside CONFIG_RANGES[key], returned as is. */
  inRange(key: keyof typeof CONFIG_RANGES, v: number): number {
    const [min, max] = CONFIG_RANGES[key];
    if (!(v >= min && v <= max)) this.unsupported(key, v, `outside [${min}, ${max}], the range real DeepSeek-V2 configs lie in (values outside make the forward produce NaN or garbage)`);
    return v;
  }

  int(key: string, min: number, max: number, whyMin?: string): number {
    const v = this.obj[key];
    if (v === undefined) this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(key, `must be an integer, got ${JSON.stringify(v)}`);
    if (v < min && whyMin) this.unsupported(key, v, whyMin);
    if (v < min || v > max) this.fail(key, `= ${v} is out of range [${min}, ${max}]`);
    return v;
  }

  intOrIntList(key: string, min: number, max: number): number[] {
    const v = this.obj[key];
    if (Array.isArray(v)) {
      if (v.length === 0) this.fail(key, 'is an empty list');
      return v.map((_, i) => new FieldReader({ [`${key}[${i}]`]: v[i] }, this.file, this.prefix).int(`${key}[${i}]`, min, max));
    }
    return [this.int(key, min, max)];
  }

  positiveNumber(key: string): number {
    const v = this.obj[key];
    if (v === undefined) this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(key, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  optionalNumber(key: string): number | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a number, got ${JSON.stringify(v)}`);
    return v;
  }

  optionalIntOrNull(key: string, min: number, max: number): number | null {
    const v = this.obj[key];
    if (v === undefined || v === null) return null;
    return this.int(key, min, max);
  }

  optionalString(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  optionalBool(key: string): boolean | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  optionalObject(key: string): Record<string, unknown> | undefined {
    return this.optionalObjectOrNull(key) ?? undefined;
  }

  optionalObjectOrNull(key: string): Record<string, unknown> | null | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, `must be an object or null, got ${JSON.stringify(v)}`);
    return v as Record<string, unknown>;
  }
}
