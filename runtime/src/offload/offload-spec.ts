/**
 * Engine.load's offloading options -> the native addon's spec (native/addon/offload_binding.h).
 * Everything is validated here, against the model, with errors that name the option.
 */
import { prepareReplay } from '../../../sim/src/replay/replay-corpus.js';
import { firstHalf, pinnedForCorpus } from '../../../sim/src/replay/warmup.js';
import type { RoutingCorpus } from '../../../traces/src/sequences.js';
import type { NativeOffloadSpec } from '../engine/native-binding.js';
import { toNativeTensors } from '../engine/native-config.js';
import type { EngineLoadOptions } from '../engine/options.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { UserError } from '../../../core/src/errors.js';
import { resolveCacheOptions } from './cache-options.js';
import { resolveMissOptions } from './miss-options.js';
import { resolvePrefetchOptions } from './prefetch-options.js';
import { checkReplayCoverage, checkReplayGeometry, toNativeReplay, type RoutingReplay } from './routing-replay.js';

export interface RecordOptions {
  /** the router's softmax over all experts (default true) */
  scores?: boolean;
  /** the next MoE layer's router applied to this layer's MoE input (default true) */
  gateNext?: boolean;
  /** per-layer wall time and cache hits/misses (default true) */
  timings?: boolean;
}

/** `offloaded`: the engine keeps its routed experts in host memory (device cuda with a GPU slot pool). */
export function buildOffloadSpec(ckpt: Checkpoint, o: EngineLoadOptions, offloaded = false): NativeOffloadSpec | null {
  const config = ckpt.config;
  const L = config.moeLayers.length;
  const cache = resolveCacheOptions(o.cache, config.nRoutedExperts, L);
  const routing = o.routing;
  if (routing !== undefined) {
    if (!routing || typeof routing !== 'object' || !routing.corpus) throw new UserError('option routing: must be a routing replay (loadRoutingReplay(path, config))');
    checkReplayGeometry(routing.path, routing.corpus, config);
  }
  const record = o.record;
  if (record !== undefined && (record === null || typeof record !== 'object')) throw new UserError('option record: must be an object {scores, gateNext, timings}');
  const miss = resolveMissOptions(o.miss, offloaded ? 'cuda' : (o.device ?? 'cpu'), offloaded);
  if (miss?.rounding === 'gpu-order' && (o.expertDtype ?? 'bf16') !== 'bf16') {
    throw new UserError(`option --cpu-rounding gpu-order: only for bf16 experts (--expert-dtype ${o.expertDtype} rounds its own way on the CPU and the GPU)`);
  }
  const prefetch = resolvePrefetchOptions(o.prefetch, { routing, hasCache: cache !== null && cache !== undefined, offloadedCuda: offloaded, moeLayers: L });
  if (o.residentSteps !== undefined && typeof o.residentSteps !== 'boolean') throw new UserError(`option residentSteps: must be true or false, got ${JSON.stringify(o.residentSteps)}`);
  if (!cache && !routing && !record && !miss) return null;
  const spec: NativeOffloadSpec = {};
  if (o.residentSteps === false) spec.residentSteps = false;
  if (miss) spec.miss = miss;
  if (prefetch) {
    spec.prefetch = prefetch.spec;
    if (prefetch.spec.hostGate) spec.tensors = toNativeTensors(ckpt);
  }
  if (cache) {
    spec.cache = { slotsPerLayer: cache.slotsPerLayer, policy: cache.policy, lfruDecay: cache.lfruDecay };
    if (cache.policy === 'static') {
      let pinned = cache.pinned;
      if (!pinned) {
        if (!routing) throw new UserError('option cache.pinned: the static policy needs pinned experts, or a routing replay to take them from (the C most popular of its first half, as the simulator)');
        pinned = pinnedForCorpus(firstHalf(routing.corpus), cache.slotsPerLayer);
      }
      spec.cache.pinned = pinned.map((p) => Int32Array.from(p));
    }
    if (cache.policy === 'belady' || cache.policy === 'opt') {
      const planned = plannedRequestSets(routing, o.cache?.schedule);
      spec.cache.plannedOffsets = planned.offsets;
      spec.cache.plannedExperts = planned.experts;
    }
  }
  if (routing) spec.replay = toNativeReplay(routing);
  if (record) {
    spec.record = { scores: record.scores ?? true, gateNext: record.gateNext ?? true, timings: record.timings ?? true };
    if (spec.record.gateNext && !spec.tensors) spec.tensors = toNativeTensors(ckpt);
  }
  return spec;
}

/**
 * belady needs the future: the request sets the run will produce, derived from the replayed trace with
 * the simulator's own lanes (sequence g truncated to the `lengths[g]` tokens the run processes, `batch`
 * lanes). The engine checks every step against them, so a run that batches differently is an error.
 */
function plannedRequestSets(routing: RoutingReplay | undefined, schedule: { batch: number; lengths: number[] } | undefined): { offsets: Int32Array; experts: Int32Array } {
  if (!routing || !schedule) {
    throw new UserError('option cache.policy: belady and opt need the future, i.e. a routing replay (--routing) and the run\'s schedule (cache.schedule: {batch, lengths})');
  }
  checkReplayCoverage(routing, schedule.lengths);
  const corpus: RoutingCorpus = { ...routing.corpus, sequences: schedule.lengths.map((n, g) => truncate(routing.corpus, g, n)) };
  const { sets } = prepareReplay(corpus, schedule.batch);
  return { offsets: Int32Array.from(sets.offsets), experts: Int32Array.from(sets.experts) };
}

function truncate(corpus: RoutingCorpus, g: number, n: number): RoutingCorpus['sequences'][number] {
  const s = corpus.sequences[g];
  const w = corpus.moeLayers.length * corpus.topK;
  return { seq: s.seq, length: n, positions: s.positions.subarray(0, n), experts: s.experts.subarray(0, n * w), weights: s.weights.subarray(0, n * w) };
}
