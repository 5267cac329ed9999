/**
 * Routing the simulator has not seen (issues 12 and 13: "we will also run it on routing you have not seen"):
 * does the configuration chosen on some routing stay a good choice on other routing? For each trace (an ESFT
 * task), the simulator sweeps every configuration validate --best sweeps (planValidation: policy, slots under the
 * budget, prefetcher, miss mode; bf16 experts) and ranks them by predicted ms per token. Then, task by task,
 * the task is held out: the configuration with the best predicted ms on the others (the geometric mean of each
 * one's ratio to that task's best, runnable configurations only) is scored on the held-out task: its rank
 * there and its regret, predicted ms / the held-out task's own best - 1. Spearman's rho compares the tasks'
 * whole rankings pairwise.
 *
 * `static` pins each layer's most popular experts. By default (the simulator's and the runtime's) they come from
 * the first half of the replayed trace itself, which knows the task; `--static-pins others` takes them from the
 * other traces' routing instead, as a deployment facing a new task would (the pins of a held-out task never
 * come from it).
 *
 *   node dist/runtime/src/validate/routing-transfer.js --traces a.arrow,b.arrow,c.arrow --calibration F --out DIR
 *     [--gpu-memory 12GiB] [--batch 1,16] [--prompt 128] [--static-pins own|others]
 *
 * Everything here is predicted (the simulator on replayed routing), nothing is measured: it says how much a
 * choice depends on the routing, not how well the prediction holds on a GPU (validate --best measures that).
 */
import { mkdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { optionalScriptArg, parseChoiceOption, parseIntListOption, requiredScriptArg } from '../../../core/src/options.js';
import { startProgress } from '../../../core/src/progress.js';
import { loadCalibration } from '../../../sim/src/cost/calibration.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences, type RoutingCorpus } from '../../../traces/src/sequences.js';
import { parseModelConfig } from '../model/config.js';
import { LITE_CONFIG } from '../model/synth/geometries.js';
import { parseByteSize } from '../offload/gpu-budget.js';
import { checkReplayGeometry } from '../offload/routing-replay.js';
import { planValidation } from './plan.js';
import { spearman } from './rank-stats.js';

/** One task's predicted ms per token at one point, for every configuration the sweep ranked. */
export interface TaskRanking {
  task: string;
  /** configuration key -> predicted mean ms per output token */
  ms: Map<string, number>;
  /** candidates for a pick: keys the runtime can run (runtimeGaps empty) and a deployment could (prefetch oracle, an upper bound that replays the future, is not one) */
  runnable: Set<string>;
}

export interface HeldOut {
  task: string;
  pick: string;
  pickMs: number;
  best: string;
  bestMs: number;
  /** pickMs / bestMs - 1 */
  regret: number;
  /** 1-based rank of the pick among the held-out task's runnable configurations */
  rank: number;
  of: number;
}

/**
 * Leave one task out: the pick on the other tasks (geometric mean of ms / that task's best over the runnable
 * configurations every task ranked), scored on the held-out one.
 */
export function leaveOneOut(tasks: TaskRanking[]): HeldOut[] {
  if (tasks.length < 2) throw new UserError(`routing transfer: needs at least 2 traces, got ${tasks.length}`);
  const common = [...tasks[0].runnable].filter((k) => tasks.every((t) => t.runnable.has(k) && t.ms.has(k)));
  if (common.length === 0) throw new UserError('routing transfer: no runnable configuration is ranked on every trace');
  const best = (t: TaskRanking) => Math.min(...common.map((k) => t.ms.get(k)!));
  return tasks.map((held) => {
    const others = tasks.filter((t) => t !== held);
    const bests = others.map(best);
    const score = (k: string) => others.reduce((a, t, i) => a + Math.log(t.ms.get(k)! / bests[i]), 0) / others.length;
    const pick = common.reduce((a, k) => (score(k) < score(a) ? k : a));
    const order = [...common].sort((a, b) => held.ms.get(a)! - held.ms.get(b)!);
    const pickMs = held.ms.get(pick)!;
    return { task: held.task, pick, pickMs, best: order[0], bestMs: held.ms.get(order[0])!, regret: pickMs / held.ms.get(order[0])! - 1, rank: 1 + order.filter((k) => held.ms.get(k)! < pickMs).length, of: common.length };
  });
}

/** Spearman's rho of two tasks' predicted ms over the configurations both ranked. */
export function rankAgreement(a: TaskRanking, b: TaskRanking): number | null {
  const keys = [...a.ms.keys()].filter((k) => b.ms.has(k));
  return spearman(keys.map((k) => a.ms.get(k)!), keys.map((k) => b.ms.get(k)!));
}

export interface TransferPoint {
  batch: number;
  prompt: number;
  heldOut: HeldOut[];
  spearman: Array<{ a: string; b: string; rho: number | null }>;
  /** per task, the best predicted ms/token of any static configuration (how much static owes to where its pins came from) */
  staticBest: Array<{ task: string; ms: number }>;
}

export type StaticPins = 'own' | 'others';

export interface TransferResult {
  analysis: 'routing-transfer';
  predictedOnly: true;
  /** where static's pinned experts came from: each trace's own first half, or the other traces */
  staticPins: StaticPins;
  calibration: string;
  budgetBytes: number;
  traces: string[];
  points: TransferPoint[];
}

export function transferTable(r: TransferResult): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  return [
    '| batch | prompt | held-out task | pick on the other tasks | its predicted ms/token there | the task\'s own best | best ms/token | regret | rank |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.points.flatMap((p) => p.heldOut.map((h) => `| ${p.batch} | ${p.prompt} | ${h.task} | ${h.pick} | ${h.pickMs.toFixed(2)} | ${h.best} | ${h.bestMs.toFixed(2)} | ${pct(h.regret)} | ${h.rank} of ${h.of} |`)),
  ].join('\n');
}

/** The other traces' sequences as one corpus (static's warm-up: only the counts per layer and expert matter). */
function othersCorpus(corpora: RoutingCorpus[], i: number): RoutingCorpus {
  const others = corpora.filter((_, j) => j !== i);
  return { ...others[0], meta: { ...others[0].meta, dataset: `the other ${others.length} traces` }, sequences: others.flatMap((c) => c.sequences) };
}

/** The chart of one result: each held-out task's predicted regret per point (routing-transfer.{vl.json,svg,png}). */
export async function writeTransferChart(r: TransferResult, out: string): Promise<void> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Predicted regret of the pick made on the other tasks (static pinned from ${r.staticPins === 'own' ? 'the task itself' : 'the other tasks'})`,
    data: { values: r.points.flatMap((p) => p.heldOut.map((h) => ({ point: `B${p.batch} P${p.prompt}`, task: h.task, regret: 100 * h.regret }))) },
    width: 420,
    height: 220,
    mark: 'bar',
    encoding: {
      x: { field: 'point', type: 'nominal', sort: null, axis: { labelAngle: 0 }, title: null },
      xOffset: { field: 'task' },
      y: { field: 'regret', type: 'quantitative', title: 'predicted regret on the held-out task (%)' },
      color: { field: 'task', type: 'nominal', title: 'held-out task' },
    },
  };
  await writeChart(spec, join(out, 'routing-transfer'));
}

/** static's best predicted ms/token per task and batch with its pins from the task itself and from the others. */
export function staticPinsTable(own: TransferResult, others: TransferResult): string {
  if (own.staticPins !== 'own' || others.staticPins !== 'others') throw new UserError('routing transfer: staticPinsTable needs an own-pins and an others-pins result');
  const rows = own.points.flatMap((p) => {
    const q = others.points.find((x) => x.batch === p.batch && x.prompt === p.prompt);
    return p.staticBest.map((s) => {
      const o = q?.staticBest.find((x) => x.task === s.task);
      return `| ${p.batch} | ${p.prompt} | ${s.task} | ${s.ms.toFixed(2)} | ${o ? o.ms.toFixed(2) : '-'} | ${o ? `${(100 * (o.ms / s.ms - 1)).toFixed(1)}%` : '-'} |`;
    });
  });
  return ['| batch | prompt | task | static, pins from the task itself (ms/token) | pins from the other tasks | change |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

export async function runRoutingTransfer(o: { traces: string[]; calibration: string; out: string; budget: string; batches: number[]; prompts: number[]; staticPins: StaticPins }): Promise<TransferResult> {
  // leaveOneOut refuses fewer too, but only after the sweeps (minutes): refuse before them.
  if (o.traces.length < 2) throw new UserError(`option --traces: needs at least 2 traces, got ${o.traces.length}`);
  const config = parseModelConfig(LITE_CONFIG, 'embedded DeepSeek-V2-Lite config.json');
  const calibration = loadCalibration(o.calibration);
  const budgetBytes = parseByteSize('--gpu-memory', o.budget);
  const corpora = o.traces.map((path) => {
    const corpus = toSequences(readTrace(path));
    checkReplayGeometry(path, corpus, config, '--traces');
    return corpus;
  });
  const perTask = o.traces.map((path, i) => {
    const task = basename(path, extname(path));
    const staticWarmup = o.staticPins === 'others' ? othersCorpus(corpora, i) : undefined;
    let progress: ReturnType<typeof startProgress> | undefined;
    const label = `routing transfer: ${task} (static pinned from ${o.staticPins === 'own' ? 'its own first half' : 'the other traces'})`;
    const plan = planValidation({ config, modelLabel: 'embedded DeepSeek-V2-Lite config', replays: [{ path, corpus: corpora[i] }], budgetBytes, batches: o.batches, prompts: o.prompts, top: 1, calibration, staticWarmup }, (total) => {
      progress = startProgress(label, total);
      return () => progress!.tick();
    });
    progress?.done();
    return { task, plan };
  });
  const points: TransferPoint[] = perTask[0].plan.points.map((p0) => {
    const ranked = perTask.map(({ task, plan }) => ({ task, ranked: plan.points.find((x) => x.batch === p0.batch && x.prompt === p0.prompt)!.ranked }));
    const rankings: TaskRanking[] = ranked.map(({ task, ranked: rs }) => ({
      task,
      ms: new Map(rs.map((r) => [r.key, r.predictedMs.mean])),
      runnable: new Set(rs.filter((r) => r.runtimeGaps.length === 0 && r.config.prefetch !== 'oracle').map((r) => r.key)),
    }));
    const staticBest = ranked.map(({ task, ranked: rs }) => ({ task, ms: Math.min(...rs.filter((r) => r.config.policy === 'static').map((r) => r.predictedMs.mean)) }));
    const pairs = rankings.flatMap((a, i) => rankings.slice(i + 1).map((b) => ({ a: a.task, b: b.task, rho: rankAgreement(a, b) })));
    return { batch: p0.batch, prompt: p0.prompt, heldOut: leaveOneOut(rankings), spearman: pairs, staticBest };
  });
  const result: TransferResult = { analysis: 'routing-transfer', predictedOnly: true, staticPins: o.staticPins, calibration: o.calibration, budgetBytes, traces: o.traces.map((t) => basename(t)), points };
  mkdirSync(o.out, { recursive: true });
  writeFileAtomic(join(o.out, 'routing-transfer.json'), JSON.stringify(result, null, 1) + '\n');
  writeFileAtomic(join(o.out, 'table.md'), transferTable(result) + '\n');
  await writeTransferChart(result, o.out);
  return result;
}

if (process.argv[1] && process.argv[1].endsWith('routing-transfer.js')) {
  runRoutingTransfer({
    traces: requiredScriptArg('--traces').split(','),
    calibration: requiredScriptArg('--calibration'),
    out: requiredScriptArg('--out'),
    budget: optionalScriptArg('--gpu-memory', '12GiB'),
    batches: parseIntListOption('--batch', optionalScriptArg('--batch', '1,16'), 1, 4096),
    prompts: parseIntListOption('--prompt', optionalScriptArg('--prompt', '128'), 1, 1 << 20),
    staticPins: parseChoiceOption('--static-pins', optionalScriptArg('--static-pins', 'own'), ['own', 'others'] as const),
  })
    .then((r) => process.stdout.write(transferTable(r) + '\n'))
    .catch((err: Error) => {
      process.stderr.write(`routing-transfer: ${err.message}\n`);
      process.exitCode = 1;
    });
}
