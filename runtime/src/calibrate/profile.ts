/**
 * Builds the calibration profile (sim/src/cost/calibration.ts's CostModel) from the measurements: every
 * number with a `sources` entry saying how it was measured, on which device; with --cpu-only the GPU
 * figures come from a base profile and their sources say so.
 */
import type { CostModel, TokenCurve } from '../../../sim/src/cost/calibration.js';
import { CALIBRATION_SCHEMA, CALIBRATION_VERSION } from '../../../sim/src/cost/calibration.js';
import type { CpuResult } from './measure-cpu.js';
import type { GpuResult } from './measure-gpu.js';
import type { CpuUnderCopyResult } from './measure-cpu-under-copy.js';
import type { CalibratePlan } from './plan.js';
import type { RawPart } from './raw.js';
import { launchSource, launchTable } from './measure-launch.js';
import { setLayerStepTerms, type LayerStepShape } from './layer-step-terms.js';

export interface ProfileInput {
  name: string;
  modelLabel: string;
  expertBytes: number;
  expertBytesSource: string;
  plan: CalibratePlan;
  cpu: CpuResult;
  /** device cuda */
  gpu?: GpuResult;
  /** device cuda, an addon with copyLoad: the CPU experts beside the copy load */
  cpuUnderCopy?: CpuUnderCopyResult | null;
  /** --cpu-only: the profile the GPU figures are taken from, and its file */
  base?: { model: CostModel; file: string };
  hostLabel: string;
  /** routed experts per layer and per token: the layer steps' routing (layer-step-terms.ts) */
  routing: LayerStepShape;
}

const round = (x: number) => Number(x.toPrecision(4));

function partCurve(parts: RawPart[], part: RawPart['part'], context: number): TokenCurve {
  return parts
    .filter((p) => p.part === part && p.context === context)
    .sort((a, b) => a.batch - b.batch)
    .map((p) => [p.batch, round(p.medianMs)] as [number, number]);
}

export function buildProfile(inp: ProfileInput): CostModel {
  const { plan, cpu, gpu, base } = inp;
  if (!gpu && !base) throw new Error('buildProfile: GPU figures need measurements or a base profile');
  const quick = plan.quick ? ' (--quick: few points and repeats)' : '';
  const sources: Record<string, string> = {};
  const cpuWhere = `measured by calibrate on ${inp.hostLabel}`;
  let device: string;
  let transfer: CostModel['transfer'];
  let gpuCurves: CostModel['gpu'];
  let activationCopyMs: number;
  if (gpu) {
    const where = `measured by calibrate on ${gpu.raw.device.name}`;
    const fit = gpu.copyFit;
    transfer = { h2dGBps: round(fit.gbps), perCopyMs: round(fit.perCopyMs), copyEngines: gpu.copyEngines };
    const pts = gpu.copyPoints.map((p) => `${p.copies} copies/${(p.bytes / inp.expertBytes).toFixed(0)} experts ${p.ms.toFixed(3)} ms`).join(', ');
    sources['transfer.h2dGBps'] = `${where}, pinned host-to-device cudaMemcpyAsync of 1, 4, 16 experts as one copy and as back-to-back copies, CUDA events, median of ${plan.repeats}; least-squares fit ms = copies x overhead + bytes / bandwidth (${pts}; rms residual ${fit.rmsMs.toFixed(4)} ms)${quick}`;
    sources['transfer.perCopyMs'] = `${where}, the same fit's per-copy overhead (clamped at 0)`;
    sources['transfer.copyEngines'] = `${where}, 16 expert copies alternating over two streams vs one stream: ${gpu.twoStreamSpeedup.toFixed(2)}x (2 engines only at >= 1.5x)`;
    const byTokens = new Map<number, { decode?: number; grouped?: number }>();
    for (const e of gpu.raw.experts) byTokens.set(e.tokens, { ...byTokens.get(e.tokens), [e.kernel]: e.medianMs });
    const expertMs: TokenCurve = [...byTokens.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([t, k]) => [t, round(t <= plan.gemvMaxRows && k.decode !== undefined ? k.decode : k.grouped!)]);
    const hasDense = gpu.raw.parts.some((p) => p.part === 'dense');
    const ref = plan.referenceContext;
    gpuCurves = {
      expertMs,
      moeLayerOtherMs: partCurve(gpu.raw.parts, 'moe', ref),
      denseLayerMs: hasDense ? partCurve(gpu.raw.parts, 'dense', ref) : [[1, 0]],
      headMs: partCurve(gpu.raw.parts, 'head', ref),
    };
    if (gpu.raw.launches?.length) {
      gpuCurves.launch = launchTable(gpu.raw.launches, plan);
      sources['gpu.launch'] = launchSource(where, 'expert_ffn_decode_entries', gpu.raw.launches, plan);
    }
    if (plan.contexts.length > 1) {
      gpuCurves.byContext = {
        referenceContext: ref,
        moeLayerOtherMs: plan.contexts.map((c) => [c, partCurve(gpu.raw.parts, 'moe', c)] as [number, TokenCurve]),
        denseLayerMs: hasDense ? plan.contexts.map((c) => [c, partCurve(gpu.raw.parts, 'dense', c)] as [number, TokenCurve]) : undefined,
      };
      sources['gpu.byContext'] = `${where}, the same non-expert measurements at contexts ${plan.contexts.join(', ')} (the main curves are the ones at ${ref})`;
    }
    if (gpu.raw.layerSteps?.length) setLayerStepTerms(gpuCurves, sources, 'gpu', where, plan, gpu.raw.layerSteps, gpuCurves.launch, gpuCurves, inp.routing);
    const fellBack = gpu.raw.parts.filter((p) => p.graphError !== undefined);
    const graphNote =
      `CUDA graph replay up to ${plan.graphMaxRows} rows, eager launches above (as the CUDA backend does)` +
      (fellBack.length > 0 ? `; graph capture failed for ${fellBack.map((p) => `${p.part}@${p.batch}/ctx ${p.context}`).join(', ')}, timed eagerly there (errors in the raw file)` : '');
    sources['gpu.expertMs'] = `${where}, one routed expert with n tokens through the project's kernels: expert_ffn_decode up to ${plan.gemvMaxRows} tokens, expert_ffn_grouped above (the backend's choice), eager launches cycling ${plan.gpuExpertPool} experts (cold in L2), CUDA events, median of ${plan.repeats}${quick}`;
    const common = `random bf16 data of the real shapes, decode rows at context ${ref}, ${plan.layerCopies} layer copies cycled, ${graphNote}, CUDA events, median of ${plan.repeats}${quick}`;
    sources['gpu.moeLayerOtherMs'] = `${where}, one MoE layer's non-expert part from the kernel API (rmsnorm, fused q/kv_a GEMM, YaRN RoPE, MLA cache append, absorbed decode attention on the compact cache, o_proj, rmsnorm, router GEMM + top-k, shared-expert MLP), ${common}`;
    sources['gpu.denseLayerMs'] = hasDense
      ? `${where}, layer 0 (the same attention + dense MLP), ${common}`
      : 'computed: the model has no dense layer';
    sources['gpu.headMs'] = `${where}, final rmsnorm + lm_head (fp32 logits) + greedy sample_tokens, ${graphNote}, CUDA events, median of ${plan.repeats}${quick}`;
    const act = gpu.raw.activation.find((a) => a.tokens === 1) ?? gpu.raw.activation[0];
    activationCopyMs = round(act.medianMs);
    sources['cpu.activationCopyMs'] = `${where}, ${act.tokens} token's activations device to pinned host (bf16) and back (fp32), each followed by a stream synchronisation, host wall clock, median of ${plan.repeats}`;
    device = `${gpu.raw.device.name} (${gpu.raw.device.totalGiB.toFixed(0)} GiB, CUDA ${gpu.raw.device.runtimeVersion}), host CPU: ${cpu.raw.info.features}, ${cpu.raw.info.hardwareThreads} threads`;
  } else {
    const b = base!;
    transfer = { ...b.model.transfer };
    gpuCurves = structuredClone(b.model.gpu);
    activationCopyMs = b.model.cpu.activationCopyMs;
    for (const k of ['transfer.h2dGBps', 'transfer.perCopyMs', 'transfer.copyEngines', 'gpu.expertMs', 'gpu.moeLayerOtherMs', 'gpu.denseLayerMs', 'gpu.headMs', 'cpu.activationCopyMs']) {
      sources[k] = `not measured (--cpu-only): taken from ${b.file} (${b.model.name}); there: ${b.model.sources?.[k] ?? 'no source given'}`;
    }
    for (const k of ['eagerLayerOverheadMs', 'launch', 'layerGlueMs', 'cpuJoinLayerOverheadMs'] as const) {
      if (b.model.gpu[k]) sources[`gpu.${k}`] = `not measured (--cpu-only): taken from ${b.file} (${b.model.name}); there: ${b.model.sources?.[`gpu.${k}`] ?? 'no source given'}`;
    }
    device = `GPU figures of ${b.model.device} (from ${b.file}); CPU measured on ${inp.hostLabel}`;
  }
  sources.expertBytes = inp.expertBytesSource;
  sources['cpu.expertMs'] = `${cpuWhere}, one routed expert through the CPU expert path (moe::mlp_forward, kernel ${cpu.raw.isa}) on ${cpu.threadsPerWorker} thread(s) while ${cpu.workers} expert(s) run at once, cycling ${cpu.raw.poolExperts} random bf16 experts (cold), wall clock, median of ${plan.repeats}${quick}`;
  const cands = cpu.candidates.map((c) => `${c.workers}x${c.threads} threads ${c.msPerExpert.toFixed(3)} ms`).join(', ');
  sources['cpu.workers'] = `${cpuWhere}, chosen by measurement: the configuration (experts at once x threads each) finishing one token's top-k experts soonest at ${plan.cpuTokens[0]} token (${cands})`;

  const under = inp.cpuUnderCopy;
  if (under) {
    const pts = under.raw.map((r) => `${r.tokens}: ${r.alone.medianMs.toFixed(3)} -> ${r.underCopy.medianMs.toFixed(3)} ms`).join(', ');
    sources['cpu.expertMsUnderCopy'] = `${cpuWhere}, as cpu.expertMs at ${cpu.workers} x ${cpu.threadsPerWorker} threads while a thread keeps host-to-device expert copies back to back (CudaCalibrator copy_load), each point beside the same experts alone (tokens: alone -> under copy, ${pts}), median of ${plan.repeats}${quick}`;
    if (under.copySlowdown && under.copyMsAlone !== null) {
      const cp = under.raw.filter((r) => r.copyMsBesideCpu !== undefined).map((r) => `${r.tokens}: ${r.copyMsBesideCpu!.toFixed(3)}`).join(', ');
      sources['transfer.copySlowdownUnderCpu'] = `${cpuWhere}: the same copy load's wall time per expert (8 copies a round, one synchronisation) while those CPU experts ran (by their tokens: ${cp} ms) over the load alone with the CPU idle (${under.copyMsAlone.toFixed(3)} ms)${quick}`;
    }
  }
  if (under?.copySlowdown) transfer = { ...transfer, copySlowdownUnderCpu: under.copySlowdown };
  const measuredAll = !!gpu;
  return {
    schema: CALIBRATION_SCHEMA,
    version: CALIBRATION_VERSION,
    name: inp.name,
    label: measuredAll
      ? `measured by calibrate on ${gpu!.raw.device.name}${plan.quick ? ' (--quick)' : ''}`
      : `CPU figures measured by calibrate on ${inp.hostLabel}${plan.quick ? ' (--quick)' : ''}; GPU figures from ${base!.model.name}`,
    measured: measuredAll,
    device,
    model: inp.modelLabel,
    expertBytes: inp.expertBytes,
    transfer,
    gpu: gpuCurves,
    cpu: { workers: cpu.workers, expertMs: cpu.expertMs, activationCopyMs, ...(under ? { expertMsUnderCopy: under.underCopy } : {}) },
    sources,
  };
}
