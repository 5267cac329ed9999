import type { Command } from 'commander';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption, parseFloatOption, parseIntListOption, parseIntOption } from '../../core/src/options.js';
import { checkOutputDir } from '../../core/src/output-path.js';
import { startProgress } from '../../core/src/progress.js';
import { evalPredictor, trainPredictor } from '../../predictor/src/pipeline.js';
import { formatEvalReport, minMargin } from '../../predictor/src/format.js';
import { writePredictorReport } from '../../predictor/src/report.js';

interface Options {
  traces?: string;
  testTraces?: string;
  k?: string;
  out?: string;
  split?: string;
  epochs: string;
  hidden: string;
  history: string;
  perLayer: boolean;
  seed: string;
  batchSize: string;
  learningRate: string;
  backend: string;
  eval?: string;
  report?: string;
  runs?: string;
  json?: boolean;
  force?: boolean;
  quiet?: boolean;
}

const files = (v: string, name: string) => {
  const list = v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw new UserError(`option ${name}: empty list`);
  return list;
};

/** Options that belong to one mode only: naming them in another mode is a mistake worth reporting. */
function refuse(o: Options, mode: string, names: (keyof Options)[]): void {
  const flag: Record<string, string> = { testTraces: '--test-traces', k: '--k', out: '--out', split: '--split', runs: '--runs', traces: '--traces', force: '--force' };
  for (const n of names) if (o[n] !== undefined) throw new UserError(`option ${flag[n] ?? n}: not used with ${mode}`);
}

export function register(program: Command): void {
  program
    .command('train-predictor')
    .description(
      'train the MLP that predicts, at MoE layer i, the experts of layer i+k (TensorFlow.js), evaluate it against baselines and export it; ' +
        'or evaluate a trained predictor on other traces (--eval), or write the report from trained predictors (--report)',
    )
    .option('--traces <files>', 'trace v1 files, comma-separated (training data; with --eval, the traces to evaluate on)')
    .option('--test-traces <files>', 'held-out trace files (tasks not seen in training): a split by task')
    .option('--k <k>', 'lookahead: predict MoE layer i+k at layer i (default 1)')
    .option('--out <dir>', 'where to write predictor.json and weights.safetensors (a new folder)')
    .option('--force', 'replace the --out folder if it exists')
    .option('--split <kind>', 'held-out split: sequence (default) or task (with several traces: test on the last, or on --test-traces)')
    .option('--epochs <n>', 'most training epochs (early stopping may end sooner)', '8')
    .option('--hidden <widths>', 'hidden layer widths, comma-separated', '256')
    .option('--history <n>', "layers of the token's own routing used as features (i, i-1, ...)", '3')
    .option('--no-per-layer', "leave out the per-layer slot of layer i's routing (a separate input embedding per layer and expert; on by default)")
    .option('--seed <n>', 'seed of the split, the initial weights and the batch order', '1')
    .option('--batch-size <n>', 'training batch size', '512')
    .option('--learning-rate <x>', 'Adam learning rate', '0.002')
    .option('--backend <name>', 'TensorFlow.js backend: auto (tfjs-node if installed, else wasm), node, wasm, cpu', 'auto')
    .option('--eval <dir>', 'evaluate the predictor in DIR on --traces instead of training')
    .option('--report <dir>', 'write the predictor report (README.md and charts) into DIR from the predictors under --runs')
    .option('--runs <dir>', 'with --report: folder whose subfolders are trained predictors (see predictor/scripts/esft-report.sh)')
    .option('--json', 'print the evaluation as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o: Options) => {
      const log = o.quiet ? () => {} : (line: string) => process.stderr.write(line + '\n');
      if (o.report !== undefined) {
        refuse(o, '--report', ['traces', 'testTraces', 'k', 'out', 'split', 'force']);
        if (o.eval !== undefined) throw new UserError('options --report and --eval: choose one');
        if (o.runs === undefined) throw new UserError('option --report: needs --runs <dir> (the trained predictors)');
        const path = await writePredictorReport({ runsDir: o.runs, outDir: o.report, log });
        process.stdout.write(`wrote ${path}\n`);
        return;
      }
      if (o.runs !== undefined) throw new UserError('option --runs: only used with --report');
      if (o.traces === undefined) throw new UserError('option --traces: required (comma-separated trace v1 files)');
      const traces = files(o.traces, '--traces');
      if (o.eval !== undefined) {
        refuse(o, '--eval', ['testTraces', 'k', 'out', 'split', 'force']);
        // The sample count is known once the traces are loaded: the bar starts at the first batch.
        let progress: ReturnType<typeof startProgress> | undefined;
        let reported = 0;
        const { manifest, report } = evalPredictor(o.eval, traces, (done, total) => {
          progress ??= startProgress('evaluating', total, { quiet: o.quiet, unit: 'samples' });
          progress.tick(done - reported);
          reported = done;
        });
        progress?.done();
        if (o.json) process.stdout.write(JSON.stringify({ predictor: o.eval, traces, lookahead: manifest.lookahead, evaluation: report }, null, 2) + '\n');
        else process.stdout.write(formatEvalReport(report, manifest.geometry.topK) + '\n' + marginLine(report, manifest.geometry.topK) + '\n');
        return;
      }
      if (o.out === undefined) throw new UserError('option --out: required (the predictor directory to write)');
      const testTraces = o.testTraces !== undefined ? files(o.testTraces, '--test-traces') : [];
      // Before minutes of training: an existing predictor is replaced only with --force, never by an input.
      checkOutputDir(o.out, { option: '--out', force: o.force, inputs: [...traces, ...testTraces] });
      const split = o.split !== undefined ? parseChoiceOption('--split', o.split, ['sequence', 'task'] as const) : testTraces.length > 0 ? 'task' : 'sequence';
      const result = await trainPredictor({
        traces,
        testTraces,
        split,
        lookahead: parseIntOption('--k', o.k ?? '1', 1, 64),
        out: o.out,
        hidden: parseIntListOption('--hidden', o.hidden, 1, 8192),
        history: parseIntOption('--history', o.history, 1, 64),
        perLayer: o.perLayer,
        maxEpochs: parseIntOption('--epochs', o.epochs, 1, 1000),
        batchSize: parseIntOption('--batch-size', o.batchSize, 1, 1 << 16),
        learningRate: parseFloatOption('--learning-rate', o.learningRate, 1e-7, 1),
        seed: parseIntOption('--seed', o.seed, 0, 2 ** 31 - 1),
        backend: parseChoiceOption('--backend', o.backend, ['auto', 'node', 'wasm', 'cpu'] as const),
        log,
      });
      const topK = result.manifest.geometry.topK;
      if (o.json) process.stdout.write(JSON.stringify({ predictor: result.dir, lookahead: result.manifest.lookahead, training: result.manifest.training, evaluation: result.report }, null, 2) + '\n');
      else process.stdout.write(`wrote ${result.dir}\n` + formatEvalReport(result.report, topK) + '\n' + marginLine(result.report, topK) + '\n');
    });
}

function marginLine(report: Parameters<typeof minMargin>[0], topK: number): string {
  const m = minMargin(report, topK);
  return `weakest layer: recall@${topK} lead over the better of previous token and most popular: ${m.margin >= 0 ? '+' : ''}${(100 * m.margin).toFixed(1)} points (layer ${m.layer})`;
}
