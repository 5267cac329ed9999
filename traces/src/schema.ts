/**
 * Trace format v1: routing (and, for real runs, timing) of MoE inference, one Arrow IPC file per run.
 * traces/SCHEMA.md is the normative description; this file is its code. One row per
 * (step, MoE layer, token of the step), rows ordered by step, then layer, then token.
 */
import { Field, FixedSizeList, Float32, Int32, List, Schema, Uint16, Uint8 } from 'apache-arrow';

export const TRACE_SCHEMA_VERSION = '1';
export const META_VERSION_KEY = 'moe_offload.schema_version';
export const META_RUN_KEY = 'moe_offload.run';

export type RoutingSource = 'model' | 'replay' | 'imported';
export const ROUTING_SOURCES: readonly RoutingSource[] = ['model', 'replay', 'imported'];

export const PHASE_PREFILL = 0;
export const PHASE_DECODE = 1;

/** Run metadata, stored as JSON in the schema's custom metadata. */
export interface RunMeta {
  /** Model name or path as given (e.g. deepseek-ai/DeepSeek-V2-Lite-Chat). */
  modelId: string;
  /** sha256 of the model's config.json, or of the facts an import knows (see SCHEMA.md). */
  configHash: string;
  /** Model layers in total, dense ones included. */
  numLayers: number;
  /** Model layer indices that are MoE layers, ascending (1..26 for DeepSeek-V2-Lite). */
  moeLayers: number[];
  numExperts: number;
  topK: number;
  routingSource: RoutingSource;
  /** Where the prompts came from (sharegpt, builtin, esft/intent, a file name). */
  dataset: string;
  batchSize: number | null;
  promptLength: number | null;
  /** Device name (e.g. 'NVIDIA H200'), or null for imports. */
  device: string | null;
  engineVersion: string;
  gitRevision: string | null;
  /** ISO 8601. */
  createdAt: string;
  /** Free-form provenance (how it was made, what the routing is). */
  notes?: string;
}

/** Optional column groups; a file has each group entirely or not at all. */
export interface OptionalColumns {
  /** `token`: the token id. */
  tokens?: boolean;
  /** `scores`: the router's full softmax over all experts. */
  scores?: boolean;
  /** `gate_next`: top-k of layer i+1's router applied to layer i's input (null on the last MoE layer). */
  gateNext?: boolean;
  /** `predicted`: the experts a prefetcher predicted for this (step, layer). */
  predicted?: boolean;
  /** `layer_us`, `transfer_wait_us`, `hits`, `misses`, `cpu_experts`: measured per (step, layer). */
  timings?: boolean;
}

export const TIMING_COLUMNS = ['layer_us', 'transfer_wait_us', 'hits', 'misses', 'cpu_experts'] as const;

export function expertIdType(): Uint16 {
  return new Uint16();
}

export function buildSchema(meta: RunMeta, optional: OptionalColumns): Schema {
  const k = meta.topK;
  const fields: Field[] = [
    new Field('step', new Int32(), false),
    new Field('phase', new Uint8(), false),
    new Field('layer', new Uint16(), false),
    new Field('seq', new Int32(), false),
    new Field('pos', new Int32(), false),
    new Field('experts', new FixedSizeList(k, new Field('item', new Uint16(), false)), false),
    new Field('weights', new FixedSizeList(k, new Field('item', new Float32(), false)), false),
  ];
  if (optional.tokens) fields.push(new Field('token', new Int32(), false));
  if (optional.scores) fields.push(new Field('scores', new FixedSizeList(meta.numExperts, new Field('item', new Float32(), false)), false));
  if (optional.gateNext) fields.push(new Field('gate_next', new FixedSizeList(k, new Field('item', new Uint16(), false)), true));
  if (optional.predicted) fields.push(new Field('predicted', new List(new Field('item', new Uint16(), false)), false));
  if (optional.timings) {
    fields.push(new Field('layer_us', new Float32(), false));
    fields.push(new Field('transfer_wait_us', new Float32(), false));
    fields.push(new Field('hits', new Uint16(), false));
    fields.push(new Field('misses', new Uint16(), false));
    fields.push(new Field('cpu_experts', new Uint16(), false));
  }
  const metadata = new Map<string, string>([
    [META_VERSION_KEY, TRACE_SCHEMA_VERSION],
    [META_RUN_KEY, JSON.stringify(meta)],
  ]);
  return new Schema(fields, metadata);
}

/** Checks a RunMeta's internal consistency; returns the problems found (empty when valid). */
export function runMetaProblems(meta: Partial<RunMeta>): string[] {
  const p: string[] = [];
  const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  if (typeof meta.modelId !== 'string' || meta.modelId === '') p.push('modelId must be a non-empty string');
  if (typeof meta.configHash !== 'string') p.push('configHash must be a string');
  if (!isInt(meta.numLayers) || (meta.numLayers as number) < 1) p.push('numLayers must be a positive integer');
  if (!isInt(meta.numExperts) || (meta.numExperts as number) < 1 || (meta.numExperts as number) > 65535) p.push('numExperts must be an integer in [1, 65535]');
  if (!isInt(meta.topK) || (meta.topK as number) < 1 || (meta.topK as number) > (meta.numExperts ?? 0)) p.push('topK must be an integer in [1, numExperts]');
  if (!Array.isArray(meta.moeLayers) || meta.moeLayers.length === 0) p.push('moeLayers must be a non-empty array');
  else {
    for (let i = 0; i < meta.moeLayers.length; i++) {
      const l = meta.moeLayers[i];
      if (!isInt(l) || l < 0 || l >= (meta.numLayers ?? 0)) p.push(`moeLayers[${i}] = ${l} is not a layer of a ${meta.numLayers}-layer model`);
      if (i > 0 && l <= meta.moeLayers[i - 1]) p.push('moeLayers must be strictly ascending');
    }
  }
  if (!ROUTING_SOURCES.includes(meta.routingSource as RoutingSource)) p.push(`routingSource must be one of ${ROUTING_SOURCES.join(', ')}`);
  if (typeof meta.dataset !== 'string') p.push('dataset must be a string');
  if (typeof meta.createdAt !== 'string' || Number.isNaN(Date.parse(meta.createdAt))) p.push('createdAt must be an ISO date');
  return p;
}
