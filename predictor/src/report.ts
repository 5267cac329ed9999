/**
 * reports/predictor/README.md from trained predictors: per-layer recall against the baselines (the
 * issue's must-show), recall and precision at several budgets, recall against the lookahead k, and the
 * simulated gain of prefetching with the predictor. Reads every RUNS/<name>/predictor.json (metrics and
 * provenance are in it), writes README.md, report.json (every number shown) and charts (writeChart).
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { UserError } from '../../core/src/errors.js';
import { writeFileAtomic } from '../../core/src/atomic-file.js';
import { writeChart } from '../../core/src/charts.js';
import { BASELINE_LABELS, type BaselineName } from './baselines.js';
import type { EvalReport } from './evaluate.js';
import { minMargin } from './format.js';
import { PredictorRuntime } from './infer.js';
import { MANIFEST_FILE, readPredictorDir, type PredictorManifest } from './predictor-dir.js';
import { GATE_GRID, SIM_SETTINGS, simulateGain, type SimGain, type SimPoint } from './report-sim.js';

export interface ReportOptions {
  runsDir: string;
  outDir: string;
  log?: (line: string) => void;
  /** Run the simulator for the k = 1 runs (default true). */
  simulate?: boolean;
}

interface Run {
  name: string;
  manifest: PredictorManifest;
  runtime: PredictorRuntime;
  report: EvalReport;
  label: string;
  sim?: SimGain[] | string;
}

const pct = (x: number) => (100 * x).toFixed(1);
const signed = (x: number) => (x >= 0 ? '+' : '') + pct(x);

function splitLabel(m: PredictorManifest): string {
  const tasks = (parts: { task: string }[]) => [...new Set(parts.map((p) => p.task))].join(' + ');
  const s = m.training.split;
  return s.kind === 'task' ? `task held out: trained on ${tasks(s.train)}, tested on ${tasks(s.test)}` : `sequences held out (20% of each of ${tasks(s.test)})`;
}

function routingLabel(runs: Run[]): string {
  const rows = new Map<string, string>();
  for (const r of runs) for (const t of r.manifest.training.routing) rows.set(t.dataset, `${t.dataset} (${t.routingSource} routing of ${t.modelId})`);
  return [...rows.values()].sort().join('; ');
}

function loadRuns(runsDir: string): Run[] {
  if (!existsSync(runsDir)) throw new UserError(`option --runs: ${runsDir}: no such directory`);
  const runs: Run[] = [];
  for (const name of readdirSync(runsDir).sort()) {
    const dir = join(runsDir, name);
    if (!existsSync(join(dir, MANIFEST_FILE))) continue;
    const p = readPredictorDir(dir);
    if (!p.manifest.evaluation) continue;
    runs.push({ name, manifest: p.manifest, runtime: new PredictorRuntime(p.manifest, p.weights), report: p.manifest.evaluation.test, label: splitLabel(p.manifest) });
  }
  if (runs.length === 0) throw new UserError(`option --runs: ${runsDir} holds no trained predictors (subfolders with ${MANIFEST_FILE})`);
  // k, then by-sequence before by-task, then name.
  return runs.sort((a, b) => a.manifest.lookahead - b.manifest.lookahead || a.manifest.training.split.kind.localeCompare(b.manifest.training.split.kind) || a.name.localeCompare(b.name));
}

const METHODS = (r: EvalReport): ('predictor' | BaselineName)[] => ['predictor', ...(Object.keys(r.baselines) as BaselineName[])];
const methodLabel = (m: 'predictor' | BaselineName) => (m === 'predictor' ? 'predictor (MLP)' : BASELINE_LABELS[m]);
const metricsOf = (r: EvalReport, m: 'predictor' | BaselineName) => (m === 'predictor' ? r.predictor! : r.baselines[m]!);

function perLayerTable(r: EvalReport, topK: number): string {
  const methods = METHODS(r);
  const lines = [`| target layer | ${methods.map(methodLabel).join(' | ')} | lead over the better of previous token and most popular |`, `|${' --- |'.repeat(methods.length + 2)}`];
  r.predictor!.perLayer.forEach((row, n) => {
    const vals = methods.map((m) => metricsOf(r, m).perLayer[n].at[topK].recall);
    const best = Math.max(vals[methods.indexOf('previousToken')], vals[methods.indexOf('popularity')]);
    lines.push(`| ${row.layer} | ${vals.map(pct).join(' | ')} | ${signed(vals[0] - best)} |`);
  });
  return lines.join('\n');
}

function budgetTable(r: EvalReport): string {
  const methods = METHODS(r);
  const lines = [`| budget | ${methods.map((m) => `${methodLabel(m)} recall / precision`).join(' | ')} |`, `|${' --- |'.repeat(methods.length + 1)}`];
  for (const b of r.budgets) lines.push(`| ${b} | ${methods.map((m) => `${pct(metricsOf(r, m).overall.at[b].recall)} / ${pct(metricsOf(r, m).overall.at[b].precision)}`).join(' | ')} |`);
  return lines.join('\n');
}

function perLayerChart(run: Run, topK: number): TopLevelSpec {
  const r = run.report;
  const values = METHODS(r).flatMap((m) => metricsOf(r, m).perLayer.map((row) => ({ layer: row.layer, method: methodLabel(m), recall: row.at[topK].recall })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `Recall@${topK} per target layer, k = ${run.manifest.lookahead}`, subtitle: [run.label, 'real ESFT-vanilla-lite routing (ESFT expert-score dumps, imported)'] },
    width: 520,
    height: 260,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'layer', type: 'quantitative', title: 'target MoE layer (model layer id)', scale: { zero: false } },
      y: { field: 'recall', type: 'quantitative', title: `recall@${topK}`, axis: { format: '%' }, scale: { domain: [0, 1] } },
      color: { field: 'method', type: 'nominal', title: null },
    },
  };
}

function recallVsKChart(rows: { k: number; split: string; method: string; recall: number }[], topK: number): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `Recall@${topK} against the lookahead k (all target layers)`, subtitle: 'real ESFT-vanilla-lite routing (ESFT expert-score dumps, imported)' },
    data: { values: rows },
    facet: { column: { field: 'split', type: 'nominal', title: null, header: { labelLimit: 380 } } },
    spec: {
      width: 300,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'k', type: 'ordinal', title: 'lookahead k (layers)', axis: { labelAngle: 0 } },
        y: { field: 'recall', type: 'quantitative', title: `recall@${topK}`, axis: { format: '%' }, scale: { domain: [0, 1] } },
        color: { field: 'method', type: 'nominal', title: null },
      },
    },
  };
}

function simChart(rows: { run: string; prefetch: string; metric: string; value: number }[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Simulated prefetching with the predictor (k = 1)', subtitle: `held-out sequences, ${SIM_SETTINGS.policy}, ${SIM_SETTINGS.cacheSize} experts cached per layer, batch ${SIM_SETTINGS.batch}; real ESFT-vanilla-lite routing` },
    data: { values: rows },
    facet: { column: { field: 'metric', type: 'nominal', title: null }, row: { field: 'run', type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'left', labelLimit: 300 } } },
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 240,
      height: 50,
      mark: 'bar',
      encoding: {
        y: { field: 'prefetch', type: 'nominal', title: null, sort: null },
        x: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'prefetch', type: 'nominal', legend: null },
      },
    },
  };
}

/** The findings in a few lines, from the numbers (nothing here is written by hand). */
function summary(k1: Run[], topK: number): string[] {
  const out = ['## Summary', ''];
  for (const r of k1) {
    const mm = minMargin(r.report, topK);
    const everyLayer = mm.margin > 0;
    out.push(`- **${r.name}** (${r.label}): recall@${topK} ${pct(r.report.predictor!.overall.at[topK].recall)}% against ${pct(r.report.baselines.previousToken!.overall.at[topK].recall)}% (previous token) and ${pct(r.report.baselines.popularity!.overall.at[topK].recall)}% (most popular); ${everyLayer ? 'above both on every target layer' : 'NOT above both on every target layer'}, weakest layer's lead ${signed(mm.margin)} points (layer ${mm.layer}).`);
    if (r.sim && typeof r.sim !== 'string') {
      for (const s of r.sim) {
        const dt = (p: SimPoint) => signed((p.timePerTokenMs - s.none.timePerTokenMs) / s.none.timePerTokenMs);
        out.push(`  - simulated, misses ${s.miss}: gated prefetch (p >= ${s.gate}) hit rate ${pct(s.none.hitRate)}% -> ${pct(s.gated.hitRate)}%, time per token ${dt(s.gated)}%; plain top-${topK}: ${pct(s.topK.hitRate)}%, ${dt(s.topK)}%; oracle bound: ${dt(s.oracle)}%; without prefetch the copy engine is busy ${pct(s.none.copyBusyShare)}% of each step.`);
      }
    }
  }
  out.push('');
  out.push('How to read the simulation: a correct prefetch does not save a transfer, it only starts it earlier, so its gain is bounded by the compute it can overlap (the oracle row); a wrong one costs a whole transfer and a cache slot. Where the copy engine is the bottleneck (misses fetched), that bound is small (the oracle row) and only very confident predictions break even. Where misses run on the CPU, the copy engine is busy filling the cache in the background, and prefetches compete with those fills: with the measured H200 profile (two CPU experts at a time) even the oracle is slower there, so the CPU view shows a cost, not a gain.');
  out.push('');
  return out;
}

export async function writePredictorReport(o: ReportOptions): Promise<string> {
  const log = o.log ?? (() => {});
  const runs = loadRuns(o.runsDir);
  mkdirSync(o.outDir, { recursive: true });
  const topK = runs[0].manifest.geometry.topK;
  const md: string[] = [];
  const data: Record<string, unknown> = { generatedAt: new Date().toISOString(), runs: {} };
  const chart = async (spec: TopLevelSpec, base: string) => {
    await writeChart(spec, join(o.outDir, base));
    return `![${base}](${base}.svg)`;
  };

  md.push('# Expert predictor: does an MLP at layer i know which experts layer i+k will use?');
  md.push('');
  // Say what was run: the report is written from whatever predictors --runs holds, ESFT or not.
  const datasets = [...new Set(runs.flatMap((r) => r.manifest.training.routing.map((t) => t.dataset)))].sort();
  const esftOnly = runs.every((r) => r.manifest.training.routing.every((t) => t.dataset.startsWith('esft/') && t.routingSource === 'imported'));
  const synthetic = runs.some((r) => r.manifest.training.routing.some((t) => /synthetic/i.test(t.dataset) || /synthetic/i.test(t.modelId)));
  md.push(`Generated by \`train-predictor --report ${o.outDir} --runs ${o.runsDir}\` from ${runs.length} trained predictor${runs.length === 1 ? '' : 's'} (${runs.map((r) => r.name).join(', ')})${esftOnly ? '; `predictor/scripts/esft-report.sh` trains the full ESFT set and runs this' : ''}. Do not edit by hand.`);
  md.push('');
  const g = runs[0].manifest.geometry;
  md.push(`**Routing used by every figure:** ${routingLabel(runs)}. Geometry: ${g.moeLayers.length} MoE layers, ${g.numExperts} routed experts, top-${g.topK}. ` +
    (esftOnly
      ? `These are the real router choices of ESFT-vanilla-lite (the DeepSeek-V2-Lite architecture), teacher-forced over the ESFT task${datasets.length === 1 ? '' : 's'} ${datasets.join(', ')}, imported with \`traces import esft\`. No synthetic routing is used.`
      : synthetic
        ? '**Some of this routing is synthetic** (generated, not a model\'s choices): the figures test the pipeline, not a model.'
        : `Routing sources: ${[...new Set(runs.flatMap((r) => r.manifest.training.routing.map((t) => t.routingSource)))].join(', ')}.`));
  md.push('');
  md.push('**Predictor.** One MLP per lookahead k (ReLU hidden layers, 64 logits, sigmoid binary cross-entropy against the multi-hot top-6 of layer i+k), trained with TensorFlow.js; features at (token t, layer i): the token\'s routing at layers i, i-1, i-2 (multi-hot weighted by routing weight), layer i\'s routing again in a per-layer slot (so each (layer, expert) has its own input embedding), the previous token\'s experts at layer i+k, and the layer index. Ranked by logit; the top B experts are the prediction at budget B.');
  md.push('');
  md.push(`**Baselines** (same samples, same metrics): *previous token* = the experts the previous token used at layer i+k (by routing weight; budgets above 6 and the first token are filled with the most popular experts); *most popular* = layer i+k's most used experts on the training data. The *next-layer gate* baseline (layer i+1's router applied to layer i's input) needs a trace with \`gate_next\`; the ESFT dumps have none, so it does not appear here.`);
  md.push('');
  md.push(`Recall@B = |top-B ∩ true top-${topK}| / ${topK}; precision@B = |top-B ∩ true top-${topK}| / B. All numbers are on held-out data: whole tasks never seen in training, or 20% of the sequences of each task (seeded). The ESFT sequences of one task share prompt prefixes, so the split by sequence is the easier one; the split by task is the honest test of generalisation.`);
  md.push('');

  // The summary is filled in at the end, once the simulations have run.
  const summaryAt = md.length;
  // Must show: k = 1, per layer.
  const k1 = runs.filter((r) => r.manifest.lookahead === 1);
  md.push(`## k = 1: recall@${topK} per target layer`);
  md.push('');
  md.push(`| run | held out | test samples | recall@${topK} predictor | previous token | most popular | weakest layer: lead over the better of previous token and most popular | layers where the predictor leads both |`);
  md.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of k1) {
    const mm = minMargin(r.report, topK);
    const wins = r.report.predictor!.perLayer.filter((row, n) => row.at[topK].recall > Math.max(r.report.baselines.previousToken!.perLayer[n].at[topK].recall, r.report.baselines.popularity!.perLayer[n].at[topK].recall)).length;
    md.push(`| ${r.name} | ${r.label} | ${r.report.samples} | ${pct(r.report.predictor!.overall.at[topK].recall)} | ${pct(r.report.baselines.previousToken!.overall.at[topK].recall)} | ${pct(r.report.baselines.popularity!.overall.at[topK].recall)} | ${signed(mm.margin)} points (layer ${mm.layer}) | ${wins} of ${r.report.predictor!.perLayer.length} |`);
  }
  md.push('');
  for (const r of k1) {
    md.push(`### ${r.name}: ${r.label}`);
    md.push('');
    md.push(await chart(perLayerChart(r, topK), `recall-per-layer-${r.name}`));
    md.push('');
    md.push(perLayerTable(r.report, topK));
    md.push('');
    md.push('Overall, at several prediction budgets (%):');
    md.push('');
    md.push(budgetTable(r.report));
    md.push('');
  }

  // Recall against k.
  const shortLabel = (m: PredictorManifest) =>
    m.training.split.kind === 'task' ? `tested on ${[...new Set(m.training.split.test.map((p) => p.task))].join(' + ')} (task unseen)` : 'sequences held out';
  const kRows = runs.flatMap((r) => METHODS(r.report).map((m) => ({ k: r.manifest.lookahead, split: shortLabel(r.manifest), method: methodLabel(m), recall: metricsOf(r.report, m).overall.at[topK].recall })));
  const splitsWithSeveralK = new Set(kRows.map((x) => x.split).filter((s) => new Set(kRows.filter((y) => y.split === s).map((y) => y.k)).size > 1));
  md.push(`## Recall@${topK} against the lookahead k`);
  md.push('');
  if (splitsWithSeveralK.size > 0) {
    md.push(await chart(recallVsKChart(kRows.filter((x) => splitsWithSeveralK.has(x.split)), topK), 'recall-vs-k'));
    md.push('');
  }
  md.push(`| run | k | held out | predictor | previous token | most popular | lead over the better of previous token and most popular (all layers) | weakest layer's lead |`);
  md.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of runs) {
    const p = r.report.predictor!.overall.at[topK].recall;
    const prev = r.report.baselines.previousToken!.overall.at[topK].recall;
    const pop = r.report.baselines.popularity!.overall.at[topK].recall;
    const mm = minMargin(r.report, topK);
    md.push(`| ${r.name} | ${r.manifest.lookahead} | ${r.label} | ${pct(p)} | ${pct(prev)} | ${pct(pop)} | ${signed(p - Math.max(prev, pop))} | ${signed(mm.margin)} (layer ${mm.layer}) |`);
  }
  md.push('');

  // Simulated gain.
  md.push('## Simulated gain: prefetching the predicted experts');
  md.push('');
  const simRows: { run: string; prefetch: string; metric: string; value: number }[] = [];
  if (o.simulate === false) {
    md.push('_Not run (report written with simulate = false)._');
  } else {
    md.push(`Held-out sequences of each k = 1 run replayed by the simulator (sim/, \`runSimulation\`): ${SIM_SETTINGS.policy}, ${SIM_SETTINGS.cacheSize} experts cached per MoE layer, batch ${SIM_SETTINGS.batch}. Prefetchers: *none*; *oracle* (the true experts of layer i+1, issued at layer i: the most any lookahead-1 predictor can give); *predicted top-${topK}* (the predictor's ${topK} best, issued at layer i for layer i+1); *predicted, gated* (the same, keeping only experts whose predicted probability reaches a gate; the gate is the one of ${GATE_GRID.join(', ')} with the lowest time per token on the run's **validation** sequences, then applied unchanged to the test sequences). Misses: *fetch* (the issue's setting: a missing expert is copied from host memory) and, as a second view, *cpu* (a missing expert runs on the CPU). Same routing as above.`);
    md.push('');
    md.push('| run | held out | tokens | misses | prefetch | hit rate | time per token (ms) | vs none | prefetches issued | prefetch precision |');
    md.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of k1) {
      log(`simulating ${r.name}`);
      r.sim = simulateGain(r.manifest, r.runtime, log);
      if (typeof r.sim === 'string') {
        md.push(`| ${r.name} | ${r.label} | not simulated: ${r.sim} | | | | | | | |`);
        continue;
      }
      for (const s of r.sim) {
        const rows: [string, SimPoint][] = [['none', s.none], [`predicted top-${topK}`, s.topK], [`predicted, gated p >= ${s.gate}`, s.gated], ['oracle', s.oracle]];
        for (const [name, p] of rows) {
          const vs = name === 'none' ? '' : `${signed((p.timePerTokenMs - s.none.timePerTokenMs) / s.none.timePerTokenMs)}% time, ${signed(p.hitRate - s.none.hitRate)} points hit rate`;
          md.push(`| ${r.name} | ${r.label} | ${s.tokens} | ${s.miss} | ${name} | ${pct(p.hitRate)}% | ${p.timePerTokenMs.toFixed(2)} | ${vs} | ${name === 'none' ? 0 : p.prefetchIssued} | ${name === 'none' ? '' : pct(p.prefetchPrecision) + '%'} |`);
          const prefetch = name.startsWith('predicted, gated') ? 'predicted, gated' : name;
          simRows.push({ run: `${r.name}, misses ${s.miss}`, prefetch, metric: 'hit rate', value: p.hitRate }, { run: `${r.name}, misses ${s.miss}`, prefetch, metric: 'time per token (ms)', value: p.timePerTokenMs });
        }
      }
    }
    md.push('');
    const sims = k1.filter((r) => r.sim && typeof r.sim !== 'string');
    if (sims.length > 0) {
      md.push(await chart(simChart(simRows), 'sim-gain'));
      md.push('');
      md.push(`Cost model: ${(sims[0].sim as SimGain[])[0].calibration}.`);
      md.push('');
      md.push('The gate on the validation sequences (time per token in ms, hit rate):');
      md.push('');
      md.push(`| run | misses | none | ${GATE_GRID.map((g) => (g === 0 ? `top-${topK}` : `p >= ${g}`)).join(' | ')} |`);
      md.push(`|${' --- |'.repeat(GATE_GRID.length + 3)}`);
      for (const r of sims) {
        for (const s of r.sim as SimGain[]) {
          md.push(`| ${r.name} | ${s.miss} | ${s.validation.none.timePerTokenMs.toFixed(2)}, ${pct(s.validation.none.hitRate)}% | ${s.validation.gates.map((g) => `${g.result.timePerTokenMs.toFixed(2)}, ${pct(g.result.hitRate)}%${g.gate === s.gate ? ' (chosen)' : ''}`).join(' | ')} |`);
        }
      }
    }
  }
  md.push('');

  md.push('## Training');
  md.push('');
  md.push('| run | k | backend | hidden | samples train / val / test | epochs run (best) | early stop | seconds per epoch |');
  md.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of runs) {
    const t = r.manifest.training;
    const secs = t.history.reduce((a, h) => a + h.seconds, 0) / Math.max(1, t.history.length);
    md.push(`| ${r.name} | ${r.manifest.lookahead} | ${t.backend} | ${r.manifest.model.hidden.join(', ')} | ${t.samples.train} / ${t.samples.val} / ${t.samples.test} | ${t.history.length} (${t.bestEpoch}) | ${t.stoppedEarly ? 'yes' : 'no'} | ${secs.toFixed(0)} |`);
    (data.runs as Record<string, unknown>)[r.name] = { lookahead: r.manifest.lookahead, label: r.label, training: { ...t, split: { kind: t.split.kind, test: t.split.test.map((p) => ({ task: p.task, sequences: p.seqs.length })) } }, evaluation: r.report, sim: r.sim ?? null };
  }
  md.push('');
  md.push('Timings are wall-clock on the 2-core development machine while other work ran beside it; they show scale, not speed.');
  const stillLearning = runs.filter((r) => r.manifest.training.bestEpoch === r.manifest.training.history.length && !r.manifest.training.stoppedEarly);
  if (stillLearning.length > 0) {
    md.push('');
    md.push(`${stillLearning.length} of ${runs.length} runs had their best validation loss in their last epoch (${stillLearning.map((r) => r.name).join(', ')}): they were still improving when the epoch limit stopped them, so the recall figures above are a floor for this architecture, not its limit.`);
  }
  md.push('');
  md.push(`Every number above is in [report.json](report.json). Predictors were read from \`${o.runsDir}\` (not committed: weights are about 2 MB each; the script regenerates them).`);
  md.push('');
  md.splice(summaryAt, 0, ...summary(k1, topK));
  writeFileAtomic(join(o.outDir, 'report.json'), JSON.stringify(data, null, 2) + '\n');
  const readme = join(o.outDir, 'README.md');
  writeFileAtomic(readme, md.join('\n'));
  return readme;
}
