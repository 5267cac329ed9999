/**
 * The simulator against every committed H200 measurement of misses fetched / on the CPU / hybrid
 * (reports/bench/miss-h200/bench-c19-p128.json, reports/validate/esft-h200/validation.json): each point's
 * prediction recomputed on the bench's own lanes, with the profile before this model (h200-measured.json:
 * calibrate's isolated CPU expert time) and after (h200-runtime-cpu.json: cpu.jobMs, the runtime's logged
 * job times; plus the join on the GPU stream and the fill barrier, which both profiles now get). Prints the
 * whole error table; asserts the agreement reached, which is NOT issue 12's 10% for CPU misses at batch
 * 1 and 4 (why: the last test, and the report).
 * Needs the real ESFT traces (../shared/traces/esft, imported here); skipped with a message without them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCalibration, calibrationDir } from '../../../sim/src/cost/calibration.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import { benchLanes, predictBenchPoint, withCpuWorkers, type BenchShape } from '../../src/bench/sim-prediction.js';
import { tempDir } from '../../../core/test/helpers.js';
import { benchEsftDir, importBenchReplays } from '../helpers/esft-replays.js';

const repo = resolve(import.meta.dirname, '..', '..', '..');
// ../shared beside the checkout (a worktree under wt/ finds it one level further up)
const { dir: esft, have } = benchEsftDir(repo);
if (!have) console.warn(`[skip] ${esft} is missing: the simulator-vs-H200 table is not computed`);
const tmp = tempDir();
afterAll(() => tmp.cleanup());

interface Point { source: string; config: { policy: PolicyName; cache: number; miss: MissMode; cpuFill: boolean; workers: number | null }; shape: BenchShape; measuredMs: number }

function committedPoints(): Point[] {
  const out: Point[] = [];
  const bench = JSON.parse(readFileSync(join(repo, 'reports/bench/miss-h200/bench-c19-p128.json'), 'utf8'));
  for (const p of bench.grid) {
    out.push({
      source: 'bench-c19', config: { policy: p.policy, cache: p.cache, miss: p.miss ?? 'fetch', cpuFill: p.cpuFill ?? true, workers: p.cpuWorkers },
      shape: { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup: bench.options.warmup, repeats: p.repeats }, measuredMs: p.msPerToken.mean,
    });
  }
  const v = JSON.parse(readFileSync(join(repo, 'reports/validate/esft-h200/validation.json'), 'utf8'));
  for (const pt of v.points) {
    for (const r of pt.rows) {
      if (!r.measured) continue;
      out.push({
        source: 'validate', config: { policy: r.config.policy, cache: r.config.cache, miss: r.config.miss, cpuFill: true, workers: null },
        shape: { batch: pt.batch, prompt: pt.prompt, newTokens: pt.newTokens, warmup: pt.warmup, repeats: pt.repeats }, measuredMs: r.measured.msPerToken.mean,
      });
    }
  }
  return out;
}

type Row = Point & { before: number; after: number; simMs: number };

describe.skipIf(!have)('simulated vs measured on the H200 (every committed point)', () => {
  let rows: Row[] = [];
  beforeAll(() => {
  const replays = importBenchReplays(esft, tmp.path);
  const before = loadCalibration(join(calibrationDir(), 'h200-measured.json'));
  const after = loadCalibration(join(calibrationDir(), 'h200-runtime-cpu.json'));
  rows = committedPoints().map((p) => {
    const lanes = benchLanes(replays, p.shape);
    const sim = (cal: typeof before) =>
      predictBenchPoint(lanes, p.shape, { policy: p.config.policy, cacheSize: p.config.cache, prefetch: 'none', miss: p.config.miss, calibration: withCpuWorkers(cal, p.config.workers), cpuFill: p.config.cpuFill }).msPerToken.mean;
    const b = sim(before);
    const a = sim(after);
    return { ...p, before: b / p.measuredMs - 1, after: a / p.measuredMs - 1, simMs: a };
  });
  const pc = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(
    ['| source | policy | cache | miss | batch | prompt | measured ms | simulated ms (after) | error before | error after |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rows.map((r) => `| ${r.source} | ${r.config.policy} | ${r.config.cache} | ${r.config.miss} | ${r.shape.batch} | ${r.shape.prompt} | ${r.measuredMs.toFixed(2)} | ${r.simMs.toFixed(2)} | ${pc(r.before)} | ${pc(r.after)} |`)].join('\n'),
  );
  }, 600_000);

  it('misses fetched: every point within 11% (worst: validate lru c19 batch 1, -10.5%)', () => {
    for (const r of rows.filter((x) => x.config.miss === 'fetch')) expect(Math.abs(r.after), `${r.source} ${r.config.policy} c${r.config.cache} B${r.shape.batch}`).toBeLessThanOrEqual(0.11);
  });
  it('CPU misses: the runtime job times bring the bench points closer, batch 16 cpu within 10%', () => {
    const cpuRows = rows.filter((x) => x.source === 'bench-c19' && x.config.miss !== 'fetch');
    for (const r of cpuRows) expect(Math.abs(r.after), `${r.config.miss} B${r.shape.batch}`).toBeLessThan(Math.abs(r.before) + 0.005);
    expect(Math.abs(cpuRows.find((r) => r.config.miss === 'cpu' && r.shape.batch === 16)!.after)).toBeLessThanOrEqual(0.1);
    // Reached, not the goal: the worst bench point after the change (cpu, batch 1) is still under-predicted by about a third.
    expect(Math.max(...cpuRows.map((r) => Math.abs(r.after)))).toBeLessThan(0.4);
  });
});

describe('why CPU misses are not within 10% at batch 1 and 4 (committed counters)', () => {
  // The device counters are cumulative over the bench's points; a point's own figures are differences.
  const bench = JSON.parse(readFileSync(join(repo, 'reports/bench/miss-h200/bench-c19-p128.json'), 'utf8'));
  const keys = ['cpuExperts', 'cpuRows', 'cpuMs', 'cpuWaitMs', 'decodeForwards', 'decodeForwardMs'] as const;
  let prev: Record<string, number> | null = null;
  const per = bench.grid.map((g: { batch: number; miss: string; device: { offload: Record<string, number> } }) => {
    const o = g.device.offload;
    const d = Object.fromEntries(keys.map((k) => [k, o[k] - (prev ? prev[k] : 0)]));
    prev = o;
    return { batch: g.batch, miss: g.miss, jobMs: d.cpuMs / d.cpuExperts, rowsPerJob: d.cpuRows / d.cpuExperts, waitPerLayer: d.cpuWaitMs / d.decodeForwards / 26, forward: d.decodeForwardMs / d.decodeForwards };
  });
  it('a 1-token CPU job takes 0.49 ms in one run and 0.64 ms in another: one job curve cannot give both', () => {
    const b1cpu = per.find((p: { batch: number; miss: string }) => p.batch === 1 && p.miss === 'cpu')!;
    const b1hyb = per.find((p: { batch: number; miss: string }) => p.batch === 1 && p.miss === 'hybrid')!;
    expect(b1cpu.rowsPerJob).toBe(1);
    expect(b1hyb.rowsPerJob).toBe(1);
    expect(b1cpu.jobMs / b1hyb.jobMs).toBeGreaterThan(1.25);
    // the host waits on the CPU for 1.0 ms of each MoE layer's 1.49 at batch 1 cpu: the CPU path is the layer
    console.log(per.map((p: Record<string, number | string>) => `${p.miss} B${p.batch}: job ${Number(p.jobMs).toFixed(3)} ms (${Number(p.rowsPerJob).toFixed(2)} rows), host wait ${Number(p.waitPerLayer).toFixed(3)} ms per layer, forward ${Number(p.forward).toFixed(2)} ms`).join('\n'));
    expect(b1cpu.waitPerLayer).toBeGreaterThan(0.9);
  });
});
