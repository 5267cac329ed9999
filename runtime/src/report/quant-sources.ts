/**
 * The committed results of the quantized-experts and GPU-prefetch runs (issue 13, issue 12's prefetch) and
 * of the peers comparison, read for REPORT.md: each file is optional, and a reader returns null (or an
 * empty list) when it is absent, so the section says so instead of inventing a number.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ExpertErrorDistribution } from '../bench/expert-fidelity.js';
import type { Int4FitResult } from '../bench/int4-fit-report.js';
import type { QuantCheckCase } from '../bench/quant-check.js';
import type { CpuMissCheckCase } from '../bench/cpu-miss-check.js';
import type { PredictorGpuResult } from '../bench/predictor-gpu-report.js';
import type { TransferResult } from '../validate/routing-transfer.js';
import { json } from './read-json.js';
import type { Stat } from './sources.js';


/** One offloaded bench point with the dimensions issue 13 and issue 12 added (dtype, miss, prefetch). */
export interface OffloadPoint {
  file: string;
  dtype: string;
  expertBytes: number;
  cache: number;
  policy: string;
  miss: string;
  prefetch: string;
  batch: number;
  prompt: number;
  newTokens: number;
  ms: Stat;
  tokS: number;
  prefillMs: number;
  hitRate: number;
  /** the bench's own simulated ms/token (the profile the bench ran with) */
  simMs: number | null;
  /** routed experts missed per cache step (prefill positions count as steps), as sources.ts computes it */
  missesPerStep: number;
  gbMoved: number;
  routing: string;
  prefetchStats: { precision: number; recall: number; wastedBytes: number; lateHits: number; promoted: number; inferMsPerTokenLayer?: number | null; inferInline?: boolean } | null;
}

interface RawPoint {
  batch: number;
  prompt: number;
  newTokens: number;
  repeats: number;
  msPerToken: Stat;
  prefillMs: Stat;
  decodeTokensPerSecond: number;
  expertDtype?: string;
  expertBytes?: number;
  cache: number;
  policy?: string;
  miss?: string;
  prefetch?: string;
  hitRate: number;
  hits: number;
  requests: number;
  simMsPerToken?: number | null;
  bytesH2D: number;
  routing: string;
  prefetchStats: OffloadPoint['prefetchStats'];
  device?: { offload?: { expertBytes?: number } };
}

export interface OffloadBench {
  file: string;
  device: string;
  points: OffloadPoint[];
}

export function readOffloadBench(root: string, rel: string): OffloadBench | null {
  const b = json<{ engine: { device: string }; options: { warmup: number }; grid: RawPoint[] }>(root, rel);
  if (!b) return null;
  const points = b.grid.map((p) => ({
    file: rel,
    dtype: p.expertDtype ?? 'bf16',
    expertBytes: p.expertBytes ?? p.device?.offload?.expertBytes ?? NaN,
    cache: p.cache,
    policy: p.policy ?? 'lru',
    miss: p.miss ?? 'fetch',
    prefetch: p.prefetch ?? 'none',
    batch: p.batch,
    prompt: p.prompt,
    newTokens: p.newTokens,
    ms: p.msPerToken,
    tokS: p.decodeTokensPerSecond,
    prefillMs: p.prefillMs.mean,
    hitRate: p.hitRate,
    simMs: p.simMsPerToken ?? null,
    missesPerStep: (p.requests - p.hits) / ((b.options.warmup + p.repeats) * (p.prompt + p.newTokens - 1)),
    gbMoved: p.bytesH2D / 1e9,
    routing: p.routing,
    prefetchStats: p.prefetchStats,
  }));
  return { file: rel, device: b.engine.device, points };
}

export interface KernelChecks {
  file: string;
  device: string;
  passed: number;
  total: number;
  /** the expert GEMV / grouped timings by dtype (cuda_kernels' benchmark rows that name a dtype) */
  timings: { name: string; shape: string; us: number }[];
}

export function readKernelChecks(root: string, rel: string): KernelChecks | null {
  const k = json<{ device: { name: string }; checks: { pass: boolean }[]; benchmarks: { name: string; shape: string; median_us: number }[] }>(root, rel);
  if (!k) return null;
  const dtyped = /^(expert_ffn_(decode|grouped)(_q)? (bf16|int8|int4\w*)|dequantize_expert_bf16 )/;
  return {
    file: rel,
    device: k.device.name,
    passed: k.checks.filter((c) => c.pass).length,
    total: k.checks.length,
    timings: k.benchmarks.filter((b) => dtyped.test(b.name)).map((b) => ({ name: b.name, shape: b.shape, us: b.median_us })),
  };
}

export interface CpuExpertBench {
  file: string;
  features: string;
  threads: number;
  /** per dtype and token count: the fastest kernel at the host's full thread count (hot weights) */
  rows: { dtype: string; tokens: number; kernel: string; ms: number }[];
}

export function readCpuExpertBench(root: string, rel: string): CpuExpertBench | null {
  const c = json<{ cpu_features: string; hardware_threads: number; results: { dtype: string; kernel: string; mode: string; tokens: number; threads: number; median_ms: number }[] }>(root, rel);
  if (!c) return null;
  const rows: CpuExpertBench['rows'] = [];
  for (const dtype of [...new Set(c.results.map((r) => r.dtype))])
    for (const tokens of [...new Set(c.results.map((r) => r.tokens))].sort((a, b) => a - b)) {
      const hot = c.results.filter((r) => r.dtype === dtype && r.tokens === tokens && r.mode === 'hot' && r.threads === c.hardware_threads).sort((a, b) => a.median_ms - b.median_ms);
      if (hot.length) rows.push({ dtype, tokens, kernel: hot[0].kernel, ms: hot[0].median_ms });
    }
  return { file: rel, features: c.cpu_features, threads: c.hardware_threads, rows };
}

export interface QuantCalibration {
  file: string;
  label: string;
  h2dGBps: number;
  /** per dtype: one expert's bytes, one GPU expert at 1 token, one CPU expert at 1 token (ms) */
  perDtype: { dtype: string; expertBytes: number; gpuMs1: number; cpuMs1: number }[];
  hasLaunchTable: boolean;
}

type Cal = { label: string; expertBytes: number; transfer: { h2dGBps: number }; gpu: { expertMs: [number, number][]; launch?: unknown }; cpu: { expertMs: [number, number][] }; byExpertDtype?: Record<string, { expertBytes: number; gpu: { expertMs: [number, number][] }; cpu: { expertMs: [number, number][] } }> };

export function readQuantCalibration(root: string, rel: string): QuantCalibration | null {
  const c = json<Cal>(root, rel);
  if (!c) return null;
  const perDtype = [{ dtype: 'bf16', expertBytes: c.expertBytes, gpuMs1: c.gpu.expertMs[0][1], cpuMs1: c.cpu.expertMs[0][1] }];
  for (const [dtype, d] of Object.entries(c.byExpertDtype ?? {})) perDtype.push({ dtype, expertBytes: d.expertBytes, gpuMs1: d.gpu.expertMs[0][1], cpuMs1: d.cpu.expertMs[0][1] });
  return { file: rel, label: c.label, h2dGBps: c.transfer.h2dGBps, perDtype, hasLaunchTable: c.gpu.launch !== undefined };
}

export interface QuantCheckLog {
  file: string;
  lines: { dtype: string; phase: string; top1Confident: string; positions: number; top1Overall: string; relErrP50: string; pass: boolean }[];
  /** the log ends in an error instead of the per-expert part (the run crashed after the logits) */
  crashed: string | null;
}

/** `bench --check-quant`'s log lines: "quant check: int8 decode: top-1 X% where the bf16 gap >= 0.1 (N positions), Y% overall, logits rel. error p50 Z: pass". */
export function readQuantCheckLog(root: string, rel: string): QuantCheckLog | null {
  const f = join(root, rel);
  if (!existsSync(f)) return null;
  const text = readFileSync(f, 'utf8');
  const re = /quant check: (\w+) (prefill|decode): top-1 ([\d.]+%) where the bf16 gap >= [\d.]+ \((\d+) positions\), ([\d.]+%) overall, logits rel\. error p50 ([\d.e+-]+): (pass|FAIL)/g;
  const lines = [...text.matchAll(re)].map((m) => ({ dtype: m[1], phase: m[2], top1Confident: m[3], positions: Number(m[4]), top1Overall: m[5], relErrP50: m[6], pass: m[7] === 'pass' }));
  const err = text.split('\n').find((l) => /internal error|Error:/.test(l));
  return { file: rel, lines, crashed: err ? err.trim() : null };
}

export interface TokensCheck {
  file: string;
  cases: { label: string; prefetch: string; identical: boolean }[];
  allIdentical: boolean;
}

export function readTokensCheck(root: string, rel: string): TokensCheck | null {
  const c = json<{ offloadCheck?: { allIdentical: boolean; cases: { label: string; prefetch?: string; identical: boolean }[] } }>(root, rel);
  if (!c?.offloadCheck) return null;
  return { file: rel, cases: c.offloadCheck.cases.map((x) => ({ label: x.label, prefetch: x.prefetch ?? 'none', identical: x.identical })), allIdentical: c.offloadCheck.allIdentical };
}

/** A results folder that another step renders: its files (sorted, recursively), or null when absent. */
export function listDir(root: string, rel: string): string[] | null {
  const d = join(root, rel);
  if (!existsSync(d)) return null;
  const out: string[] = [];
  const walk = (r: string) => {
    for (const n of readdirSync(join(root, r)).sort()) {
      const p = `${r}/${n}`;
      if (statSync(join(root, p)).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(rel);
  return out;
}

/** What tools/peers/report.mjs keeps of the best row of each side, for the report's sentence on that row. */
export interface PeersOursFacts {
  cache: number | null;
  miss: string | null;
  hitRate: number | null;
  cpuExpertsPerToken: number | null;
  msPerToken: number | null;
  peakGiB: number | null;
  allOnGpu: boolean;
}
export interface PeersLlamaFacts {
  nCpuMoe: number;
  nLayer: number;
  peakGiB: number | null;
  allOnGpu: boolean;
}
export interface PeersRatio {
  /** both sides with every expert on the GPU, whatever the memory (else: both within the budget) */
  ceiling: boolean;
  dtype: string;
  llamaDtype: string;
  test: string;
  ours: string;
  llama: string;
  oursTps: number;
  llamaTps: number;
  ratio: number;
  /** the same (own) routing on both sides; false: moe-offload on replayed ESFT routing, context only */
  fair: boolean;
  oursFacts: PeersOursFacts;
  llamaFacts: PeersLlamaFacts;
}
export interface PeersReport {
  file: string;
  device: string;
  commit: string;
  partial: boolean;
  notes: string[];
  /** rows where both sides were measured */
  ratios: PeersRatio[];
}

export function readPeers(root: string, rel: string): PeersReport | null {
  const p = json<{ device: string; llama_cpp: { llama_cpp_commit: string }; partial: boolean; notes?: string[]; ratios: Array<Partial<PeersRatio> & { ratio: number | null }> }>(root, rel);
  if (!p) return null;
  // Files rendered before the facts existed (the earlier partial run) lack them: such rows get no sentence.
  const ratios = p.ratios.filter((r) => r.ratio !== null && r.oursTps != null && r.llamaTps != null && r.oursFacts && r.llamaFacts) as PeersRatio[];
  return { file: rel, device: p.device, commit: p.llama_cpp.llama_cpp_commit, partial: p.partial, notes: p.notes ?? [], ratios };
}

/** The second oracle (`moe peer-agreement` against llama.cpp's logits, reports/bench/peers-h200/device/). */
export interface PeerAgreement {
  file: string;
  reference: string;
  sequences: number;
  length: number;
  pass: boolean;
  marginMin: number;
  paths: { path: string; positions: number; top1Agreement: number; top1AgreementSeparated: number; separatedPositions: number; relErrorP50: number; relErrorMax: number; pass: boolean }[];
}

export function readPeerAgreement(root: string, rel: string): PeerAgreement | null {
  const a = json<{ reference: string; sequences: number; length: number; pass: boolean; tolerance: { marginMin: number }; paths: Array<{ path: string; positions: number; top1Agreement: number; top1AgreementSeparated: number; separatedPositions: number; logitsRelError: { p50: number; max: number }; pass: boolean }> }>(root, rel);
  if (!a) return null;
  return {
    file: rel, reference: a.reference, sequences: a.sequences, length: a.length, pass: a.pass, marginMin: a.tolerance.marginMin,
    paths: a.paths.map((p) => ({ path: p.path, positions: p.positions, top1Agreement: p.top1Agreement, top1AgreementSeparated: p.top1AgreementSeparated, separatedPositions: p.separatedPositions, relErrorP50: p.logitsRelError.p50, relErrorMax: p.logitsRelError.max, pass: p.pass })),
  };
}

export interface QuantSources {
  mustShow: OffloadBench | null;
  grid: OffloadBench | null;
  nextGate: OffloadBench | null;
  kernels: KernelChecks | null;
  cpu: CpuExpertBench | null;
  calibration: QuantCalibration | null;
  calibrationLaunch: QuantCalibration | null;
  check: QuantCheckLog | null;
  prefetchTokens: TokensCheck | null;
  /** issue 12, the predictor run in-line: misses fetched / hybrid x none / predicted / oracle, the gated predictor, tokens under replay */
  predicted: OffloadBench | null;
  predictedGated: OffloadBench | null;
  prefetchReplayTokens: TokensCheck | null;
  /** issue 12, where the predictor runs: its MLP timed on the CPU and on the GPU (predictor_gpu_bench) */
  predictorGpu: { file: string; doc: PredictorGpuResult } | null;
  fidelityCpu: FidelityRow[] | null;
  /** the teacher-forced `bench --check-quant` of the latest device run (with int4's scale search) */
  teacherForced: { file: string; device: string; cases: QuantCheckCase[] } | null;
  /** `bench --check-miss --cpu-rounding gpu-order` on the device: per miss mode, fill and batch, tokens identical or not */
  gpuOrderCheck: { file: string; device: string; cases: CpuMissCheckCase[] } | null;
  /** int4's two quantizers side by side (int4_fit_bench), one result per group size */
  int4Fit: { files: string[]; docs: Int4FitResult[] } | null;
  /** routing not seen, simulated: each ESFT task held out, static pinned from the task itself and from the others */
  routingTransfer: { dir: string; own: TransferResult; others: TransferResult } | null;
  peers: string[] | null;
  peersReport: PeersReport | null;
  peerAgreement: PeerAgreement | null;
}

export const QUANT_DIR = 'reports/bench/quant-h200';
/** predicted prefetch with the predictor run inside the runtime (2026-12-04) */
export const PREDICTED_DIR = 'reports/bench/prefetch-h200-2026-12-04';
/** the in-line predictor's MLP on the CPU and on the GPU (2026-12-04, the GPU kernel's first version) */
export const PREDICTOR_GPU_FILE = 'reports/bench/predictor-gpu-h200-2026-12-04/predictor-gpu-first-kernel.json';
/** routing-transfer.ts's two runs (2026-12-05) */
export const ROUTING_TRANSFER_DIR = 'reports/sim/routing-transfer-2026-12-05';
/** the device run of 2026-12-07 (an H100): the teacher-forced quantized check with int4's search */
export const H100_RUN_DIR = 'reports/bench/h100-2026-12-07';
/** the H100 re-run of the same day: gpu-order's end-to-end check after the 32-row cap (h100-run-section.ts has its grids) */
export const H100_RERUN_DIR = 'reports/bench/h100-2026-12-07b';
/** the H100 run of the evening: calibrate on a quiet host and every bench with it (h100-run-section.ts) */
export const H100_RUN_07C_DIR = 'reports/bench/h100-2026-12-07c';

/** The GPU's name from a session-run.sh folder's logs/gpu.txt (nvidia-smi's csv: a header, then "name, memory, driver"). */
function gpuName(root: string, dir: string): string {
  const file = join(root, dir, 'logs', 'gpu.txt');
  if (!existsSync(file)) return 'the GPU machine (logs/gpu.txt absent)';
  return readFileSync(file, 'utf8').split('\n')[1]?.split(',')[0]?.trim() || 'the GPU machine';
}

function readTeacherForced(root: string, dir: string): QuantSources['teacherForced'] {
  const file = `${dir}/quant-check/bench.json`;
  const cases = json<{ quantCheck?: { cases?: QuantCheckCase[] } }>(root, file)?.quantCheck?.cases;
  return cases?.length ? { file, device: gpuName(root, dir), cases } : null;
}

function readGpuOrderCheck(root: string, dir: string): QuantSources['gpuOrderCheck'] {
  const file = `${dir}/check-miss-gpu-order/bench.json`;
  const cases = json<{ cpuMissCheck?: { cases?: CpuMissCheckCase[] } }>(root, file)?.cpuMissCheck?.cases;
  return cases?.length ? { file, device: gpuName(root, dir), cases } : null;
}

/** int4_fit_bench at groups 64, 32 and 128 (2026-12-05, the CPU machine) */
export const INT4_FIT_FILES = [64, 32, 128].map((g) => `reports/bench/int4-fit-cpu-2026-12-05/int4-fit-g${g}.json`);
const withFile = <T>(file: string, doc: T | null) => (doc ? { file, doc } : null);

/** One dtype's per-expert output error distribution from a `bench --check-quant` document (quantCheck.expertErrors). */
export interface FidelityRow extends ExpertErrorDistribution {
  file: string;
  dtype: string;
  group: number;
}

/** The distributions of every bench.json under `rel` (the CPU fidelity runs), in file order. */
function readFidelity(root: string, rel: string): FidelityRow[] | null {
  const files = listDir(root, rel)?.filter((f) => f.endsWith('/bench.json'));
  if (!files?.length) return null;
  const rows: FidelityRow[] = [];
  for (const file of files) {
    const doc = JSON.parse(readFileSync(join(root, file), 'utf8')) as { quantCheck?: { expertErrors?: Array<{ dtype: string; group: number; distribution: ExpertErrorDistribution | null }> } };
    for (const e of doc.quantCheck?.expertErrors ?? []) if (e.distribution) rows.push({ file, dtype: e.dtype, group: e.group, ...e.distribution });
  }
  return rows;
}

function readInt4Fit(root: string): { files: string[]; docs: Int4FitResult[] } | null {
  const docs = INT4_FIT_FILES.map((f) => json<Int4FitResult>(root, f));
  return docs.every((d) => d !== null) ? { files: INT4_FIT_FILES, docs: docs as Int4FitResult[] } : null;
}

function readRoutingTransfer(root: string): QuantSources['routingTransfer'] {
  const own = json<TransferResult>(root, `${ROUTING_TRANSFER_DIR}/static-pins-own/routing-transfer.json`);
  const others = json<TransferResult>(root, `${ROUTING_TRANSFER_DIR}/static-pins-others/routing-transfer.json`);
  return own && others ? { dir: ROUTING_TRANSFER_DIR, own, others } : null;
}

export function readQuantSources(root: string): QuantSources {
  return {
    mustShow: readOffloadBench(root, `${QUANT_DIR}/must-show/bench.json`),
    grid: readOffloadBench(root, `${QUANT_DIR}/grid/bench.json`),
    nextGate: readOffloadBench(root, 'reports/bench/prefetch-h200/next-gate-own-routing/bench.json'),
    kernels: readKernelChecks(root, `${QUANT_DIR}/cuda_kernels.json`),
    cpu: readCpuExpertBench(root, `${QUANT_DIR}/expert-cpu-quant.json`),
    calibration: readQuantCalibration(root, `${QUANT_DIR}/calibration-quant.json`),
    calibrationLaunch: readQuantCalibration(root, `${QUANT_DIR}/calibration-quant-launch.json`),
    check: readQuantCheckLog(root, `${QUANT_DIR}/quant-check-partial.log`),
    prefetchTokens: readTokensCheck(root, 'reports/bench/prefetch-h200/check-offload-prefetch.json'),
    predicted: readOffloadBench(root, `${PREDICTED_DIR}/predicted/bench.json`),
    predictedGated: readOffloadBench(root, `${PREDICTED_DIR}/predicted-gated/bench.json`),
    prefetchReplayTokens: readTokensCheck(root, `${PREDICTED_DIR}/check-replay/bench.json`),
    predictorGpu: withFile(PREDICTOR_GPU_FILE, json<PredictorGpuResult>(root, PREDICTOR_GPU_FILE)),
    fidelityCpu: readFidelity(root, `${QUANT_DIR}/fidelity-cpu`),
    int4Fit: readInt4Fit(root),
    teacherForced: readTeacherForced(root, `${H100_RUN_DIR}/call1`),
    gpuOrderCheck: readGpuOrderCheck(root, `${H100_RERUN_DIR}/call1`),
    routingTransfer: readRoutingTransfer(root),
    peers: listDir(root, 'reports/bench/peers-h200'),
    peersReport: readPeers(root, 'reports/bench/peers-h200/peers.json'),
    peerAgreement: readPeerAgreement(root, 'reports/bench/peers-h200/device/peer-agreement.json'),
  };
}
