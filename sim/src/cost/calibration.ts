/**
 * The cost model's data: a versioned calibration profile (JSON, schema in sim/README.md). The default
 * profile is derived from the figures in the shared model docs and says so in its label; measured profiles
 * (the runtime's `calibrate` command) use the same schema with "measured": true.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadInputError } from '../../../core/src/errors.js';

export const CALIBRATION_SCHEMA = 'moe-offload.calibration';
export const CALIBRATION_VERSION = 1;
export const DEFAULT_PROFILE_FILE = 'h200-measured.json';

/** Piecewise-linear table of (tokens, ms) points, tokens ascending; linear extrapolation past the ends. */
export type TokenCurve = Array<[number, number]>;

export interface CostModel {
  schema: typeof CALIBRATION_SCHEMA;
  version: number;
  name: string;
  /** Shown in every output that used this profile. */
  label: string;
  measured: boolean;
  device: string;
  model: string;
  /** Bytes of one routed expert's weights. */
  expertBytes: number;
  transfer: {
    h2dGBps: number;
    perCopyMs: number;
    copyEngines: number;
    /**
     * Optional: how much longer an expert copy takes while the CPU workers compute experts (both read host
     * DRAM), as a factor (1: no slowdown) by the CPU jobs' tokens: calibrate's copy loop beside CPU experts
     * at the chosen worker shape, over the same loop alone. The timing model scales a copy that starts while
     * a CPU job runs by it (at the running jobs' mean tokens).
     */
    copySlowdownUnderCpu?: TokenCurve;
  };
  gpu: {
    expertMs: TokenCurve;
    moeLayerOtherMs: TokenCurve;
    denseLayerMs: TokenCurve;
    headMs: TokenCurve;
    /** Optional: the non-expert curves at several context lengths (measured profiles). */
    byContext?: ContextCurves;
    /** Optional: launches of several experts at once, as the runtime computes a layer's experts (LaunchTable). */
    launch?: LaunchTable;
    /**
     * Optional: per MoE layer, by the step's rows, what running the layer the way the offloaded runtime does
     * costs beyond its GPU work: eager launches (no CUDA graph) and one host synchronisation on the routing,
     * which drains the GPU's queue every layer. Calibrate measures it as an offloaded-style layer step
     * (attention, router, routing to the host and a stream synchronisation, the upload, shared experts, one
     * resident expert launch, the combine) timed by the host's clock eagerly, minus the same sequence
     * replayed as a CUDA graph, that graph's expert launch taken to the eager run's routing (the graph replays
     * experts 0..k-1; runtime/src/calibrate/layer-step-terms.ts). The timing model puts it on the GPU's critical path once per MoE layer, after
     * the layer's non-expert part (the routing reaches the host that much later). Absent: 0 (older profiles).
     * The curve is held at its last point past its last row count (it is measured on the decode kernel's rows).
     */
    eagerLayerOverheadMs?: TokenCurve;
    /**
     * Optional: per MoE layer of a resident step (timing/engine.ts residentSteps: every expert cached, the
     * forward a CUDA graph), by the step's rows, what the runtime's resident forward takes beyond the GPU
     * curves above plus the host work: read from resident bench points (runtime/src/calibrate/host-from-bench.ts
     * --resident), never from the points it is then compared with. Held at its last point. Absent: 0.
     */
    residentLayerOverheadMs?: TokenCurve;
    /**
     * Optional: per MoE layer of a step that brings its routing to the host (not a resident step), by the
     * step's rows, the GPU work of that layer outside moeLayerOtherMs and the expert launch: the routing's
     * two device-to-host copies, the upload of the ids and weights the expert kernel reads, and the combine
     * of the k outputs. Read by calibrate from its layer step's graph replay minus those two parts
     * (runtime/src/calibrate/layer-step-terms.ts). Held at its last point. Absent: 0.
     */
    layerGlueMs?: TokenCurve;
    /**
     * Optional: per MoE layer with CPU experts, by the step's rows, what their join costs a layer whose GPU
     * work has drained by then: the host goes on only after the CPU jobs (CudaBackend::join_cpu_experts), so
     * the outputs' upload, the scatter, the combine and the next layer's launches up to its routing are issued
     * to an idle GPU and pay their launch latency, as the launches after the routing's synchronisation do
     * (eagerLayerOverheadMs). Calibrate measures it as its layer step eager with such a join minus the same
     * step eager without one (runtime/src/calibrate/layer-step-terms.ts). The timing model lets the layer's
     * GPU work after the join start no sooner than this long after the last CPU job ends; GPU work still
     * queued then hides it. Held at its last point. Absent: 0 (profiles before it).
     */
    cpuJoinLayerOverheadMs?: TokenCurve;
  };
  cpu: {
    workers: number;
    /** The per-expert estimate the miss rule uses (calibrate's isolated measurement; the runtime's rule gets it too). */
    expertMs: TokenCurve;
    /**
     * Per layer with CPU experts: the activations' round trip (down with the routing, the outputs back
     * before the combine). The rule adds it to each CPU estimate; the timing model charges it once per
     * layer, as one copy on the host-to-device copy engine after the last CPU job (the runtime uploads the
     * layer's outputs in one copy), beside gpu.cpuJoinLayerOverheadMs.
     */
    activationCopyMs: number;
    /**
     * Optional: what a CPU expert job takes inside the runtime (its logged wall time, with the copy engine
     * and the other worker running beside it), by tokens. The timing model's job durations when present;
     * the rule keeps expertMs, as the runtime does. `cpu-from-miss-log` measures it from the miss logs.
     */
    jobMs?: TokenCurve;
    /**
     * Optional: calibrate's per-expert time (at the chosen worker shape) while host-to-device copies run
     * back to back: both read host DRAM. Unless jobMs is given, the timing model times a CPU job that
     * starts while the copy engine is busy at this rate, and one that starts while it idles at expertMs.
     */
    expertMsUnderCopy?: TokenCurve;
  };
  /**
   * Optional: the offloading runtime's host work on the critical path, by the step's tokens (rows). layerMs:
   * per MoE layer, from the routing's arrival on the host to the GPU's next work queued (the cache step,
   * placement, miss decisions, the upload; the GPU idles meanwhile). stepMs: per step, outside the forward
   * (sampling, the Engine API round trip). Measured by `bench` in offload mode from the runtime's counters.
   * Optional cpuPathLayerMs / cpuPathStepMs: what a decode step whose misses the miss rule decides (`--miss cpu`,
   * `hybrid`) costs on top, per MoE layer / per step, with no expert put on the CPU: the MoE input's copy to the
   * host in the routing's synchronisation, the copy-backlog estimate, the decisions and their log
   * (cuda_offload_layer.cpp fetch_plan, cuda_cpu_experts.cpp). Read from bench pairs of such points against the
   * same points fetched (runtime/src/calibrate/host-from-bench.ts --cpu-path). Absent: 0.
   */
  host?: { layerMs: TokenCurve; stepMs: TokenCurve; cpuPathLayerMs?: TokenCurve; cpuPathStepMs?: TokenCurve };
  /** Where each number comes from (measured, computed or estimate). */
  sources?: Record<string, string>;
  /** Optional (issue 13): the expert's shape, so the bytes of a quantized format can be computed (sim/src/cost/expert-layout.ts). */
  expertShape?: { hidden: number; dff: number };
  /**
   * Optional (issue 13): figures measured with quantized experts (`calibrate --expert-dtype int8,int4`). The
   * top-level figures are bf16's; a dtype without an entry is scaled from them by bytes (expert-dtype.ts).
   */
  byExpertDtype?: Partial<Record<'int8' | 'int4', ExpertDtypeProfile>>;
}

/** One quantized format's figures: its blob size and the expert-time curves of the kernels that read it. */
export interface ExpertDtypeProfile {
  expertBytes: number;
  /** int4: inputs per group the figures were measured with */
  group?: number;
  /** eagerLayerOverheadMs, layerGlueMs: gpu's, measured with this dtype's decode kernel in the layer */
  gpu: { expertMs: TokenCurve; launch?: LaunchTable; eagerLayerOverheadMs?: TokenCurve; layerGlueMs?: TokenCurve };
  /** jobMs: this dtype's CPU jobs as the runtime logged them (cpu-from-miss-log); absent: bf16's cpu.jobMs scaled */
  cpu: { expertMs: TokenCurve; workers?: number; jobMs?: TokenCurve };
}

/**
 * The time of one launch of the routed-expert kernel over several experts (the runtime computes a layer's
 * resident experts in one launch, its freshly loaded ones in another, each staged one alone:
 * native/src/cuda_backend/cuda_offload_layer.cpp). Measured by calibrate: `experts` distinct cold experts
 * with `tokens` tokens each in one launch. Used for steps of at most `maxRows` rows (the kernel the
 * table was measured with); above, and for a profile without it, the per-expert curve gpu.expertMs.
 */
export interface LaunchTable {
  maxRows: number;
  /** [[experts, [[tokens per expert, ms], ...]], ...], experts ascending */
  ms: Array<[number, TokenCurve]>;
}

/**
 * The non-expert GPU curves at several context lengths (cached tokens each decode row attends to), for a
 * cost model that knows each step's context. The main curves (gpu.moeLayerOtherMs, gpu.denseLayerMs) are
 * the ones at referenceContext, so a consumer that ignores context gets that context's times.
 */
export interface ContextCurves {
  referenceContext: number;
  /** [[context, curve], ...], context ascending */
  moeLayerOtherMs: Array<[number, TokenCurve]>;
  denseLayerMs?: Array<[number, TokenCurve]>;
}

interface Range {
  min: number;
  max: number;
  integer?: boolean;
  unit?: string;
}

/**
 * What a profile may say. Wide enough for any machine this project could meet (PCIe 3 to NVLink-C2C,
 * tiny synthetic models to DeepSeek-V2's 40 MB experts), narrow enough that the simulation stays finite:
 * resources are arrays of servers (copyEngines, workers), and every duration must add up in float64.
 */
export const RANGES = {
  expertBytes: { min: 1, max: 1e11, integer: true, unit: 'bytes' },
  h2dGBps: { min: 0.01, max: 10_000, unit: 'GB/s' },
  copyEngines: { min: 1, max: 64, integer: true },
  cpuWorkers: { min: 1, max: 1024, integer: true },
  /** per-copy and activation-copy overheads */
  fixedMs: { min: 0, max: 1000, unit: 'ms' },
  /** any point of a cost curve */
  ms: { min: 0, max: 100_000 },
  tokens: { min: 1, max: 1_000_000 },
  context: { min: 1, max: 10_000_000, integer: true },
  /** hidden size, d_ff, int4 group size */
  expertDim: { min: 1, max: 1_000_000, integer: true },
  curvePoints: 10_000,
} as const satisfies Record<string, Range | number>;

/** Returns the problems of a parsed profile (empty when valid). */
export function calibrationProblems(x: unknown): string[] {
  const p: string[] = [];
  const o = x as Partial<CostModel> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return ['not a JSON object'];
  if (o.schema !== CALIBRATION_SCHEMA) p.push(`schema must be '${CALIBRATION_SCHEMA}'`);
  if (o.version !== CALIBRATION_VERSION) p.push(`version ${String(o.version)} is not supported (this build reads ${CALIBRATION_VERSION})`);
  for (const k of ['name', 'label', 'device', 'model'] as const) if (typeof o[k] !== 'string' || o[k] === '') p.push(`${k} must be a non-empty string`);
  if (typeof o.measured !== 'boolean') p.push('measured must be true or false');
  // Every number has a plausible range: a profile is data a user may edit, and values far outside these
  // (copyEngines 1e9, expertMs 1e308, h2dGBps 1e-300) hung the simulator or overflowed its clock.
  const num = (v: unknown, name: string, r: Range) => {
    const kind = r.integer ? 'integer' : 'number';
    // first what any profile must be (positive, or non-negative), then the plausible range
    if (typeof v !== 'number' || !Number.isFinite(v) || v < r.min || (r.min > 0 && v <= 0) || (r.integer && !Number.isInteger(v))) {
      p.push(r.min > 0 ? `${name} must be a positive ${kind}` : `${name} must be a non-negative ${kind}`);
    } else if (v > r.max || v < r.min) {
      p.push(`${name} is ${v}; it must be ${r.integer ? 'an integer' : 'a number'} from ${r.min} to ${r.max}${r.unit ? ` (${r.unit})` : ''}`);
    }
  };
  const curve = (v: unknown, name: string, unit = 'ms') => {
    if (!Array.isArray(v) || v.length === 0) return p.push(`${name} must be a non-empty list of [tokens, ${unit}] pairs`);
    if (v.length > RANGES.curvePoints) return p.push(`${name} has ${v.length} points; at most ${RANGES.curvePoints}`);
    let prev = 0;
    v.forEach((pt, i) => {
      const t = RANGES.tokens;
      const ms = RANGES.ms;
      if (!Array.isArray(pt) || pt.length !== 2 || typeof pt[0] !== 'number' || typeof pt[1] !== 'number' || !(pt[0] >= 1) || !(pt[1] >= 0) || !Number.isFinite(pt[1])) {
        p.push(`${name}[${i}] must be [tokens >= 1, ${unit} >= 0]`);
      } else if (!(pt[0] <= t.max) || !(pt[1] <= ms.max)) {
        p.push(`${name}[${i}] is ${JSON.stringify(pt)}; it must be [tokens from ${t.min} to ${t.max}, ${unit} from ${ms.min} to ${ms.max}]`);
      } else if (pt[0] <= prev) p.push(`${name}: tokens must be strictly ascending`);
      else prev = pt[0];
    });
  };
  const launchTable = (v: unknown, name: string) => {
    const t = v as Partial<LaunchTable> | null;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) return p.push(`${name} must be an object {maxRows, ms}`);
    num(t.maxRows, `${name}.maxRows`, { ...RANGES.tokens, integer: true });
    if (!Array.isArray(t.ms) || t.ms.length === 0) return p.push(`${name}.ms must be a non-empty list of [experts, [[tokens, ms], ...]] pairs`);
    let prev = 0;
    t.ms.forEach((e, i) => {
      const r = RANGES.expertDim;
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'number' || !Number.isInteger(e[0]) || e[0] < r.min || e[0] > r.max) {
        p.push(`${name}.ms[${i}] must be [experts from ${r.min} to ${r.max}, [[tokens, ms], ...]]`);
      } else if (e[0] <= prev) p.push(`${name}.ms: experts must be strictly ascending`);
      else {
        prev = e[0];
        curve(e[1], `${name}.ms[${i}][1]`);
      }
    });
  };
  num(o.expertBytes, 'expertBytes', RANGES.expertBytes);
  if (typeof o.transfer !== 'object' || !o.transfer) p.push('transfer must be an object');
  else {
    num(o.transfer.h2dGBps, 'transfer.h2dGBps', RANGES.h2dGBps);
    num(o.transfer.perCopyMs, 'transfer.perCopyMs', RANGES.fixedMs);
    num(o.transfer.copyEngines, 'transfer.copyEngines', RANGES.copyEngines);
    if (o.transfer.copySlowdownUnderCpu !== undefined) {
      curve(o.transfer.copySlowdownUnderCpu, 'transfer.copySlowdownUnderCpu', 'factor');
      if (Array.isArray(o.transfer.copySlowdownUnderCpu) && o.transfer.copySlowdownUnderCpu.some((pt) => Array.isArray(pt) && !(pt[1] > 0))) {
        p.push('transfer.copySlowdownUnderCpu: every factor must be positive');
      }
    }
  }
  if (typeof o.gpu !== 'object' || !o.gpu) p.push('gpu must be an object');
  else {
    for (const k of ['expertMs', 'moeLayerOtherMs', 'denseLayerMs', 'headMs'] as const) curve(o.gpu[k], `gpu.${k}`);
    if (o.gpu.launch !== undefined) launchTable(o.gpu.launch, 'gpu.launch');
    if (o.gpu.eagerLayerOverheadMs !== undefined) curve(o.gpu.eagerLayerOverheadMs, 'gpu.eagerLayerOverheadMs');
    if (o.gpu.residentLayerOverheadMs !== undefined) curve(o.gpu.residentLayerOverheadMs, 'gpu.residentLayerOverheadMs');
    if (o.gpu.layerGlueMs !== undefined) curve(o.gpu.layerGlueMs, 'gpu.layerGlueMs');
    if (o.gpu.cpuJoinLayerOverheadMs !== undefined) curve(o.gpu.cpuJoinLayerOverheadMs, 'gpu.cpuJoinLayerOverheadMs');
    if (o.gpu.byContext !== undefined) {
      const b = o.gpu.byContext as Partial<ContextCurves> | null;
      if (typeof b !== 'object' || b === null || Array.isArray(b)) p.push('gpu.byContext must be an object');
      else {
        num(b.referenceContext, 'gpu.byContext.referenceContext', RANGES.context);
        const byCtx = (v: unknown, name: string) => {
          if (!Array.isArray(v) || v.length === 0) return p.push(`${name} must be a non-empty list of [context, curve] pairs`);
          let prev = 0;
          v.forEach((e, i) => {
            if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'number' || !Number.isInteger(e[0]) || e[0] < RANGES.context.min || e[0] > RANGES.context.max) {
              p.push(`${name}[${i}] must be [context from ${RANGES.context.min} to ${RANGES.context.max}, [[tokens, ms], ...]]`);
            } else if (e[0] <= prev) p.push(`${name}: contexts must be strictly ascending`);
            else {
              prev = e[0];
              curve(e[1], `${name}[${i}][1]`);
            }
          });
        };
        byCtx(b.moeLayerOtherMs, 'gpu.byContext.moeLayerOtherMs');
        if (b.denseLayerMs !== undefined) byCtx(b.denseLayerMs, 'gpu.byContext.denseLayerMs');
      }
    }
  }
  if (typeof o.cpu !== 'object' || !o.cpu) p.push('cpu must be an object');
  else {
    num(o.cpu.workers, 'cpu.workers', RANGES.cpuWorkers);
    curve(o.cpu.expertMs, 'cpu.expertMs');
    num(o.cpu.activationCopyMs, 'cpu.activationCopyMs', RANGES.fixedMs);
    if (o.cpu.jobMs !== undefined) curve(o.cpu.jobMs, 'cpu.jobMs');
    if (o.cpu.expertMsUnderCopy !== undefined) curve(o.cpu.expertMsUnderCopy, 'cpu.expertMsUnderCopy');
  }
  if (o.host !== undefined) {
    if (typeof o.host !== 'object' || o.host === null || Array.isArray(o.host)) p.push('host must be an object');
    else {
      curve(o.host.layerMs, 'host.layerMs');
      curve(o.host.stepMs, 'host.stepMs');
      if (o.host.cpuPathLayerMs !== undefined) curve(o.host.cpuPathLayerMs, 'host.cpuPathLayerMs');
      if (o.host.cpuPathStepMs !== undefined) curve(o.host.cpuPathStepMs, 'host.cpuPathStepMs');
    }
  }
  // issue 13: expertShape and byExpertDtype, checked like the figures above
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (o.expertShape !== undefined) {
    if (!isObject(o.expertShape)) p.push('expertShape must be an object {hidden, dff}');
    else for (const k of ['hidden', 'dff'] as const) num(o.expertShape[k], `expertShape.${k}`, RANGES.expertDim);
  }
  if (o.byExpertDtype !== undefined) {
    if (!isObject(o.byExpertDtype)) p.push('byExpertDtype must be an object {int8?: {...}, int4?: {...}}');
    else {
      for (const [d, e] of Object.entries(o.byExpertDtype as Record<string, Partial<ExpertDtypeProfile>>)) {
        const at = `byExpertDtype.${d}`;
        if (d !== 'int8' && d !== 'int4') p.push(`${at}: unknown expert dtype (int8 or int4; bf16 is the top level)`);
        else if (!isObject(e)) p.push(`${at} must be an object {expertBytes, group?, gpu: {expertMs}, cpu: {expertMs, workers?}}`);
        else {
          num(e.expertBytes, `${at}.expertBytes`, RANGES.expertBytes);
          if (e.group !== undefined || d === 'int4') num(e.group, `${at}.group`, RANGES.expertDim);
          if (!isObject(e.gpu)) p.push(`${at}.gpu must be an object {expertMs}`);
          else {
            curve(e.gpu!.expertMs, `${at}.gpu.expertMs`);
            if (e.gpu!.launch !== undefined) launchTable(e.gpu!.launch, `${at}.gpu.launch`);
            if (e.gpu!.eagerLayerOverheadMs !== undefined) curve(e.gpu!.eagerLayerOverheadMs, `${at}.gpu.eagerLayerOverheadMs`);
            if (e.gpu!.layerGlueMs !== undefined) curve(e.gpu!.layerGlueMs, `${at}.gpu.layerGlueMs`);
          }
          if (!isObject(e.cpu)) p.push(`${at}.cpu must be an object {expertMs, workers?}`);
          else {
            curve(e.cpu!.expertMs, `${at}.cpu.expertMs`);
            if (e.cpu!.workers !== undefined) num(e.cpu!.workers, `${at}.cpu.workers`, RANGES.cpuWorkers);
            if (e.cpu!.jobMs !== undefined) curve(e.cpu!.jobMs, `${at}.cpu.jobMs`);
          }
        }
      }
    }
  }
  return p;
}

export function parseCalibration(text: string, file: string): CostModel {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (err) {
    throw new BadInputError(file, `not valid JSON (${(err as Error).message})`);
  }
  const problems = calibrationProblems(x);
  if (problems.length > 0) throw new BadInputError(file, `not a calibration profile: ${problems.join('; ')}`);
  return x as CostModel;
}

export function loadCalibration(file: string): CostModel {
  let text: string;
  try {
    // stat before open: reading a FIFO would block forever
    if (!statSync(file).isFile()) throw new BadInputError(file, 'not a regular file (a FIFO, device or folder)');
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof BadInputError) throw err;
    throw new BadInputError(file, `cannot read calibration profile (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseCalibration(text, file);
}

/** sim/calibration/ of this checkout, found from this module (works from sim/src and from dist/sim/src). */
export function calibrationDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'sim', 'calibration');
    if (existsSync(join(candidate, DEFAULT_PROFILE_FILE))) return candidate;
    dir = resolve(dir, '..');
  }
  throw new Error(`cannot find sim/calibration/${DEFAULT_PROFILE_FILE} above ${fileURLToPath(import.meta.url)}`);
}

export function defaultCalibration(): CostModel {
  return loadCalibration(join(calibrationDir(), DEFAULT_PROFILE_FILE));
}

export function calibrationLabel(c: CostModel): string {
  return `${c.name} (${c.label})`;
}
