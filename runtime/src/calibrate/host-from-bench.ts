/**
 * A calibration profile whose `host` section (the runtime's host work on the critical path: per MoE layer,
 * and per step outside the forward: the step's bookkeeping and, before greedy tokens were picked on the
 * GPU, sampling the batch's logits) comes from offload bench files.
 * Only points whose every expert was resident (misses fetched, no prefetch, hit rate >= 95%) are used: there the
 * warm-up's forwards cost what the timed ones do, so the step's time outside the forward is read correctly
 * also from benches made before the bench read its forward counters after the warm-up (at lower hit rates
 * the cold warm-up made it negative). Points whose decode steps ran as resident steps (no per-layer host work
 * to read) are left out: measure them with `bench --resident-steps off`. Per batch: the mean of those points'
 * figures.
 *
 *   node dist/runtime/src/calibrate/host-from-bench.js --bench a.json[,b.json] --base profile.json --out F [--name NAME]
 *   node dist/runtime/src/calibrate/host-from-bench.js --resident a.json --traces T1,T2,.. --moe-layers 26 --base profile.json --out F
 *     (gpu.residentLayerOverheadMs instead: residentCurveFromBenches; --traces: the bench's routing files in its --routing order)
 *   node dist/runtime/src/calibrate/host-from-bench.js --cpu-path a.json --moe-layers 26 --base profile.json --out F
 *     (host.cpuPathLayerMs / cpuPathStepMs added: cpuPathCurvesFromBenches)
 */
import { readFileSync } from 'node:fs';
import { loadCalibration, type CostModel, type TokenCurve } from '../../../sim/src/cost/calibration.js';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { optionalScriptArg, requiredScriptArg } from '../../../core/src/options.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { simulateRecordedPoint, type RecordedPoint } from '../bench/sim-vs-bench.js';

/**
 * Hit rate from which a point counts as all-resident: with a slot for every expert the misses left (3-4% at
 * batch 1) are first uses of experts the prompt did not touch, which the warm-up generation has as well.
 */
export const RESIDENT_HIT_RATE = 0.95;

interface BenchPointLike {
  miss?: string;
  prefetch?: string;
  batch: number;
  hitRate?: number;
  forwardMs?: number;
  hostLayerMs?: number;
  stepOverheadMs?: number;
  residentSteps?: number;
}

/** One sample of a per-batch curve. */
function add(by: Map<number, number[]>, batch: number, value: number): void {
  const v = by.get(batch) ?? [];
  v.push(value);
  by.set(batch, v);
}

/** The curves these tools write: per batch, ascending, the mean of its samples, never below 0, 4 significant digits. */
function meanCurve(by: Map<number, number[]>): TokenCurve {
  return [...by.keys()].sort((a, b) => a - b).map((b) => {
    const v = by.get(b)!;
    return [b, Number(Math.max(0, v.reduce((x, y) => x + y, 0) / v.length).toPrecision(4))];
  });
}

export function hostCurvesFromBenches(benches: string[]): { layerMs: TokenCurve; stepMs: TokenCurve; points: number } {
  const layer = new Map<number, number[]>(), step = new Map<number, number[]>();
  let points = 0;
  for (const path of benches) {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { grid?: BenchPointLike[] };
    if (!Array.isArray(doc.grid)) throw new UserError(`--bench ${path}: not a bench.json`);
    for (const p of doc.grid) {
      // without prefetch: a prefetcher's hits are experts copied during the step, not resident ones
      if (p.miss !== 'fetch' || (p.prefetch ?? 'none') !== 'none' || !((p.hitRate ?? 0) >= RESIDENT_HIT_RATE) || !((p.forwardMs ?? 0) > 0) || (p.residentSteps ?? 0) > 0) continue;
      add(layer, p.batch, p.hostLayerMs ?? 0);
      add(step, p.batch, p.stepOverheadMs ?? 0);
      points++;
    }
  }
  if (layer.size === 0) throw new UserError(`--bench: no fetch point with a hit rate of at least ${RESIDENT_HIT_RATE * 100}% (all experts resident) and no resident steps (bench --resident-steps off)`);
  return { layerMs: meanCurve(layer), stepMs: meanCurve(step), points };
}

export function withBenchHost(base: CostModel, benches: string[]): CostModel {
  const { layerMs, stepMs, points } = hostCurvesFromBenches(benches);
  return {
    ...base,
    name: `${base.name}-host`,
    label: `${base.label}; host work from offload benches`,
    host: { layerMs, stepMs },
    sources: {
      ...(base.sources ?? {}),
      host: `mean of ${points} all-resident offload bench points (misses fetched, no prefetch, hit rate >= ${RESIDENT_HIT_RATE * 100}%) of ${benches.join(', ')}: per MoE layer the runtime's host work (decodeHostLayerMs), per step the time outside the forward (ms/token minus the forward's mean), by batch`,
    },
  };
}

interface CpuPathPointLike extends BenchPointLike {
  expertDtype?: string;
  cache?: number;
  policy?: string;
  prompt?: number;
  cpuExperts?: number;
  fillCopies?: number;
  hits?: number;
}

/**
 * host.cpuPathLayerMs / cpuPathStepMs (calibration.ts) from bench pairs: a point whose misses the miss rule
 * decided (cpu, hybrid) but that put no expert on the CPU and filled nothing, against the same point of the same
 * bench fetched (dtype, cache, policy, batch, prompt; no prefetch, no resident steps, the same cache hits, so the
 * GPU did the same work). Per batch the mean of (forward difference / MoE layers) and of the step overhead's
 * difference, never below 0.
 */
export function cpuPathCurvesFromBenches(benches: string[], moeLayers: number): { layerMs: TokenCurve; stepMs: TokenCurve; pairs: number } {
  const layer = new Map<number, number[]>(), step = new Map<number, number[]>();
  let pairs = 0;
  const same = (a: CpuPathPointLike, b: CpuPathPointLike) =>
    a.expertDtype === b.expertDtype && a.cache === b.cache && a.policy === b.policy && a.batch === b.batch && a.prompt === b.prompt && a.hits === b.hits;
  const plain = (p: CpuPathPointLike) => (p.prefetch ?? 'none') === 'none' && (p.residentSteps ?? 0) === 0 && (p.forwardMs ?? 0) > 0;
  for (const path of benches) {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { grid?: CpuPathPointLike[] };
    if (!Array.isArray(doc.grid)) throw new UserError(`--cpu-path ${path}: not a bench.json`);
    for (const p of doc.grid) {
      if ((p.miss !== 'cpu' && p.miss !== 'hybrid') || !plain(p) || p.cpuExperts !== 0 || (p.fillCopies ?? 0) !== 0) continue;
      const f = doc.grid.find((q) => q.miss === 'fetch' && plain(q) && same(p, q));
      if (!f) continue;
      add(layer, p.batch, (p.forwardMs! - f.forwardMs!) / moeLayers);
      add(step, p.batch, (p.stepOverheadMs ?? 0) - (f.stepOverheadMs ?? 0));
      pairs++;
    }
  }
  if (layer.size === 0) throw new UserError('--cpu-path: no cpu or hybrid point without CPU experts beside the same point fetched (same dtype, cache, batch, prompt and hits; no prefetch, no resident steps)');
  return { layerMs: meanCurve(layer), stepMs: meanCurve(step), pairs };
}

export function withBenchCpuPath(base: CostModel, benches: string[], moeLayers: number): CostModel {
  if (!base.host) throw new UserError(`--base ${base.name}: has no host section to add the CPU path's host work to`);
  const { layerMs, stepMs, pairs } = cpuPathCurvesFromBenches(benches, moeLayers);
  return {
    ...base,
    name: `${base.name}-cpupath`,
    label: `${base.label}; the miss rule's host work from offload bench pairs`,
    host: { ...base.host, cpuPathLayerMs: layerMs, cpuPathStepMs: stepMs },
    sources: {
      ...(base.sources ?? {}),
      'host.cpuPath': `mean of ${pairs} bench pairs of ${benches.join(', ')}: a cpu/hybrid point with no expert on the CPU against the same point fetched; per MoE layer the forward's difference / ${moeLayers}, per step the step overhead's difference, by batch`,
    },
  };
}

interface ResidentPointLike extends RecordedPoint {
  msPerToken?: { mean: number; n: number };
  residentSteps?: number;
}

/**
 * gpu.residentLayerOverheadMs (calibration.ts) from bench points whose every timed decode step was a resident
 * step: each point simulated again on its own lanes with `base` (whatever profile the bench itself was
 * simulated with), then per batch the mean of base's own term + (measured - simulated) / MoE layers, never
 * below 0. replays: the bench's routing files, in its --routing order.
 */
export function residentCurveFromBenches(base: CostModel, benches: string[], moeLayers: number, replays: RoutingReplay[]): { curve: TokenCurve; points: number } {
  const by = new Map<number, number[]>();
  const own = new Costs(base);
  let points = 0;
  for (const path of benches) {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { grid?: ResidentPointLike[]; options?: { warmup: number } };
    if (!Array.isArray(doc.grid) || !doc.options) throw new UserError(`--resident ${path}: not a bench.json`);
    for (const p of doc.grid) {
      const n = p.msPerToken?.n ?? 0;
      if (p.residentStepsOn === false || !(n > 0) || p.residentSteps !== n) continue;
      const sim = simulateRecordedPoint(p, doc.options.warmup, base, replays);
      if (sim.residentSteps !== n) throw new UserError(`--resident ${path}: batch ${p.batch} ran ${n} resident steps, the simulator ${sim.residentSteps}: --traces must be the bench's routing, in its order`);
      add(by, p.batch, own.residentLayerOverhead(p.batch) + (p.msPerToken!.mean - sim.msPerToken.mean) / moeLayers);
      points++;
    }
  }
  if (by.size === 0) throw new UserError('--resident: no bench point whose every timed decode step was a resident step');
  return { curve: meanCurve(by), points };
}

export function withBenchResident(base: CostModel, benches: string[], moeLayers: number, replays: RoutingReplay[]): CostModel {
  const { curve, points } = residentCurveFromBenches(base, benches, moeLayers, replays);
  return {
    ...base,
    name: `${base.name}-resident`,
    label: `${base.label}; resident-step excess from offload benches`,
    gpu: { ...base.gpu, residentLayerOverheadMs: curve },
    sources: {
      ...(base.sources ?? {}),
      'gpu.residentLayerOverheadMs': `mean of ${points} resident bench points (every timed decode step a resident step) of ${benches.join(', ')}: (measured - simulated with ${base.name} on the bench's lanes) ms per token / ${moeLayers} MoE layers, by batch, clamped at 0`,
    },
  };
}

if (process.argv[1] && process.argv[1].endsWith('host-from-bench.js')) {
  try {
    const base = loadCalibration(requiredScriptArg('--base'));
    const resident = process.argv.indexOf('--resident');
    const moeLayers = () => {
      const n = Number(requiredScriptArg('--moe-layers'));
      if (!Number.isInteger(n) || n < 1) throw new UserError(`option --moe-layers: expected a positive integer, got ${requiredScriptArg('--moe-layers')}`);
      return n;
    };
    const profile = resident > 0
      ? withBenchResident(base, requiredScriptArg('--resident').split(','), moeLayers(),
        requiredScriptArg('--traces').split(',').map((path) => ({ path, corpus: toSequences(readTrace(path)) })))
      : process.argv.includes('--cpu-path')
        ? withBenchCpuPath(base, requiredScriptArg('--cpu-path').split(','), moeLayers())
        : withBenchHost(base, requiredScriptArg('--bench').split(','));
    const named = { ...profile, name: optionalScriptArg('--name', profile.name) };
    writeFileAtomic(requiredScriptArg('--out'), JSON.stringify(named, null, 1) + '\n');
    process.stdout.write(`${requiredScriptArg('--out')} (${named.name}): host ${JSON.stringify(profile.host)}, resident ${JSON.stringify(profile.gpu.residentLayerOverheadMs ?? null)}\n`);
  } catch (err) {
    process.stderr.write(`host-from-bench: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
