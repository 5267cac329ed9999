/**
 * `simulate`: replay a routing trace through the offloading simulator (sim/). A thin shell: options are
 * parsed and checked here, the work is sim/src's. Without --trace it runs on the shipped sample trace.
 */
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceListOption, parseChoiceOption, parseFloatOption, parseIntListOption, parseIntOption } from '../../core/src/options.js';
import { startProgress } from '../../core/src/progress.js';
import { readTrace } from '../../traces/src/reader.js';
import { toSequences } from '../../traces/src/sequences.js';
import { POLICY_NAMES, type PolicyName } from '../../sim/src/cache/types.js';
import { defaultCalibration, loadCalibration } from '../../sim/src/cost/calibration.js';
import { attachPredictedColumn } from '../../sim/src/prefetch/predicted-column.js';
import { PREFETCH_NAMES, type PrefetchName } from '../../sim/src/prefetch/sources.js';
import { formatHeader, formatTable, TABLE_NOTES } from '../../sim/src/report/table.js';
import { writeSweepOutputs } from '../../sim/src/report/outputs.js';
import { sampleTracePath } from '../../sim/src/sample.js';
import { runSweep, sweepSize, type SweepGrid } from '../../sim/src/sweep.js';
import { MISS_MODES, type MissMode } from '../../sim/src/timing/engine.js';

const ALL_POLICIES = POLICY_NAMES.join(',');

export function register(program: Command): void {
  program
    .command('simulate')
    .description('replay a routing trace through the expert-offloading simulator: hit rate, bytes moved, predicted time per token (sim/README.md)')
    .option('--trace <file>', 'trace v1 file (default: the shipped synthetic sample, traces/samples/)')
    .option('--policy <list>', `cache policy or comma list: ${POLICY_NAMES.join(', ')}`, ALL_POLICIES)
    .option('--cache <n>', 'expert slots per MoE layer', '16')
    .option('--batch <n>', 'sequences decoded together (lanes)', '1')
    .option('--prefetch <name>', `prefetcher: ${PREFETCH_NAMES.join(', ')}`, 'none')
    .option('--miss <mode>', `how a miss is served: ${MISS_MODES.join(', ')}`, 'fetch')
    .option('--calibration <file>', 'calibration profile JSON (default: sim/calibration/h200-measured.json, measured by calibrate on an H200)')
    .option('--warmup <file>', 'trace whose expert popularity pins the static policy (default: first half of the sequences of --trace)')
    .option('--predictor <dir>', 'trained predictor (train-predictor --out DIR) whose predictions feed --prefetch predicted')
    .option('--predictor-budget <n>', 'experts the predictor names per token and layer (default 6)')
    .option('--predictor-min-prob <p>', 'leave out predicted experts below this probability (default 0: keep all)')
    .option('--json', 'print JSON (one object for one configuration, a list otherwise)')
    .option('--sweep', 'run a grid (--policies, --caches, --batches, --prefetchers, --misses) and write results and charts to --out')
    .option('--policies <list>', 'sweep: policies', ALL_POLICIES)
    .option('--caches <list>', 'sweep: cache sizes', '4,8,16,24,32,48')
    .option('--batches <list>', 'sweep: batch sizes', '1')
    .option('--prefetchers <list>', 'sweep: prefetchers', 'none')
    .option('--misses <list>', 'sweep: miss modes', 'fetch')
    .option('--out <dir>', 'sweep: output folder (default reports/sim/<trace name>/)')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      await simulateAction(o);
    });
}

interface SimulateOptions {
  trace?: string;
  policy: string;
  cache: string;
  batch: string;
  prefetch: string;
  miss: string;
  calibration?: string;
  warmup?: string;
  predictor?: string;
  predictorBudget?: string;
  predictorMinProb?: string;
  json?: boolean;
  sweep?: boolean;
  policies: string;
  caches: string;
  batches: string;
  prefetchers: string;
  misses: string;
  out?: string;
  quiet?: boolean;
}

async function simulateAction(o: SimulateOptions): Promise<void> {
  // Parse every option before reading anything, so a typo fails at once.
  const grid: SweepGrid = o.sweep
    ? {
        policies: parseChoiceListOption('--policies', o.policies, POLICY_NAMES) as PolicyName[],
        caches: parseIntListOption('--caches', o.caches, 1, 65535),
        batches: parseIntListOption('--batches', o.batches, 1, 65535),
        prefetchers: parseChoiceListOption('--prefetchers', o.prefetchers, PREFETCH_NAMES) as PrefetchName[],
        misses: parseChoiceListOption('--misses', o.misses, MISS_MODES) as MissMode[],
      }
    : {
        policies: parseChoiceListOption('--policy', o.policy, POLICY_NAMES) as PolicyName[],
        caches: [parseIntOption('--cache', o.cache, 1, 65535)],
        batches: [parseIntOption('--batch', o.batch, 1, 65535)],
        prefetchers: [parseChoiceOption('--prefetch', o.prefetch, PREFETCH_NAMES)],
        misses: [parseChoiceOption('--miss', o.miss, MISS_MODES)],
      };
  const predictorBudget = parseIntOption('--predictor-budget', o.predictorBudget ?? '6', 1, 65535);
  const predictorMinProb = parseFloatOption('--predictor-min-prob', o.predictorMinProb ?? '0', 0, 1);
  if (o.predictor === undefined && (o.predictorBudget !== undefined || o.predictorMinProb !== undefined)) {
    throw new UserError('options --predictor-budget and --predictor-min-prob need --predictor DIR');
  }
  const tracePath = o.trace ?? sampleTracePath();
  if (o.trace !== undefined && !existsSync(o.trace)) throw new UserError(`option --trace: ${o.trace}: no such file`);
  if (o.warmup !== undefined && !existsSync(o.warmup)) throw new UserError(`option --warmup: ${o.warmup}: no such file`);
  if (o.calibration !== undefined && !existsSync(o.calibration)) throw new UserError(`option --calibration: ${o.calibration}: no such file`);
  if (o.predictor !== undefined && (!existsSync(o.predictor) || !statSync(o.predictor).isDirectory())) {
    throw new UserError(`option --predictor: ${o.predictor}: not a directory`);
  }
  const calibration = o.calibration ? loadCalibration(o.calibration) : defaultCalibration();
  const table = readTrace(tracePath);
  const corpus = toSequences(table);
  attachPredictedColumn(table, corpus);
  if (o.predictor !== undefined) {
    // Loaded on demand: the predictor's inference is pure TypeScript, but only this option needs it.
    const { annotateCorpus } = await import('../../predictor/src/annotate.js');
    annotateCorpus(corpus, o.predictor, predictorBudget, { minProbability: predictorMinProb });
  }
  const warmup = o.warmup ? toSequences(readTrace(o.warmup)) : undefined;
  const base = { calibration, warmup };

  const total = sweepSize(grid);
  const progress = startProgress('simulating', total, { quiet: o.quiet || !o.sweep });
  let results;
  try {
    results = runSweep(corpus, grid, base, () => progress.tick());
  } finally {
    progress.done();
  }
  const traceName = basename(tracePath, extname(tracePath));
  const rel = relative(process.cwd(), resolve(tracePath));
  const shownPath = rel && !rel.startsWith('..') ? rel : resolve(tracePath);

  if (o.sweep) {
    const out = o.out ?? join('reports', 'sim', traceName);
    const files = await writeSweepOutputs(out, results, {
      tracePath: shownPath,
      traceName,
      generatedBy: `moe-offload simulate --sweep --policies ${grid.policies.join(',')} --caches ${grid.caches.join(',')} --batches ${grid.batches.join(',')} --prefetchers ${grid.prefetchers.join(',')} --misses ${grid.misses.join(',')}`,
    });
    if (o.json) process.stdout.write(JSON.stringify({ out, files, results }, null, 2) + '\n');
    else process.stdout.write(`${formatHeader(shownPath, results)}\n\n${formatTable(results)}\n\n${TABLE_NOTES}\nwrote ${files.length} files to ${out}\n`);
    return;
  }
  if (o.json) {
    const payload = results.length === 1 ? { traceFile: shownPath, ...results[0] } : results.map((r) => ({ traceFile: shownPath, ...r }));
    process.stdout.write(JSON.stringify(payload, null, 2) + '\n');
    return;
  }
  const cfg = results[0].config;
  process.stdout.write(
    `${formatHeader(shownPath, results)}\nconfig       cache ${cfg.cacheSize} experts/layer, batch ${cfg.batch}, prefetch ${cfg.prefetch}, miss ${cfg.miss}\n\n${formatTable(results)}\n\n${TABLE_NOTES}\n`,
  );
}
