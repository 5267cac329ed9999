/**
 * The timing model: a discrete-event simulation of offloaded decoding over a replay's steps.
 * Resources: the GPU compute stream (1 server), the host-to-device copy engines, the CPU worker pool.
 * Per step: the dense layer(s), then for each MoE layer: attention + router + shared experts on the GPU,
 * then the routed experts (hits on the GPU; misses fetched then run on the GPU, or run on the CPU), then
 * the head. Prefetches are issued as their prediction becomes known and queue behind demand copies.
 * Cache decisions are the canonical LayerCache ones (sim/README.md "Timing model" spells out the rest).
 * Deterministic: no randomness is used; ties between events go by (time, priority, sequence number).
 */
import type { LayerCache } from '../cache/layer-cache.js';
import { OUTCOME_BYPASS, OUTCOME_EVICT, OUTCOME_HIT } from '../cache/types.js';
import type { Costs } from '../cost/cost-model.js';
import { decideMisses, type MissDecision } from '../cost/miss-rule.js';
import { CpuCorrection, DEFAULT_CPU_ESTIMATE, type CpuEstimate } from '../cost/cpu-correction.js';
import { EventQueue } from '../des/event-queue.js';
import { Resource } from '../des/resource.js';
import type { PrefetchPlan } from '../prefetch/sources.js';
import type { RequestSets } from '../replay/requests.js';
import type { Schedule } from '../replay/schedule.js';

export const MISS_MODES = ['fetch', 'cpu', 'hybrid'] as const;
export type MissMode = (typeof MISS_MODES)[number];
/**
 * `--cpu-fill`: what becomes of a miss computed on the CPU. background: the cache admits it and its slot
 * is filled by a background copy; lazy: admitted, its slot filled when the GPU needs it; none: not
 * admitted, nothing copied (Fiddler's way: the CPU keeps computing it while it misses). The commands'
 * default is none (the faster on the H200: reports/bench/offload-h200-2026-12-03).
 */
export const CPU_FILLS = ['background', 'lazy', 'none'] as const;
export type CpuFill = (typeof CPU_FILLS)[number];
export const DEFAULT_CPU_FILL: CpuFill = 'none';
/** The timing input's (and SimConfig's) fields of a --cpu-fill value. */
export function cpuFillConfig(f: CpuFill): { cpuFill: boolean; cpuAdmit: boolean } {
  return { cpuFill: f === 'background', cpuAdmit: f !== 'none' };
}

export interface TimingInput {
  schedule: Schedule;
  sets: RequestSets;
  caches: LayerCache[];
  costs: Costs;
  miss: MissMode;
  /** cpu/hybrid: fill CPU-computed experts' cache slots in the background (else lazily, on GPU use) */
  cpuFill?: boolean;
  /**
   * cpu/hybrid: false (`--cpu-fill none`, Fiddler's way, the commands' default; true, this API's default:
   * background or lazy, as cpuFill says): a miss the rule puts on the CPU is not admitted
   * to the cache and nothing is copied for it. The layer's misses are then decided before the cache sees
   * them: its cached experts are requested first (ascending), then the misses the rule fetches (ascending);
   * the CPU ones are never requested. The runtime's twin: ExpertCache::run_step_deciding_misses.
   */
  cpuAdmit?: boolean;
  /**
   * cpu/hybrid: the miss rule's CPU times as the profile has them (`profile`) or corrected by the run's
   * finished CPU jobs (`measured`: cost/cpu-correction.ts). Default profile, as the runtime's.
   */
  cpuEstimate?: CpuEstimate;
  /**
   * Steps whose first token sits below this position are prefill and fetch every miss, as the runtime's
   * prefill forward does (its rows exceed the CPU path's; runtime/src/bench/sim-prediction.ts). Default 0.
   */
  decodeFrom?: number;
  prefetch: PrefetchPlan | null;
  /** Dense (non-MoE) layers per step (DeepSeek-V2-Lite: 1). */
  denseLayers: number;
  /**
   * Resident steps (default true; the runtime's `residentSteps`, native/src/cuda_backend/cuda_resident_step.cpp):
   * a decode step (first token at or past decodeFrom) of at most RESIDENT_STEP_MAX_ROWS tokens, with no
   * prefetcher, that starts with every routed expert of every MoE layer cached and filled runs without the
   * routing's per-layer trip to the host: no host.layerMs or gpu.eagerLayerOverheadMs between the layers (but
   * gpu.residentLayerOverheadMs, when profiled); the controller's per-layer work (host.layerMs each) runs after
   * the head, with host.stepMs.
   */
  residentSteps?: boolean;
  /**
   * prefetch predicted: the runtime runs its predictor in-line (native/src/offload/predictor_mlp.cpp), on the
   * host once a layer's routing is there and before its copies and launches are issued: ms per (row, layer)
   * prediction, host work on the critical path of every MoE layer that has one k layers ahead (default 0).
   */
  predictorMs?: number;
}

/** The runtime's largest resident step (cuda_backend_impl.h kGraphMaxRows: it runs as a CUDA graph). */
export const RESIDENT_STEP_MAX_ROWS = 64;

export interface TimingResult {
  hits: number;
  /** Hits whose copy had finished when the compute needed the expert. */
  readyHits: number;
  /** Hits on an expert whose copy (prefetch or background fill) was still running: the compute waited. */
  lateHits: number;
  /** cpuFill false: cache hits on an expert whose slot was never filled (physical misses, decided again). */
  unfilledHits: number;
  requests: number;
  misses: number;
  bypasses: number;
  cpuExperts: number;
  /** Expert-weight bytes copied host to device (demand, staging, prefetch, background fill). */
  bytesMoved: number;
  copies: { demand: number; prefetch: number; background: number; /** queued prefetches a late hit turned into demand copies */ promoted: number };
  prefetch: { issued: number; useful: number; dropped: number; needed: number };
  totalMs: number;
  tokens: number;
  stepMs: Float64Array;
  stepTokens: Int32Array;
  /**
   * Per step, the MoE layers split as the runtime's counters split them (decodeLayerHeadMs/TailMs): head =
   * the routing reaching the host -> the host goes on (after the layer's CPU jobs, if any); tail -> the next
   * MoE layer's routing reaching the host. Summed over the step's layers that have a next one (stepLayerTails).
   * The runtime's head also holds its host work of the layer (queuing copies and launches, ~0.1 ms); here
   * that work (host.layerMs, gpu.eagerLayerOverheadMs) sits before the routing arrives, in the tail.
   */
  stepLayerHeadMs: Float64Array;
  stepLayerTailMs: Float64Array;
  stepLayerTails: Int32Array;
  /** Per step, the GPU time of its routed-expert work (the launches' or per-expert durations; the runtime's
   *  decodeExpertGpuMs under MOE_TIME_EXPERT_LAUNCHES=1 measures the launches' part). */
  stepExpertGpuMs: Float64Array;
  /** 1 for the steps that ran as resident steps (TimingInput.residentSteps; no layer split is counted there) */
  stepResident: Uint8Array;
  busyMs: { gpuNonExpert: number; gpuExpert: number; copy: number; cpu: number; /** host work the GPU waited for (host.*, gpu.eagerLayerOverheadMs) */ host: number };
  /** the miss rule's CPU correction factor after the run's last CPU job (cpuEstimate measured; 1 otherwise) */
  cpuFactor: number;
  events: number;
}

// Completion events, one kind per resource; equal times run GPU, then copies, then CPU, then the host's join.
const EV_GPU = 0;
const EV_COPY = 1;
const EV_CPU = 2;
const EV_JOIN = 3;
// GPU jobs
const JOB_DENSE = 0;
const JOB_MOE_OTHER = 1;
const JOB_EXPERT = 2;
const JOB_HEAD = 3;
// The runtime's host work on the critical path (profile `host`, and gpu.eagerLayerOverheadMs): the GPU waits for it.
const JOB_HOST_LAYER = 4;
const JOB_HOST_STEP = 5;
// The host's join of a layer's CPU experts: their outputs uploaded and scattered on the GPU stream.
const JOB_CPU_JOIN = 6;
// copy queue priorities (lower first)
const PRIO_DEMAND = 0;
const PRIO_PREFETCH = 1;
/** Pieces a prefetch copy is split into (an expert's three matrices). */
export const PREFETCH_CHUNKS = 3;
// residency of (layer, expert)
const NOT_CACHED = 0;
const READY = 1;
const IN_FLIGHT = 2;
/** copyWaiter of a copy whose expert joins the layer's loaded launch (launch model) */
const LOADED = -1;
/** copyWaiter of the upload of a layer's CPU expert outputs: the scatter (JOB_CPU_JOIN) follows it */
const UPLOAD = -2;
/** copyKey of that upload (no expert, no expert bytes) */
const UPLOAD_KEY = -3;

export function simulateTiming(input: TimingInput): TimingResult {
  const { schedule, sets, caches, costs, miss, prefetch, denseLayers } = input;
  const cpuFill = input.cpuFill ?? true;
  const cpuAdmit = input.cpuAdmit ?? true;
  const decodeFrom = input.decodeFrom ?? 0;
  /** the miss rule's mode this step (fetch in prefill steps) */
  let stepMiss: MissMode = miss;
  const L = sets.layers;
  const E = sets.numExperts;
  const S = schedule.steps;
  // Job tables sized once from upper bounds: nothing grows during the run.
  const maxGpuJobs = S * (2 * L + 3) + sets.experts.length + 1;
  // each request at most one copy (demand, staging or fill), prefetch pieces, one CPU-output upload per (step, layer)
  const maxCopies = sets.experts.length + (prefetch ? PREFETCH_CHUNKS * prefetch.sets.experts.length : 0) + S * L + 1;
  const q = new EventQueue();
  const gpu = new Resource('gpu', 1, q, EV_GPU, 0, maxGpuJobs);
  const copy = new Resource('copy', costs.model.transfer.copyEngines, q, EV_COPY, 1, maxCopies);
  const cpu = new Resource('cpu', costs.model.cpu.workers, q, EV_CPU, 2, sets.experts.length + 1);
  /** The host thread's launches after a layer's CPU join (gpu.cpuJoinLayerOverheadMs): one job per such layer. */
  const hostJoin = new Resource('host join', 1, q, EV_JOIN, 3, S * L + 1);
  const gpuJob = new Uint8Array(maxGpuJobs);
  /** GPU job -> routed experts it completes (a launch covers several under the launch model) */
  const gpuJobExperts = new Int32Array(maxGpuJobs);
  /** copy job -> (layer * E + expert) it fills, or -1 for a staging copy (bypass). */
  const copyKey = new Int32Array(maxCopies);
  /** copy job -> tokens of the GPU expert job to start when it lands (0: none; LOADED: the loaded launch). */
  const copyWaiter = new Int32Array(maxCopies);
  /** copy job -> 1 when it is the last piece of a prefetch (its other pieces are the ids just before). */
  const lastPrefetchPiece = new Uint8Array(maxCopies);
  // Expert compute times by token count (an expert serves at most `batch` tokens of a step).
  const gpuExpertMs = new Float64Array(schedule.batch + 1);
  const cpuExpertMs = new Float64Array(schedule.batch + 1);
  /** The miss rule's CPU estimates (what the runtime's rule is given: calibrate's kernel time, which the run's
   *  correction scales, and the activations' round trip), apart from the jobs' durations. */
  const cpuKernelMs = new Float64Array(schedule.batch + 1);
  for (let n = 1; n <= schedule.batch; n++) {
    gpuExpertMs[n] = costs.gpuExpert(n);
    cpuExpertMs[n] = costs.cpuJob(n);
    cpuKernelMs[n] = costs.cpuExpertKernel(n);
  }
  const joinMs = costs.model.cpu.activationCopyMs;
  /** the current layer's CPU join: parts (the outputs' upload, the host's launches) still to finish */
  let joinParts = 0;
  const correction = new CpuCorrection((input.cpuEstimate ?? DEFAULT_CPU_ESTIMATE) === 'measured');
  /** CPU job -> its duration as it ran (set when it starts), for the correction */
  const cpuJobRanMs = new Float64Array(sets.experts.length + 1);
  /** the CPU jobs not observed yet, in decision order: observed before the next decisions */
  const cpuJobsToObserve: number[] = [];
  const observeCpuJobs = () => {
    for (const id of cpuJobsToObserve) correction.observe(cpuJobRanMs[id], cpuKernelMs[cpuJobTokens[id]]);
    cpuJobsToObserve.length = 0;
  };
  // Copies and CPU jobs read the same host DRAM (cost-model.ts: cpuJobBesideCopies, copySlowdownBesideCpu).
  // Each job's duration is fixed when it starts, from what the other resource is doing at that moment.
  const cpuBesideCopiesScale = new Float64Array(schedule.batch + 1);
  for (let n = 1; n <= schedule.batch; n++) cpuBesideCopiesScale[n] = cpuExpertMs[n] > 0 ? costs.cpuJobBesideCopies(n) / cpuExpertMs[n] : 1;
  const cpuJobTokens = new Int32Array(sets.experts.length + 1);
  /** tokens of the CPU jobs running now (summed) */
  let cpuRunningTokens = 0;
  // (factor 1 throughout without the profile's curve: the hook then only counts the running tokens)
  cpu.startScale = (id) => {
    const n = cpuJobTokens[id];
    cpuRunningTokens += n;
    const scale = copy.busyServers > 0 ? cpuBesideCopiesScale[n] : 1;
    cpuJobRanMs[id] = cpuExpertMs[n] * scale;
    return scale;
  };
  if (costs.model.transfer.copySlowdownUnderCpu) {
    copy.startScale = () => (cpu.busyServers > 0 ? costs.copySlowdownBesideCpu(cpuRunningTokens / cpu.busyServers) : 1);
  }
  // The launch model (profile gpu.launch, steps of at most its maxRows rows), as the runtime launches a
  // layer's experts: the resident ones (ready hits) in one launch at once, the ones copied into slots for
  // this layer (fetched misses the cache keeps, late hits) in one launch after the last of those copies,
  // each staged one (a bypass) alone after its copy. Without it: one job per expert, gpu.expertMs.
  const launches = costs.launchModel(schedule.batch);
  /** a staged (or, without the launch model, any) expert's GPU job by tokens */
  const aloneMs = new Float64Array(schedule.batch + 1);
  for (let n = 1; n <= schedule.batch; n++) aloneMs[n] = launches ? costs.gpuLaunch(1, n) : gpuExpertMs[n];
  // The current layer's loaded launch: experts, tokens, copies still in flight.
  let loadedExperts = 0;
  let loadedTokens = 0;
  let loadedPending = 0;
  /** copy job -> 1 once it has landed (for the fill barrier). */
  const copyLanded = new Uint8Array(maxCopies);
  /** layer -> the last background fill issued for it (-1: none): its next step's GPU work waits for it. */
  const lastFill = new Int32Array(L).fill(-1);
  // The current layer's GPU work held behind a fill barrier: the copy it waits for and the jobs
  // (job kind, duration, experts it completes; flat triples).
  let gateCopy = -1;
  const gated: number[] = [];
  /** CPU jobs of the current layer still running. */
  let cpuPending = 0;
  const residency = new Uint8Array(L * E);
  const inflight = new Int32Array(L * E).fill(-1);
  const prefetchedFor = new Int32Array(L * E).fill(-1);
  const neededDoneAt = new Int32Array(L).fill(-1);
  const r: TimingResult = {
    hits: 0, readyHits: 0, lateHits: 0, unfilledHits: 0, requests: 0, misses: 0, bypasses: 0, cpuExperts: 0, bytesMoved: 0,
    copies: { demand: 0, prefetch: 0, background: 0, promoted: 0 },
    prefetch: { issued: 0, useful: 0, dropped: 0, needed: 0 },
    totalMs: 0, tokens: 0,
    stepMs: new Float64Array(S), stepTokens: new Int32Array(S),
    stepLayerHeadMs: new Float64Array(S), stepLayerTailMs: new Float64Array(S), stepLayerTails: new Int32Array(S), stepExpertGpuMs: new Float64Array(S), stepResident: new Uint8Array(S),
    busyMs: { gpuNonExpert: 0, gpuExpert: 0, copy: 0, cpu: 0, host: 0 },
    cpuFactor: 1,
    events: 0,
  };
  // Experts a cache starts with (static's pinned set) are resident before the run.
  caches.forEach((c, l) => {
    for (const e of c.contents()) residency[l * E + e] = READY;
  });
  const copyMs = costs.copyMs;
  const prefetchChunkMs = costs.model.transfer.perCopyMs + (copyMs - costs.model.transfer.perCopyMs) / PREFETCH_CHUNKS;
  const missCosts = { copyMs, gpuMs: (n: number) => gpuExpertMs[n], cpuMs: (n: number) => correction.factor * cpuKernelMs[n] + joinMs };
  // One layer's misses, decided together by the shared rule (scratch, reused).
  const missKey: number[] = [];
  const missTokens: number[] = [];
  const missCached: boolean[] = [];
  /** cpuAdmit false: the request index of a miss not yet requested from the cache (-1: requested) */
  const missRequest: number[] = [];
  const decisions: MissDecision[] = [];
  const cpuFree: number[] = [];
  const bytes = costs.model.expertBytes;

  let now = 0;
  let step = 0;
  let layer = 0;
  let batchTokens = 0;
  let stepStart = 0;
  let pendingExperts = 0;
  // The current layer's split (stepLayerHeadMs / TailMs): its routing on the host, its CPU jobs' end, when
  // the host went on (-1: no layer before the next routing in this step).
  let layerRoutedAt = 0;
  let layerCpuDoneAt = 0;
  let layerHostDoneAt = -1;
  // Resident steps: possible at all (every cache can hold every expert, no prefetcher), and this step's.
  const residentAllowed = (input.residentSteps ?? true) && !prefetch && caches.every((c) => c.capacity >= E);
  let residentNow = false;
  /** every (layer, expert) cached and its copy issued (the runtime's slots: ExpertPool::physical) */
  const everyExpertCached = () => {
    for (let i = 0; i < L * E; i++) if (residency[i] === NOT_CACHED) return false;
    return true;
  };

  /** gpuShareMs: the part of a host job that is GPU work (the layer glue), booked as GPU busy time, not host */
  const submitGpu = (job: number, duration: number, experts = 0, gpuShareMs = 0) => {
    const id = gpu.submit(now, duration, 0);
    gpuJob[id] = job;
    gpuJobExperts[id] = experts;
    if (job === JOB_EXPERT || job === JOB_CPU_JOIN) r.busyMs.gpuExpert += duration;
    if (job === JOB_EXPERT) r.stepExpertGpuMs[step] += duration;
    else if (job === JOB_HOST_LAYER || job === JOB_HOST_STEP) {
      r.busyMs.host += duration - gpuShareMs;
      r.busyMs.gpuNonExpert += gpuShareMs;
    } else r.busyMs.gpuNonExpert += duration;
  };
  const submitCopy = (key: number, prio: number, waiterTokens: number, fill = false) => {
    // A prefetch moves in PREFETCH_CHUNKS pieces (gate, up, down), so a demand copy waits for at most one
    // piece of a prefetch already on the link; the expert is resident when its last piece lands.
    let id: number;
    if (prio === PRIO_PREFETCH) {
      for (let c = 1; c < PREFETCH_CHUNKS; c++) copyKey[copy.submit(now, prefetchChunkMs, prio)] = -2;
      id = copy.submit(now, prefetchChunkMs, prio);
      lastPrefetchPiece[id] = 1;
    } else id = copy.submit(now, copyMs, prio);
    copyKey[id] = key;
    copyWaiter[id] = waiterTokens;
    r.bytesMoved += bytes;
    if (key >= 0) {
      residency[key] = IN_FLIGHT;
      inflight[key] = id;
    }
    // A fill (of a CPU-computed expert the cache keeps) queues FIFO with the demand copies, as the runtime
    // issues it, but is counted apart: nothing waits for it.
    if (fill) r.copies.background++;
    else if (prio === PRIO_DEMAND) r.copies.demand++;
    else r.copies.prefetch++;
    return id;
  };
  // A GPU expert job (completing `experts` routed experts) or the CPU join of the current layer, behind
  // the fill barrier.
  const submitLayerGpu = (job: number, duration: number, experts: number) => {
    if (gateCopy >= 0) gated.push(job, duration, experts);
    else submitGpu(job, duration, experts);
  };
  /** A copy with waiter LOADED has landed: the loaded launch goes once all of them have. */
  const loadedLanded = () => {
    if (--loadedPending === 0) submitLayerGpu(JOB_EXPERT, costs.gpuLaunch(loadedExperts, loadedTokens), loadedExperts);
  };
  const joinLoaded = (n: number) => {
    loadedExperts++;
    loadedTokens += n;
    loadedPending++;
  };
  const evicted = (l: number, victim: number) => {
    residency[l * E + victim] = NOT_CACHED;
    inflight[l * E + victim] = -1;
  };

  const issuePrefetch = (l: number) => {
    if (!prefetch) return;
    const idx = step * L + l;
    const from = prefetch.sets.offsets[idx];
    const to = prefetch.sets.offsets[idx + 1];
    if (from === to) return;
    const cache = caches[l];
    // Needed transfers: requests of (step, l) whose expert is not cached before the prefetch runs.
    for (let i = sets.offsets[idx]; i < sets.offsets[idx + 1]; i++) if (!cache.has(sets.experts[i])) r.prefetch.needed++;
    neededDoneAt[l] = step;
    cache.beginStep(step, prefetch.sets.experts, from, to);
    for (let i = from; i < to; i++) {
      const e = prefetch.sets.experts[i];
      const o = cache.prefetch(e);
      if (o === OUTCOME_HIT) continue;
      if (o === OUTCOME_BYPASS) {
        r.prefetch.dropped++;
        continue;
      }
      if (o === OUTCOME_EVICT) evicted(l, cache.lastVictim);
      r.prefetch.issued++;
      prefetchedFor[l * E + e] = step;
      submitCopy(l * E + e, PRIO_PREFETCH, 0);
    }
  };

  const issuePrefetchesAfter = (routedLayer: number) => {
    if (!prefetch) return;
    const target = routedLayer + prefetch.lookahead;
    if (routedLayer < 0) {
      for (let l = 0; l < Math.min(L, prefetch.lookahead); l++) issuePrefetch(l);
    } else if (target < L) issuePrefetch(target);
  };

  const routed = (l: number) => {
    if (l > 0 && layerHostDoneAt >= 0 && !residentNow) {
      r.stepLayerHeadMs[step] += layerHostDoneAt - layerRoutedAt;
      r.stepLayerTailMs[step] += now - layerHostDoneAt;
      r.stepLayerTails[step]++;
    }
    layerRoutedAt = now;
    layerCpuDoneAt = now;
    const idx = step * L + l;
    const from = sets.offsets[idx];
    const to = sets.offsets[idx + 1];
    const cache = caches[l];
    cache.beginStep(step, sets.experts, from, to);
    const countNeeded = neededDoneAt[l] !== step;
    const decideFirst = !cpuAdmit && stepMiss !== 'fetch';
    // The runtime's fill barrier (cuda_offload_layer.cpp): before this layer's GPU work, the compute stream
    // waits for the background fills this layer issued at an earlier step (their event, the last one).
    gateCopy = lastFill[l] >= 0 && !copyLanded[lastFill[l]] ? lastFill[l] : -1;
    lastFill[l] = -1;
    pendingExperts = to - from;
    r.requests += to - from;
    let residentExperts = 0;
    let residentTokens = 0;
    loadedExperts = 0;
    loadedTokens = 0;
    loadedPending = 0;
    for (let i = from; i < to; i++) {
      const e = sets.experts[i];
      const n = sets.tokens[i];
      const key = l * E + e;
      if (decideFirst && !cache.has(e)) {
        // requested after the rule, if it fetches it (below)
        r.misses++;
        if (countNeeded) r.prefetch.needed++;
        missKey.push(key);
        missTokens.push(n);
        missCached.push(false);
        missRequest.push(i);
        continue;
      }
      const o = cache.request(e, i);
      if (o === OUTCOME_HIT) {
        r.hits++;
        if (prefetchedFor[key] === step) r.prefetch.useful++;
        if (residency[key] === READY) {
          r.readyHits++;
          if (launches) {
            residentExperts++;
            residentTokens += n;
          } else submitLayerGpu(JOB_EXPERT, gpuExpertMs[n], 1);
        } else if (residency[key] === NOT_CACHED) {
          // cpuFill false: the cache holds its slot but nothing was copied there: a physical miss.
          r.unfilledHits++;
          missKey.push(key);
          missTokens.push(n);
          missCached.push(true);
        } else {
          r.lateHits++;
          const id = inflight[key];
          if (id < 0 || copyWaiter[id] !== 0) throw new Error('internal: late hit without a free in-flight copy');
          // The runtime computes a late prefetched expert with the loaded ones (prefetch_join_loaded).
          if (launches) {
            copyWaiter[id] = LOADED;
            joinLoaded(n);
          } else copyWaiter[id] = n;
          // The compute now waits for this copy: a prefetch still queued becomes demand work (a runtime
          // would issue it on the demand stream), instead of waiting behind every demand copy. (A late hit
          // on a background fill finds it in the demand queue already.)
          if (lastPrefetchPiece[id]) {
            let promoted = false;
            for (let c = 0; c < PREFETCH_CHUNKS; c++) promoted = copy.promote(id - c, PRIO_DEMAND) || promoted;
            if (promoted) r.copies.promoted++;
          }
        }
        continue;
      }
      r.misses++;
      if (countNeeded) r.prefetch.needed++;
      if (o === OUTCOME_EVICT) evicted(l, cache.lastVictim);
      const cached = o !== OUTCOME_BYPASS;
      if (!cached) r.bypasses++;
      missKey.push(key);
      missTokens.push(n);
      missCached.push(cached);
      missRequest.push(-1);
    }
    if (residentExperts > 0) submitLayerGpu(JOB_EXPERT, costs.gpuLaunch(residentExperts, residentTokens), residentExperts);
    if (missKey.length > 0) {
      // The runtime's order (cuda_cpu_experts.cpp): all of the layer's misses decided by the shared rule,
      // the fetched ones' copies queued first, then the background fills of the CPU experts the cache keeps
      // (FIFO on the copy engine, so they delay the next layers' demand copies, not this layer's).
      const backlog = copy.estimateFinish(now, 0, PRIO_DEMAND) - now;
      // The runtime observes a layer's CPU jobs when the layer joins them, so this layer decides with all
      // of the earlier layers' (a layer waits for its CPU jobs before the next one routes).
      observeCpuJobs();
      decideMisses(stepMiss, missCosts, backlog, cpu.serverFreeIn(now, cpuFree), missTokens, decisions);
      // cpuAdmit false: the misses the rule fetches are requested now, in order; the CPU ones never are.
      for (let m = 0; m < missKey.length; m++) {
        if (missRequest[m] < 0) continue;
        if (decisions[m].onCpu) {
          r.bypasses++;
          continue;
        }
        const o = cache.request(missKey[m] - l * E, missRequest[m]);
        if (o === OUTCOME_EVICT) evicted(l, cache.lastVictim);
        missCached[m] = o !== OUTCOME_BYPASS;
        if (!missCached[m]) r.bypasses++;
      }
      for (let m = 0; m < missKey.length; m++) {
        const n = missTokens[m];
        if (decisions[m].onCpu) {
          r.cpuExperts++;
          cpuPending++;
          const d = cpuExpertMs[n];
          cpuJobTokens[cpu.nextId] = n;
          cpuJobsToObserve.push(cpu.nextId);
          cpu.submit(now, d, 0);
        } else if (launches && missCached[m]) {
          submitCopy(missKey[m], PRIO_DEMAND, LOADED);
          joinLoaded(n);
        } else {
          submitCopy(missCached[m] ? missKey[m] : -1, PRIO_DEMAND, n);
        }
      }
      // The prefetches this routing decided (layer l + lookahead) are issued only now, in the runtime's order
      // (CudaBackend::moe_offloaded, cuda_offload_layer.cpp: the miss rule's backlog taken, the CPU jobs started,
      // the demand copies queued under the copy-stream lock, then issue_prefetch_orders, then issue_fills):
      // the rule's backlog does not hold them, and no piece of theirs reaches an idle copy engine ahead of
      // this layer's demand copies. The fills still follow them.
      issuePrefetchesAfter(l);
      if (cpuFill) for (let m = 0; m < missKey.length; m++) if (decisions[m].onCpu && missCached[m]) lastFill[l] = submitCopy(missKey[m], PRIO_DEMAND, 0, true);
      missKey.length = 0;
      missRequest.length = 0;
      missTokens.length = 0;
      missCached.length = 0;
    } else issuePrefetchesAfter(l); // no misses: the same point, with nothing of this layer's queued before them
    if (pendingExperts === 0) layerDone();
  };

  const startLayer = (l: number) => {
    layer = l;
    submitGpu(JOB_MOE_OTHER, costs.moeLayerOther(batchTokens));
  };

  const layerDone = () => {
    // the host goes on once the layer's CPU jobs are done (it waits for nothing else)
    layerHostDoneAt = layer + 1 < L ? Math.max(layerRoutedAt, layerCpuDoneAt) : -1;
    if (layer + 1 < L) startLayer(layer + 1);
    else submitGpu(JOB_HEAD, costs.head(batchTokens));
  };

  const startStep = () => {
    stepStart = now;
    batchTokens = schedule.tokenOffsets[step + 1] - schedule.tokenOffsets[step];
    const decode = schedule.tokenPos[schedule.tokenOffsets[step]] >= decodeFrom;
    stepMiss = decode ? miss : 'fetch';
    residentNow = residentAllowed && decode && batchTokens <= RESIDENT_STEP_MAX_ROWS && everyExpertCached();
    r.stepResident[step] = residentNow ? 1 : 0;
    issuePrefetchesAfter(-1);
    if (denseLayers > 0) submitGpu(JOB_DENSE, denseLayers * costs.denseLayer(batchTokens));
    else startLayer(0);
  };

  /** The in-line predictor's work after layer l's routing (predicted only): one prediction per row for layer l + k. */
  const predictorMs = input.predictorMs ?? 0;
  const predictingMs = (l: number) => (predictorMs > 0 && prefetch?.name === 'predicted' && l + prefetch.lookahead < L ? predictorMs * batchTokens : 0);

  /** Host work after the head: the step's, plus in a resident step the controller's per-layer work it deferred. */
  const stepHostMs = () =>
    costs.hostStep(batchTokens) + (residentNow ? L * costs.hostLayer(batchTokens) : 0) + (!residentNow && stepMiss !== 'fetch' ? costs.cpuPathStep(batchTokens) : 0);

  /** One part of the layer's CPU join is done; with the last, its scatter goes on the GPU stream. */
  const joinPartDone = () => {
    if (--joinParts === 0) submitLayerGpu(JOB_CPU_JOIN, 0, 1);
  };

  const expertDone = (experts = 1) => {
    pendingExperts -= experts;
    if (pendingExperts === 0) layerDone();
  };

  if (S > 0) startStep();
  while (q.pop()) {
    now = q.t;
    const id = q.a;
    if (q.k === EV_GPU) {
      gpu.finished(now);
      const job = gpuJob[id];
      if (job === JOB_EXPERT || job === JOB_CPU_JOIN) expertDone(gpuJobExperts[id]);
      else if (job === JOB_MOE_OTHER) {
        // The routing's trip to the host: the runtime's own host work (host.layerMs) plus what its eager,
        // once-per-layer synchronised launching costs beyond the GPU work (gpu.eagerLayerOverheadMs), one
        // wait of the GPU's critical path before the layer's copies and expert launches are issued.
        // A resident step keeps its routing on the GPU: none of that (only its measured excess, if profiled).
        // A layer whose misses the rule decides also brings its MoE input to the host and decides (host.cpuPathLayerMs).
        // The routing's copies and the combine (gpu.layerGlueMs) are GPU work of every such layer; charged here,
        // on the same serial GPU lane, in one job with the host work (so no other GPU work slips between them),
        // and booked as GPU busy time.
        const glue = residentNow ? 0 : costs.layerGlue(batchTokens);
        const h = residentNow
          ? costs.residentLayerOverhead(batchTokens)
          : costs.hostLayer(batchTokens) + costs.eagerLayerOverhead(batchTokens) + glue + predictingMs(layer) + (stepMiss !== 'fetch' ? costs.cpuPathLayer(batchTokens) : 0);
        if (h > 0) submitGpu(JOB_HOST_LAYER, h, 0, glue);
        else routed(layer);
      } else if (job === JOB_HOST_LAYER) routed(layer);
      else if (job === JOB_DENSE) startLayer(0);
      else if (job === JOB_HEAD && stepHostMs() > 0) submitGpu(JOB_HOST_STEP, stepHostMs());
      else {
        r.stepMs[step] = now - stepStart;
        r.stepTokens[step] = batchTokens;
        r.tokens += batchTokens;
        if (++step < S) startStep();
      }
    } else if (q.k === EV_COPY) {
      copy.finished(now);
      copyLanded[id] = 1;
      if (id === gateCopy) {
        gateCopy = -1;
        for (let g = 0; g < gated.length; g += 3) submitLayerGpu(gated[g], gated[g + 1], gated[g + 2]);
        gated.length = 0;
      }
      const key = copyKey[id];
      if (key >= 0 && inflight[key] === id) {
        residency[key] = READY;
        inflight[key] = -1;
      }
      const n = copyWaiter[id];
      if (n > 0) submitLayerGpu(JOB_EXPERT, aloneMs[n], 1);
      else if (n === LOADED) loadedLanded();
      else if (n === UPLOAD) joinPartDone();
    } else if (q.k === EV_JOIN) {
      hostJoin.finished(now);
      joinPartDone();
    } else {
      cpuRunningTokens -= cpuJobTokens[id];
      layerCpuDoneAt = Math.max(layerCpuDoneAt, now);
      cpu.finished(now);
      // The host waits for all of the layer's CPU jobs, then uploads their outputs (one host-to-device copy,
      // cuda_cpu_experts.cpp join_cpu_experts) and scatters them on the GPU stream. The upload shares the
      // one host-to-device copy engine (transfer.copyEngines), so it lands after the copies queued before it
      // (this layer's demand copies and the background fills of its CPU experts): a FIFO demand copy.
      // Beside it, the host's launches from the join on (gpu.cpuJoinLayerOverheadMs): the scatter, and what
      // follows it on the GPU stream, start once both are done (and the GPU work queued before them).
      if (--cpuPending === 0) {
        const launchMs = costs.cpuJoinLayerOverhead(batchTokens);
        joinParts = (joinMs > 0 ? 1 : 0) + (launchMs > 0 ? 1 : 0);
        if (joinMs > 0) {
          const id = copy.submit(now, joinMs, PRIO_DEMAND);
          copyKey[id] = UPLOAD_KEY;
          copyWaiter[id] = UPLOAD;
        }
        if (launchMs > 0) hostJoin.submit(now, launchMs, 0);
        if (joinParts === 0) expertDone();
      } else expertDone();
    }
  }
  if (step !== S) throw new Error(`internal: simulation stopped at step ${step} of ${S}`);
  observeCpuJobs();
  r.cpuFactor = correction.factor;
  r.totalMs = now;
  r.busyMs.copy = copy.busyTime;
  r.busyMs.cpu = cpu.busyTime;
  r.events = q.pushed;
  return r;
}
