/**
 * validate --best on the CPU: the statistics against hand-worked numbers, the configuration space, the
 * simulation sweep and plan (tiny geometry, synthetic routing), and the measured part's bookkeeping driven
 * by a FAKE measurement function (a unit test of the comparison, the output folder and interrupts; no GPU
 * result is produced or implied here).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticTrace } from '../../../traces/src/synthetic-routing.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { defaultCalibration } from '../../../sim/src/index.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import { parseModelConfig } from '../../src/model/config.js';
import { TINY_GEOMETRIES, LITE_CONFIG } from '../../src/model/synth/geometries.js';
import { benchLanes, predictBenchPoint } from '../../src/bench/sim-prediction.js';
import { ranks, regret, relativeError, spearman } from '../../src/validate/rank-stats.js';
import { baselines, buildSpace, runtimeGaps, slotLadder, SPACE } from '../../src/validate/space.js';
import { BENCH_RUN, planValidation, type ValidateInputs } from '../../src/validate/plan.js';
import { formatPlan } from '../../src/validate/format.js';
import { measureGroups } from '../../src/validate/measure.js';
import { planGpuMemory } from '../../src/offload/gpu-budget.js';
import { makeCheckpoint } from '../engine/helpers.js';
import { validateBest } from '../../src/validate/run.js';
import type { MeasureFn, MeasuredRun } from '../../src/validate/measure.js';
import type { ValidationResult } from '../../src/validate/result.js';
import { runCli, tempDir } from '../../../core/test/helpers.js';

describe('rank statistics (hand-worked)', () => {
  it('fractional ranks share tied places', () => {
    expect(ranks([10, 20, 20, 30])).toEqual([1, 2.5, 2.5, 4]);
    expect(ranks([3, 1, 2])).toEqual([3, 1, 2]);
    expect(ranks([5, 5, 5])).toEqual([2, 2, 2]);
  });
  it('Spearman: 1 - 6 sum d^2 / (n (n^2 - 1)) without ties, Pearson of ranks with them', () => {
    // d = -1, 1, -1, 1, 0: sum d^2 = 4; 1 - 24 / 120 = 0.8
    expect(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])).toBeCloseTo(0.8, 12);
    expect(spearman([1, 2, 3], [30, 20, 10])).toBeCloseTo(-1, 12);
    expect(spearman([1, 2, 3], [1.5, 2.5, 99])).toBeCloseTo(1, 12);
    // ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5) = 0.948683...
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(4.5 / Math.sqrt(22.5), 12);
    expect(spearman([1], [2])).toBeNull();
    expect(spearman([1, 2, 3], [7, 7, 7])).toBeNull();
    expect(() => spearman([1, 2], [1])).toThrow();
  });
  it('regret: the pick measured against the measured best', () => {
    expect(regret(105, [100, 105, 120])).toBeCloseTo(0.05, 12);
    expect(regret(100, [100, 105])).toBe(0);
    expect(relativeError(95, 100)).toBeCloseTo(-0.05, 12);
  });
});

describe('configuration space', () => {
  it('declares, per dimension, what the runtime runs today (a subset of what the simulator sweeps)', () => {
    for (const d of Object.values(SPACE)) for (const v of d.runtime) expect(d.simulator as readonly string[]).toContain(v);
    expect(SPACE.miss.runtime).toEqual(['fetch', 'cpu', 'hybrid']);
    // oracle runs under replay; predicted only with --predictor; next-gate never under replay
    expect(SPACE.prefetch.runtime).toEqual(['none', 'oracle']);
    expect(SPACE.prefetch.runtimeLacks).toMatch(/next-gate cannot be validated under routing replay: .*random-weight model's own/);
    expect(SPACE.prefetch.runtimeLacks).toMatch(/predicted runs on the GPU only with validate --predictor DIR/);
    expect(runtimeGaps({ policy: 'opt', cache: 4, prefetch: 'oracle', miss: 'hybrid', dtype: 'bf16' })).toEqual(['policy opt']);
    expect(runtimeGaps({ policy: 'lru', cache: 4, prefetch: 'next-gate', miss: 'fetch', dtype: 'bf16' })).toEqual(['prefetch next-gate']);
    expect(runtimeGaps({ policy: 'lru', cache: 4, prefetch: 'predicted', miss: 'fetch', dtype: 'bf16' })).toEqual(['prefetch predicted']);
    expect(runtimeGaps({ policy: 'lfu', cache: 4, prefetch: 'none', miss: 'fetch', dtype: 'bf16' })).toEqual([]);
    const withPredictor = buildSpace({ predictor: true, dtypes: ['bf16', 'int4'] });
    expect(withPredictor.prefetch.runtime).toEqual(['none', 'oracle', 'predicted']);
    expect(withPredictor.prefetch.runtimeLacks).not.toMatch(/--predictor/);
    expect(withPredictor.dtype).toMatchObject({ simulator: ['bf16', 'int4'], runtime: ['bf16', 'int4'] });
    expect(runtimeGaps({ policy: 'lru', cache: 4, prefetch: 'predicted', miss: 'hybrid', dtype: 'int4' }, withPredictor)).toEqual([]);
  });
  it('slot ladder from the most that fits: the most, a half, a quarter', () => {
    expect(slotLadder(19)).toEqual([4, 9, 19]);
    expect(slotLadder(3)).toEqual([1, 3]);
    expect(slotLadder(1)).toEqual([1]);
    expect(slotLadder(0)).toEqual([]);
    expect(baselines(19).map((b) => [b.config.policy, b.config.cache])).toEqual([['lru', 0], ['lru', 19]]);
  });
});

const tmp = tempDir('validate-');
afterAll(() => tmp.cleanup());
const tiny = parseModelConfig({ ...LITE_CONFIG, ...TINY_GEOMETRIES['tiny-a'] }, 'tiny-a');
let inputs: ValidateInputs;
let tracePath = '';

beforeAll(() => {
  tracePath = join(tmp.path, 'tiny.arrow');
  writeSyntheticTrace(tracePath, { sequences: 6, tokensPerSequence: 40, numLayers: 3, numExperts: 8, topK: 2 });
  inputs = {
    config: tiny,
    modelLabel: 'tiny-a',
    replays: [{ path: tracePath, corpus: toSequences(readTrace(tracePath)) }],
    budgetBytes: 2 ** 30,
    batches: [1, 4],
    prompts: [16],
    top: 2,
    calibration: defaultCalibration(),
  };
});

describe('the simulation sweep and plan', () => {
  it('simulates every configuration of the space on the bench lanes, ranks them, and plans the top runnable ones plus the baselines', () => {
    let total = 0;
    let ticks = 0;
    const plan = planValidation(inputs, (n) => ((total = n), () => ticks++));
    expect(plan.slotsMost).toBe(8); // 8 experts per layer, all fit in 1 GiB for this tiny geometry
    expect(plan.slots).toEqual([2, 4, 8]);
    expect(ticks).toBe(total);
    expect(plan.points.map((p) => [p.batch, p.prompt])).toEqual([[1, 16], [4, 16]]);
    for (const p of plan.points) {
      // next-gate and predicted: the lanes carry routing only
      expect(p.notSimulated.map((n) => n.prefetch)).toEqual(['next-gate', 'predicted']);
      expect(p.ranked.length).toBe(SPACE.policy.simulator.length * 3 * 2 * SPACE.miss.simulator.length);
      for (let i = 1; i < p.ranked.length; i++) expect(p.ranked[i].predictedMs.mean).toBeGreaterThanOrEqual(p.ranked[i - 1].predictedMs.mean);
      const runnable = p.ranked.filter((r) => r.runtimeGaps.length === 0);
      const tops = p.runs.filter((r) => r.roles.some((x) => x.startsWith('top')));
      expect(tops.map((r) => r.key)).toEqual(runnable.slice(0, 2).map((r) => r.key));
      expect(p.runs.find((r) => r.roles.includes('naive on-demand (cache 0)'))!.config.cache).toBe(0);
      expect(p.runs.some((r) => r.roles.includes('fetch-only lru, 8 slots'))).toBe(true);
      for (const r of p.runs) expect(runtimeGaps(r.config)).toEqual([]);
      // the prediction is the bench-lane prediction of sim-prediction.ts, nothing else
      const top = p.ranked[0];
      const direct = predictBenchPoint(benchLanes(inputs.replays, p), p, { policy: top.config.policy, cacheSize: top.config.cache, prefetch: top.config.prefetch, miss: top.config.miss, calibration: inputs.calibration });
      expect(top.predictedMs.mean).toBe(direct.msPerToken.mean);
      expect(p.newTokens).toBe(BENCH_RUN.newTokens);
    }
  });

  it('refuses a budget that fits nothing, and one that fits no expert slot', () => {
    expect(() => planValidation({ ...inputs, budgetBytes: 2 ** 20 })).toThrow(/option --gpu-memory: 0\.00 GiB cannot hold the model's non-expert part/);
    const zero = planValidation({ ...inputs, budgetBytes: 4 * 2 ** 30 }).memory;
    expect(() => planValidation({ ...inputs, budgetBytes: zero.fixedBytes + zero.slotBytes - 1 })).toThrow(/fits no expert slot/);
    expect(() => planValidation({ ...inputs, top: 0 })).toThrow(/option --top/);
  });
});

describe('the plan with prefetchers and expert dtypes (issue 12 / 13 values in the runtime set)', () => {
  it('sweeps each dtype with its own slots, ranks oracle, and plans prefetch and dtype runs; next-gate and predicted are left out with the reason', () => {
    const shape = { batch: 4, contextTokens: 16 + BENCH_RUN.newTokens, prefillRows: 4 * 16 };
    const zero = planGpuMemory(tiny, 2 ** 30, shape);
    const budgetBytes = zero.fixedBytes + 3 * zero.slotBytes + 1;
    const runnableCount = (p: { ranked: { runtimeGaps: string[] }[] }) => p.ranked.filter((r) => r.runtimeGaps.length === 0).length;
    const plan = planValidation({ ...inputs, budgetBytes, top: 1000, formats: [{ dtype: 'bf16', group: 64 }, { dtype: 'int8', group: 64 }] });
    const [bf16, int8] = plan.dtypes;
    expect(bf16).toMatchObject({ dtype: 'bf16', slotsMost: 3, slots: [1, 3], costBasis: 'bf16', costWarning: null });
    // int8 blobs are about half of bf16's: the same budget holds more of them
    expect(int8.dtype).toBe('int8');
    expect(int8.slotsMost).toBeGreaterThan(bf16.slotsMost);
    expect(int8.slots).toEqual(slotLadder(int8.slotsMost));
    // the default profile has no measured int8 figures: scaled, and the plan says so
    expect(int8.costBasis).toBe('scaled');
    expect(plan.warnings).toEqual([int8.costWarning]);
    for (const p of plan.points) {
      expect(p.notSimulated.map((n) => n.prefetch)).toEqual(['next-gate', 'predicted']);
      expect(p.notSimulated[0].reason).toMatch(/next-gate cannot be validated under routing replay/);
      expect(p.notSimulated[1].reason).toMatch(/validate --predictor DIR/);
      expect(p.ranked.length).toBe(SPACE.policy.simulator.length * (bf16.slots.length + int8.slots.length) * 2 * SPACE.miss.simulator.length);
      // every oracle / int8 configuration of a runnable policy is runnable, and with top >= all of them each is planned
      const oracleInt8 = p.ranked.filter((r) => r.config.prefetch === 'oracle' && r.config.dtype === 'int8' && r.config.policy === 'lru');
      expect(oracleInt8.length).toBe(int8.slots.length * SPACE.miss.simulator.length);
      for (const r of oracleInt8) expect(r.runtimeGaps).toEqual([]);
      expect(p.runs.filter((r) => r.roles.some((x) => x.startsWith('top'))).length).toBe(runnableCount(p));
      for (const r of oracleInt8) expect(p.runs.map((x) => x.key)).toContain(r.key);
      // int8 slot counts the bf16 budget cannot hold are planned in int8 only
      expect(p.runs.some((r) => r.config.dtype === 'int8' && r.config.cache === int8.slotsMost)).toBe(true);
      // the baselines stay bf16 without prefetch
      const naive = p.runs.find((r) => r.roles.includes('naive on-demand (cache 0)'))!;
      expect(naive.config).toMatchObject({ cache: 0, prefetch: 'none', dtype: 'bf16', miss: 'fetch' });
      expect(p.runs.find((r) => r.roles.includes('fetch-only lru, 3 slots'))!.config).toMatchObject({ cache: 3, prefetch: 'none', dtype: 'bf16' });
      // the oracle's prediction is the bench-lane prediction with int8's (scaled) profile
      const r = oracleInt8[0];
      const direct = predictBenchPoint(benchLanes(inputs.replays, p), p, { policy: 'lru', cacheSize: r.config.cache, prefetch: 'oracle', miss: r.config.miss, calibration: costModelForDtype(inputs.calibration, 'int8').model });
      expect(r.predictedMs.mean).toBe(direct.msPerToken.mean);
    }
    // the printed plan (the whole output without CUDA) lists the prefetch and dtype runs and the reasons
    const text = formatPlan(plan);
    const runsTable = text.slice(text.indexOf('Runs on the GPU:'));
    expect(runsTable).toMatch(/\| top \d+ \| lru c\d+ prefetch oracle miss fetch int8 \|/);
    expect(runsTable).toMatch(/\| top \d+ \| lru c1 prefetch none miss fetch bf16 \|/);
    expect(text).toMatch(/Expert slots per MoE layer by dtype \(--expert-dtype\): bf16: at most 3, swept 1, 3; int8: at most \d+/);
    expect(text).toMatch(/\| prefetch \| none, next-gate, predicted, oracle \| none, oracle \| next-gate cannot be validated under routing replay.*; predicted runs on the GPU only with validate --predictor DIR/);
    expect(text).toMatch(/Warning: calibration profile .*int8 figures are scaled, not measured/);
    // the GPU part: one offload grid per (dtype, prefetcher), the oracle at its default lookahead
    const groups = measureGroups(plan);
    expect(groups.map((g) => `${g.dtype}/${g.prefetch.name}`).sort()).toEqual(['bf16/none', 'bf16/oracle', 'int8/none', 'int8/oracle']);
    expect(groups.find((g) => g.dtype === 'int8' && g.prefetch.name === 'oracle')!.caches.sort((a, b) => a - b)).toEqual(int8.slots);
    expect(groups.reduce((a, g) => a + g.wanted.size, 0)).toBe(plan.points.reduce((a, p) => a + p.runs.length, 0));
  });

  it('with --predictor: predicted is simulated on its predictions and planned for the GPU; a predictor of another geometry is refused naming it', () => {
    const pred = join(tmp.path, 'pred');
    const t = runCli(['train-predictor', '--traces', tracePath, '--k', '1', '--out', pred, '--epochs', '1', '--hidden', '8', '--quiet']);
    expect(t.status, t.stderr).toBe(0);
    const plan = planValidation({ ...inputs, batches: [1], top: 1000, predictor: pred });
    expect(plan.predictor).toBe(pred);
    const p = plan.points[0];
    expect(p.notSimulated.map((n) => n.prefetch)).toEqual(['next-gate']);
    const predicted = p.ranked.filter((r) => r.config.prefetch === 'predicted');
    expect(predicted.length).toBe(SPACE.policy.simulator.length * plan.slots.length * SPACE.miss.simulator.length);
    for (const r of predicted.filter((x) => x.config.policy === 'lru')) {
      expect(r.runtimeGaps).toEqual([]);
      expect(p.runs.map((x) => x.key)).toContain(r.key);
    }
    // the predictions change the simulated time: predicted is not 'none' under another name
    // (a cache of all 8 experts leaves nothing to prefetch; smaller ones must see the predictions)
    const noneOf = (key: string) => p.ranked.find((r) => r.key === key.replace('prefetch predicted', 'prefetch none'))!.predictedMs.mean;
    expect(predicted.filter((r) => r.config.cache < 8 && r.predictedMs.mean !== noneOf(r.key)).length).toBeGreaterThan(0);
    expect(plan.space.find((d) => d.dimension === 'prefetch')!.runtime).toEqual(['none', 'oracle', 'predicted']);
    expect(measureGroups(plan).find((g) => g.prefetch.name === 'predicted')!.prefetch).toEqual({ name: 'predicted', predictor: pred });
    const other = join(tmp.path, 'wide.arrow');
    writeSyntheticTrace(other, { sequences: 4, tokensPerSequence: 20, numLayers: 3, numExperts: 10, topK: 2 });
    const wide = join(tmp.path, 'pred-wide');
    expect(runCli(['train-predictor', '--traces', other, '--k', '1', '--out', wide, '--epochs', '1', '--hidden', '8', '--quiet']).status).toBe(0);
    expect(() => planValidation({ ...inputs, predictor: wide })).toThrow(/option --predictor: .*trained for/);
  }, 60_000);
});

/** A fake GPU: "measures" each planned run as predicted x a factor per configuration (bookkeeping only). */
function fakeMeasure(factor: (key: string) => number, o: { stopAfter?: number } = {}): MeasureFn {
  return async (plan, stop) => {
    const out: MeasuredRun[] = [];
    for (const p of plan.points)
      for (const r of p.runs) {
        if (stop.requested) return out;
        const ms = r.predictedMs.mean * factor(r.key);
        out.push({ batch: p.batch, prompt: p.prompt, key: r.key, msPerToken: { mean: ms, p50: ms, p99: ms }, decodeTokensPerSecond: (p.batch * 1e3) / ms, hitRate: r.hitRate, simHitRate: r.hitRate, hitsMatchSim: true, deviceUsedPeakBytes: 0, routing: 'fake', device: 'FAKE (unit test)' });
        if (o.stopAfter !== undefined && out.length >= o.stopAfter) stop.requested = true;
      }
    return out;
  };
}

const run = (out: string, measure: MeasureFn | { unavailable: string }, stop = { requested: false }) => {
  const printed: string[] = [];
  return {
    printed,
    done: validateBest({ inputs, out, measure, stop, command: 'test', quiet: true, print: (t) => printed.push(t), log: () => {}, now: () => new Date('2026-01-01T00:00:00Z') }),
  };
};

describe('the measured part (fake measurement: bookkeeping only)', () => {
  it('joins predicted and measured, computes error, Spearman and regret, and publishes the folder', async () => {
    // measured = predicted x 1.05, except the simulator's pick, measured 20% slower: it is no longer the best
    let pickKey = '';
    const plan = planValidation(inputs);
    pickKey = plan.points[0].runs.find((r) => r.roles.includes('top 1'))!.key;
    const out = join(tmp.path, 'ok');
    const { done, printed } = run(out, fakeMeasure((k) => (k === pickKey ? 1.2 : 1.05)));
    const { result, files } = await done;
    expect(result.status).toBe('complete');
    expect(files).toEqual(expect.arrayContaining(['validation.json', 'validation.md', 'predicted-vs-measured.vl.json']));
    const p = result.points[0];
    for (const r of p.rows) expect(r.error).toBeCloseTo(r.key === pickKey ? 1 / 1.2 - 1 : 1 / 1.05 - 1, 12);
    const measured = p.rows.map((r) => r.measured!.msPerToken.mean);
    expect(p.spearman).toBeCloseTo(spearman(p.rows.map((r) => r.predictedMs.mean), measured)!, 12);
    expect(p.regret).toBeCloseTo(regret(p.pick!.measuredMs!, measured), 12);
    expect(p.regret!).toBeGreaterThan(0);
    expect(p.rows.every((r) => r.sameLanes)).toBe(true);
    // the checks are evaluated, not assumed: errors of 16.7% fail the 10% check
    expect(result.checks.find((c) => c.name.startsWith('batch 1, prompt 16: largest'))!.pass).toBe(false);
    const json = JSON.parse(readFileSync(join(out, 'validation.json'), 'utf8')) as ValidationResult;
    expect(json.format).toBe('moe-offload-validation-v1');
    expect(json.device).toBe('FAKE (unit test)');
    expect(readFileSync(join(out, 'validation.md'), 'utf8')).toMatch(/^# validate --best on FAKE \(unit test\)\n/);
    expect(printed[0]).toMatch(/^# validate --best: plan/);
    expect(readdirSync(tmp.path).filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  it('an interrupted run publishes what it measured, marked PARTIAL, and fails', async () => {
    const out = join(tmp.path, 'interrupted');
    const { done } = run(out, fakeMeasure(() => 1, { stopAfter: 2 }));
    await expect(done).rejects.toThrow(/interrupted; 2 of \d+ runs measured, written to .* marked PARTIAL/);
    const json = JSON.parse(readFileSync(join(out, 'validation.json'), 'utf8')) as ValidationResult;
    expect(json.status).toBe('interrupted');
    expect(readFileSync(join(out, 'validation.md'), 'utf8')).toMatch(/PARTIAL: interrupted/);
    expect(readFileSync(join(out, 'validation.md'), 'utf8')).toMatch(/not measured/);
  });

  it('a measurement that fails leaves no output folder and no partial one', async () => {
    const out = join(tmp.path, 'crashed');
    const { done } = run(out, async () => {
      throw new Error('device lost');
    });
    await expect(done).rejects.toThrow(/device lost/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp.path).filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  it('without a way to measure: the plan is printed, nothing is written, exit code 3', async () => {
    const out = join(tmp.path, 'nocuda');
    const { done, printed } = run(out, { unavailable: 'no CUDA here' });
    await expect(done).rejects.toMatchObject({ exitCode: 3, message: expect.stringMatching(/no CUDA here, so nothing was measured; the plan above/) });
    expect(printed.join('')).toMatch(/Runs on the GPU:/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('validate CLI refusals', () => {
  it('refuses every option without --best, --top 0, a trace of another geometry, a budget that fits nothing', () => {
    const cases: [string[], RegExp][] = [
      [['validate'], /--best is required/],
      [['validate', '--trace', 'x.arrow'], /--best is required/],
      [['validate', '--best', '--top', '0'], /option --top/],
      [['validate', '--best', '--trace', tracePath], /option --trace: .*tiny\.arrow does not fit the model: 8 experts per layer, the model has 64/],
      [['validate', '--best', '--trace', 'missing.arrow'], /option --trace: missing\.arrow: no such file/],
      [['validate', '--best', '--gpu-memory', '2GiB'], /option --gpu-memory: 2\.00 GiB cannot hold the model's non-expert part/],
      [['validate', '--best', '--batch', '0'], /--batch/],
      [['validate', '--best', '--calibration', 'missing.json'], /missing\.json: cannot read calibration profile/],
      [['validate', '--best', '--calibration', tracePath], /tiny\.arrow: not valid JSON/],
    ];
    for (const [args, msg] of cases) {
      const r = runCli(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  }, 120_000);

  it('without CUDA, the printed plan (exit 3) lists the prefetch and expert-dtype configurations it would run on the GPU', async () => {
    const model = await makeCheckpoint(join(tmp.path, 'tiny-a'), 'tiny-a', 1);
    const pred = join(tmp.path, 'pred-cli');
    expect(runCli(['train-predictor', '--traces', tracePath, '--k', '1', '--out', pred, '--epochs', '1', '--hidden', '8', '--quiet']).status).toBe(0);
    const base = ['validate', '--best', '--model', model, '--trace', tracePath, '--gpu-memory', '1GiB', '--batch', '1', '--prompt', '16'];
    const r = runCli([...base, '--expert-dtype', 'bf16,int4', '--expert-group', '16', '--predictor', pred, '--top', '500']);
    expect(r.status, r.stderr).toBe(3);
    const runs = r.stdout.slice(r.stdout.indexOf('Runs on the GPU:'));
    for (const pf of ['none', 'oracle', 'predicted']) for (const dt of ['bf16', 'int4']) expect(runs).toMatch(new RegExp(`\\| top \\d+ \\| lru c\\d+ prefetch ${pf} miss hybrid ${dt} \\|`));
    expect(runs).not.toMatch(/prefetch next-gate/);
    expect(r.stdout).toMatch(/int4 \(group 16\): at most 8/);
    expect(r.stdout).toMatch(/Prefetch predicted: the predictor .*pred-cli/);
    expect(r.stdout).toMatch(/Not simulated here: prefetch next-gate \(.*next-gate cannot be validated under routing replay/);
    expect(r.stderr).toMatch(/no CUDA backend .*so nothing was measured/);
    // refused by name before any work
    const cases: [string[], RegExp][] = [
      [['--predictor', join(tmp.path, 'missing')], /option --predictor: .*missing: not a directory/],
      [['--expert-dtype', 'int9'], /option --expert-dtype: unknown value 'int9'/],
      [['--expert-group', '16'], /option --expert-group: has no effect here/],
    ];
    for (const [args, msg] of cases) {
      const x = runCli([...base, ...args]);
      expect(x.status, `${args.join(' ')}: ${x.stderr}`).toBe(2);
      expect(x.stderr).toMatch(msg);
    }
  }, 180_000);

  it('plain validate --best runs on the embedded defaults (sample trace, lite geometry, measured H200 profile): plan printed, exit 3 here (no CUDA)', () => {
    // --batch 1 only, to keep the test short; the default adds batch 16 to the same path
    const r = runCli(['validate', '--best', '--batch', '1']);
    expect(r.status, r.stderr).toBe(3);
    expect(r.stdout).toMatch(/^# validate --best: plan/);
    expect(r.stdout).toMatch(/at most 20 expert slots per MoE layer/);
    expect(r.stdout).toMatch(/naive on-demand \(cache 0\)/);
    expect(r.stderr).toMatch(/no CUDA backend .*so nothing was measured; the plan above is what it would run on the GPU/);
  }, 180_000);
});
