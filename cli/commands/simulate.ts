/**
 * `simulate`: replay a routing trace through the offloading simulator (sim/). A thin shell: options are
 * parsed and checked here, the work is sim/src's. Without --trace it runs on the shipped sample trace.
 */
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceListOption, parseChoiceOption, parseFloatOption, parseIntListOption, parseIntOption } from '../../core/src/options.js';
import { checkOutputDir } from '../../core/src/output-path.js';
import { startProgress } from '../../core/src/progress.js';
import { checkAgainstTrace } from '../../sim/src/trace-fit.js';
import { readTrace } from '../../traces/src/reader.js';
import { toSequences } from '../../traces/src/sequences.js';
import { POLICY_NAMES, type PolicyName } from '../../sim/src/cache/types.js';
import { defaultCalibration, loadCalibration } from '../../sim/src/cost/calibration.js';
import { costModelForDtype } from '../../sim/src/cost/expert-dtype.js';
import { EXPERT_DTYPES } from '../../sim/src/cost/expert-layout.js';
import { attachPredictedColumn } from '../../sim/src/prefetch/predicted-column.js';
import { PREFETCH_NAMES, type PrefetchName } from '../../sim/src/prefetch/sources.js';
import { formatHeader, formatTable, TABLE_NOTES } from '../../sim/src/report/table.js';
import { writeSweepOutputs } from '../../sim/src/report/outputs.js';
import { sampleTracePath } from '../../sim/src/sample.js';
import { runSweep, sweepSize, type SweepGrid } from '../../sim/src/sweep.js';
import { CPU_FILLS, cpuFillConfig, DEFAULT_CPU_FILL, MISS_MODES, type MissMode } from '../../sim/src/timing/engine.js';
import { CPU_ESTIMATES, DEFAULT_CPU_ESTIMATE } from '../../sim/src/cost/cpu-correction.js';

const ALL_POLICIES = POLICY_NAMES.join(',');
const SWEEP_DEFAULTS = { policies: ALL_POLICIES, caches: '4,8,16,24,32,48', batches: '1', prefetchers: 'none', misses: 'fetch' };
/** Options of one mode that do nothing in the other: named, they are a mistake worth reporting. */
const SINGLE_ONLY = [['policy', '--policy', '--policies'], ['cache', '--cache', '--caches'], ['batch', '--batch', '--batches'], ['prefetch', '--prefetch', '--prefetchers'], ['miss', '--miss', '--misses']] as const;
const SWEEP_ONLY = [['policies', '--policies'], ['caches', '--caches'], ['batches', '--batches'], ['prefetchers', '--prefetchers'], ['misses', '--misses'], ['out', '--out'], ['force', '--force']] as const;

export function register(program: Command): void {
  program
    .command('simulate')
    .description('replay a routing trace through the expert-offloading simulator: hit rate, bytes moved, predicted time per token (sim/README.md)')
    .option('--trace <file>', 'trace v1 file (default: the shipped synthetic sample, traces/samples/)')
    .option('--policy <list>', `cache policy or comma list: ${POLICY_NAMES.join(', ')} (default: all)`)
    .option('--cache <n>', 'expert slots per MoE layer (default 16)')
    .option('--batch <n>', 'sequences decoded together (lanes; default 1)')
    .option('--prefetch <name>', `prefetcher: ${PREFETCH_NAMES.join(', ')} (default none)`)
    .option('--miss <mode>', `how a miss is served: ${MISS_MODES.join(', ')} (default fetch)`)
    .option('--cpu-fill <how>', `--miss cpu/hybrid: what becomes of a miss computed on the CPU: ${CPU_FILLS.join(', ')} (default ${DEFAULT_CPU_FILL}; as bench's)`)
    .option('--cpu-estimate <how>', `--miss cpu/hybrid: the hybrid rule's CPU times: ${CPU_ESTIMATES.join(' or ')} (default ${DEFAULT_CPU_ESTIMATE}, as the runtime's; measured: the profile's corrected by the simulated run's finished CPU jobs, as the runtime's --cpu-estimate measured does; they differ when the profile's cpu.jobMs differ from its expertMs)`)
    .option('--calibration <file>', 'calibration profile JSON (default: sim/calibration/h200-measured.json, measured by calibrate on an H200)')
    .option('--expert-dtype <dtype>', `routed experts stored as ${EXPERT_DTYPES.join(', ')}: the profile's measured entry for the dtype, or its bf16 figures scaled by bytes (with a warning) (default bf16)`)
    .option('--expert-group <n>', 'with --expert-dtype int4: inputs per group (default 64)')
    .option('--warmup <file>', 'trace whose expert popularity pins the static policy (default: first half of the sequences of --trace)')
    .option('--predictor <dir>', 'trained predictor (train-predictor --out DIR) whose predictions feed --prefetch predicted')
    .option('--predictor-budget <n>', 'experts the predictor names per token and layer (default 6)')
    .option('--predictor-min-prob <p>', 'leave out predicted experts below this probability (default 0: keep all)')
    .option('--json', 'print JSON (one object for one configuration, a list otherwise)')
    .option('--sweep', 'run a grid (--policies, --caches, --batches, --prefetchers, --misses) and write results and charts to --out')
    .option('--policies <list>', 'sweep: policies (default: all)')
    .option('--caches <list>', `sweep: cache sizes (default ${SWEEP_DEFAULTS.caches})`)
    .option('--batches <list>', 'sweep: batch sizes (default 1)')
    .option('--prefetchers <list>', 'sweep: prefetchers (default none)')
    .option('--misses <list>', 'sweep: miss modes (default fetch)')
    .option('--out <dir>', 'sweep: output folder (default reports/sim/<trace name>/)')
    .option('--force', 'sweep: replace the --out folder if it exists')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      await simulateAction(o);
    });
}

interface SimulateOptions {
  trace?: string;
  policy?: string;
  cache?: string;
  batch?: string;
  prefetch?: string;
  miss?: string;
  cpuFill?: string;
  cpuEstimate?: string;
  calibration?: string;
  expertDtype?: string;
  expertGroup?: string;
  warmup?: string;
  predictor?: string;
  predictorBudget?: string;
  predictorMinProb?: string;
  json?: boolean;
  sweep?: boolean;
  policies?: string;
  caches?: string;
  batches?: string;
  prefetchers?: string;
  misses?: string;
  out?: string;
  force?: boolean;
  quiet?: boolean;
}

function refuseOtherMode(o: SimulateOptions): void {
  if (o.sweep) {
    for (const [key, flag, instead] of SINGLE_ONLY) if (o[key] !== undefined) throw new UserError(`option ${flag}: not used with --sweep (a sweep takes ${instead})`);
  } else {
    for (const [key, flag] of SWEEP_ONLY) if (o[key] !== undefined) throw new UserError(`option ${flag}: only used with --sweep`);
  }
}

async function simulateAction(o: SimulateOptions): Promise<void> {
  // Parse every option before reading anything, so a typo fails at once.
  refuseOtherMode(o);
  const grid: SweepGrid = o.sweep
    ? {
        policies: parseChoiceListOption('--policies', o.policies ?? SWEEP_DEFAULTS.policies, POLICY_NAMES) as PolicyName[],
        caches: parseIntListOption('--caches', o.caches ?? SWEEP_DEFAULTS.caches, 1, 65535),
        batches: parseIntListOption('--batches', o.batches ?? SWEEP_DEFAULTS.batches, 1, 65535),
        prefetchers: parseChoiceListOption('--prefetchers', o.prefetchers ?? SWEEP_DEFAULTS.prefetchers, PREFETCH_NAMES) as PrefetchName[],
        misses: parseChoiceListOption('--misses', o.misses ?? SWEEP_DEFAULTS.misses, MISS_MODES) as MissMode[],
      }
    : {
        policies: parseChoiceListOption('--policy', o.policy ?? ALL_POLICIES, POLICY_NAMES) as PolicyName[],
        caches: [parseIntOption('--cache', o.cache ?? '16', 1, 65535)],
        batches: [parseIntOption('--batch', o.batch ?? '1', 1, 65535)],
        prefetchers: [parseChoiceOption('--prefetch', o.prefetch ?? 'none', PREFETCH_NAMES)],
        misses: [parseChoiceOption('--miss', o.miss ?? 'fetch', MISS_MODES)],
      };
  const cpuFill = parseChoiceOption('--cpu-fill', o.cpuFill ?? DEFAULT_CPU_FILL, CPU_FILLS);
  if (o.cpuFill !== undefined && grid.misses.every((m) => m === 'fetch')) throw new UserError('option --cpu-fill: only with --miss (or --misses) cpu or hybrid');
  const cpuEstimate = parseChoiceOption('--cpu-estimate', o.cpuEstimate ?? DEFAULT_CPU_ESTIMATE, CPU_ESTIMATES);
  if (o.cpuEstimate !== undefined && grid.misses.every((m) => m === 'fetch')) throw new UserError('option --cpu-estimate: only with --miss (or --misses) cpu or hybrid');
  const expertDtype = parseChoiceOption('--expert-dtype', o.expertDtype ?? 'bf16', EXPERT_DTYPES);
  if (o.expertGroup !== undefined && expertDtype !== 'int4') throw new UserError('option --expert-group: only with --expert-dtype int4');
  const expertGroup = parseIntOption('--expert-group', o.expertGroup ?? '64', 2, 1 << 16);
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
  const traceName = basename(tracePath, extname(tracePath));
  const out = o.sweep ? (o.out ?? join('reports', 'sim', traceName)) : undefined;
  // Before the work: a sweep's folder is never replaced without --force (its default is the shipped report).
  if (out !== undefined) {
    checkOutputDir(out, { option: o.out === undefined ? '--out (default reports/sim/<trace name>)' : '--out', force: o.force, inputs: [tracePath, o.calibration, o.warmup, o.predictor].filter((x): x is string => x !== undefined) });
  }
  const forDtype = costModelForDtype(o.calibration ? loadCalibration(o.calibration) : defaultCalibration(), expertDtype, expertGroup);
  if (forDtype.warning) process.stderr.write(`moe-offload: warning: ${forDtype.warning}\n`);
  const calibration = forDtype.model;
  const table = readTrace(tracePath);
  const corpus = toSequences(table);
  for (const w of checkAgainstTrace(grid, corpus, calibration, tracePath, o.sweep ? '--batches' : '--batch', o.sweep ? '--caches' : '--cache')) {
    process.stderr.write(`moe-offload: warning: ${w}\n`);
  }
  attachPredictedColumn(table, corpus);
  if (o.predictor !== undefined) {
    // Loaded on demand: the predictor's inference is pure TypeScript, but only this option needs it.
    const { annotateCorpus } = await import('../../predictor/src/annotate.js');
    const predicting = startProgress('predicting experts', corpus.sequences.length, { quiet: o.quiet, unit: 'sequences' });
    try {
      annotateCorpus(corpus, o.predictor, predictorBudget, { minProbability: predictorMinProb, onSequence: () => predicting.tick() });
    } finally {
      predicting.done();
    }
  }
  const warmup = o.warmup ? toSequences(readTrace(o.warmup)) : undefined;
  const base = { calibration, warmup, cpuEstimate, ...cpuFillConfig(cpuFill) };

  const total = sweepSize(grid);
  const progress = startProgress('simulating', total, { quiet: o.quiet || !o.sweep, unit: 'configurations' });
  let results;
  try {
    results = runSweep(corpus, grid, base, () => progress.tick());
  } finally {
    progress.done();
  }
  const rel = relative(process.cwd(), resolve(tracePath));
  const shownPath = rel && !rel.startsWith('..') ? rel : resolve(tracePath);

  if (out !== undefined) {
    const files = await writeSweepOutputs(out, results, {
      tracePath: shownPath,
      traceName,
      generatedBy: `moe-offload simulate --sweep --policies ${grid.policies.join(',')} --caches ${grid.caches.join(',')} --batches ${grid.batches.join(',')} --prefetchers ${grid.prefetchers.join(',')} --misses ${grid.misses.join(',')}${grid.misses.some((m) => m !== 'fetch') ? ` --cpu-fill ${cpuFill} --cpu-estimate ${cpuEstimate}` : ''}`,
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
