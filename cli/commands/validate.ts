/**
 * `validate --best`: the simulator's best configurations under a GPU budget, re-run through the CUDA runtime
 * and compared with what it predicted (runtime/src/validate/). A thin shell: options are checked here before
 * anything runs; without a CUDA backend or a checkpoint it prints the plan and fails saying so.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../core/src/errors.js';
import { parseIntListOption, parseIntOption } from '../../core/src/options.js';
import { checkOutputDir } from '../../core/src/output-path.js';
import { readTrace } from '../../traces/src/reader.js';
import { toSequences } from '../../traces/src/sequences.js';
import { defaultCalibration, loadCalibration } from '../../sim/src/cost/calibration.js';
import { sampleTracePath } from '../../sim/src/sample.js';
import { loadCalibrateNative } from '../../runtime/src/calibrate/native.js';
import { loadModelConfig, parseModelConfig, type ModelConfig } from '../../runtime/src/model/config.js';
import { LITE_CONFIG } from '../../runtime/src/model/synth/geometries.js';
import { parseByteSize } from '../../runtime/src/offload/gpu-budget.js';
import { checkReplayGeometry, type RoutingReplay } from '../../runtime/src/offload/routing-replay.js';
import { expertDtypeListFromCli, quantizedFileFromCli } from '../../runtime/src/engine/cli-options.js';
import { cudaMeasure } from '../../runtime/src/validate/measure.js';
import { addExpertDtypeFlags } from '../expert-dtype-flags.js';
import { expertGroupRule, refuseUnused } from '../option-rules.js';
import { validateBest } from '../../runtime/src/validate/run.js';

interface ValidateCli {
  best?: boolean;
  trace?: string;
  gpuMemory: string;
  batch: string;
  prompt: string;
  top: string;
  model?: string;
  out?: string;
  force?: boolean;
  predictor?: string;
  calibration?: string;
  expertDtype?: string;
  expertGroup?: string;
}

/** Why the GPU part cannot run here, or null when it can. */
function cudaUnavailable(): string | null {
  try {
    return loadCalibrateNative().cudaBuilt() ? null : 'this build of the native engine has no CUDA backend (no CUDA device here)';
  } catch (err) {
    return `the native engine cannot be loaded (${(err as Error).message})`;
  }
}

export function register(program: Command): void {
  const cmd = program
    .command('validate')
    .description("re-run the simulator's best configurations under a GPU budget on the GPU and compare predicted with measured (--best)")
    .option('--best', 'sweep every configuration that fits --gpu-memory in the simulator, re-run the top ones and the baselines on the GPU')
    .option('--trace <files>', 'routing to replay, comma-separated traces (lanes filled from their sequences in order; default: the shipped sample trace)')
    .option('--gpu-memory <size>', 'GPU memory budget; the expert slots per layer follow from it', '12GiB')
    .option('--batch <list>', 'batch sizes (comma-separated)', '1,16')
    .option('--prompt <list>', 'prompt lengths (comma-separated)', '128')
    .option('--top <n>', 'best runnable configurations re-run per point, besides the baselines', '3')
    .option('--model <dir>', 'checkpoint for the GPU runs (default geometry: the embedded DeepSeek-V2-Lite config; without it nothing is measured)')
    .option('--out <dir>', 'output folder: validation.json, validation.md, predicted-vs-measured chart (default reports/validate/<trace name>)')
    .option('--force', 'replace an existing --out folder')
    .option('--predictor <dir>', 'the exported predictor (train-predictor --out DIR): prefetch predicted is simulated on its predictions and re-run on the GPU (without it predicted is neither)')
    .option('--calibration <file>', 'cost profile of the sweep, of the runtime\'s hybrid rule and of the re-runs\' simulated column (default: sim/calibration/h200-measured.json)');
  addExpertDtypeFlags(cmd, { list: true, help: 'expert dtypes swept, each with the slots the budget holds in it (comma-separated: bf16, int8, int4; default bf16); the baselines stay bf16' })
    .action(async (o: ValidateCli, c: Command) => {
      if (!o.best) throw new UserError('validate: --best is required (the only mode: sweep in the simulator, re-run the best on the GPU); see validate --help');
      refuseUnused(c, [expertGroupRule(o.expertDtype)]);
      const formats = expertDtypeListFromCli(o);
      if (o.predictor !== undefined && !(existsSync(o.predictor) && statSync(o.predictor).isDirectory())) throw new UserError(`option --predictor: ${o.predictor}: not a directory (a predictor exported by train-predictor --out DIR)`);
      const budgetBytes = parseByteSize('--gpu-memory', o.gpuMemory);
      const batches = parseIntListOption('--batch', o.batch, 1, 4096);
      const prompts = parseIntListOption('--prompt', o.prompt, 1, 1 << 20);
      const top = parseIntOption('--top', o.top, 1, 1000);
      const calibration = o.calibration === undefined ? defaultCalibration() : loadCalibration(o.calibration);
      if (o.model !== undefined && !(existsSync(o.model) && statSync(o.model).isDirectory())) throw new UserError(`option --model: '${o.model}' is not a directory (a checkpoint with config.json)`);
      const traces = (o.trace ?? sampleTracePath()).split(',').map((f) => f.trim());
      for (const t of traces) if (!existsSync(t) || !statSync(t).isFile()) throw new UserError(`option --trace: ${t}: no such file`);
      const config: ModelConfig = o.model !== undefined ? loadModelConfig(o.model) : parseModelConfig(LITE_CONFIG, 'embedded DeepSeek-V2-Lite config.json');
      const replays: RoutingReplay[] = traces.map((path) => {
        const corpus = toSequences(readTrace(path));
        checkReplayGeometry(path, corpus, config, '--trace');
        return { path, corpus };
      });
      const unavailable = cudaUnavailable() ?? (o.model === undefined ? 'no --model given (the GPU runs need a checkpoint)' : null);
      const outPath = o.out ?? join('reports', 'validate', traces.map((t) => basename(t, extname(t))).join('+'));
      // The default folder's parent (reports/validate) is made here; a folder the user names must have one.
      if (!unavailable && o.out === undefined) mkdirSync(dirname(resolve(outPath)), { recursive: true });
      const out = unavailable ? resolve(outPath) : checkOutputDir(outPath, { option: '--out', force: o.force, inputs: traces });
      const stop = { requested: false };
      const onSigint = () => {
        if (stop.requested) process.exit(130);
        stop.requested = true;
        process.stderr.write('\nvalidate: interrupted, stopping after the current GPU run; the output will be marked PARTIAL (Ctrl-C again to abort)\n');
      };
      process.on('SIGINT', onSigint);
      try {
        await validateBest({
          inputs: { config, modelLabel: o.model ?? 'embedded DeepSeek-V2-Lite config', replays, budgetBytes, batches, prompts, top, calibration, formats, predictor: o.predictor },
          out,
          measure: unavailable ? { unavailable } : cudaMeasure(o.model!, config, replays, calibration, quantizedFileFromCli(o, formats)),
          stop,
          command: ['moe-offload', ...process.argv.slice(2)].join(' '),
          print: (t) => process.stdout.write(t),
          log: (line) => process.stderr.write(line + '\n'),
        });
        process.stderr.write(`validate: wrote ${out}\n`);
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
