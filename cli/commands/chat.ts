import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { Engine } from '../../runtime/src/engine/index.js';
import { loadOptionsFromCli, missOptionsFromCli, offloadOptionsFromCli, prefetchOptionsFromCli, samplingFromCli, TextStream, type RawEngineCliOptions, type RawExpertCliOptions, type RawMissCliOptions, type RawPrefetchCliOptions } from '../../runtime/src/engine/cli-options.js';
import { addMissFlags } from '../miss-flags.js';
import { addPrefetchFlags, prefetchFigures, prefetchSummaryLine } from '../prefetch-flags.js';
import { addExpertDtypeFlags } from '../expert-dtype-flags.js';
import { POLICY_NAMES } from '../../sim/src/cache/types.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import type { ChatMessage } from '../../runtime/src/model/chat-template.js';
import { UserError } from '../../core/src/errors.js';
import { parseIntOption } from '../../core/src/options.js';
import { checkContextLimit } from '../../runtime/src/engine/context-limit.js';
import { expertGroupRule, given, refuseUnused } from '../option-rules.js';
import { printWarnings } from '../warnings.js';

interface ChatCliOptions extends RawEngineCliOptions, RawMissCliOptions, RawExpertCliOptions, RawPrefetchCliOptions {
  model: string;
  maxNewTokens: string;
  system?: string;
  cache?: string;
  policy: string;
  gpuMemory?: string;
  context: string;
}

export function register(program: Command): void {
  const chat = program
    .command('chat')
    .description('chat with a checkpoint using its chat template: one user message per input line, replies streamed')
    .requiredOption('--model <dir>', 'checkpoint directory (Hub layout, with tokenizer)')
    .option('--max-new-tokens <n>', 'longest reply, in tokens', '256')
    .option('--system <text>', 'system message placed before the conversation')
    .option('--greedy', 'greedy decoding (the default)')
    .option('--temperature <t>', 'sample with this temperature')
    .option('--top-p <p>', 'nucleus sampling mass (with --temperature)')
    .option('--seed <n>', 'sampling seed (with --temperature)')
    .option('--device <d>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0: all cores)')
    .option('--cache <C>', 'device cuda: routed experts offloaded to host memory, C GPU slots per MoE layer (0: all loaded on demand)')
    .option('--policy <P>', `cache policy: ${POLICY_NAMES.filter((p) => p !== 'belady' && p !== 'opt' && p !== 'static').join(', ')}`, 'lru')
    .option('--gpu-memory <size>', 'device cuda: GPU memory budget (e.g. 12GiB); the cache gets the expert slots that fit')
    .option('--context <n>', 'longest conversation in tokens the GPU memory budget must hold', '4096');
  addPrefetchFlags(addExpertDtypeFlags(addMissFlags(chat)), { routing: false }).action(async (o: ChatCliOptions, cmd: Command) => {
      refuseUnused(cmd, [
        { option: '--policy', applies: o.cache !== undefined || o.gpuMemory !== undefined, needs: 'with --cache or --gpu-memory' },
        { option: '--context', applies: o.gpuMemory !== undefined, needs: 'with --gpu-memory (the budget is planned for this many tokens)' },
        { option: '--threads', applies: (o.device ?? 'cpu') === 'cpu', needs: 'with --device cpu' },
        expertGroupRule(o.expertDtype),
      ]);
      const prefetch = prefetchOptionsFromCli(o, { routing: false, offloadedCuda: o.device === 'cuda' && (o.cache !== undefined || o.gpuMemory !== undefined), noRouting: 'chat has none; use generate --routing F' });
      const maxNewTokens = parseIntOption('--max-new-tokens', o.maxNewTokens, 1, 1_000_000);
      const sampling = samplingFromCli(o);
      const base = loadOptionsFromCli(o);
      const config = loadModelConfig(o.model);
      const context = parseIntOption('--context', o.context, 1, 1 << 24);
      checkContextLimit(config, given(cmd, '--context') ? context : 1, maxNewTokens, { prompt: '--context', newTokens: '--max-new-tokens' });
      const shape = { batch: 1, contextTokens: context + maxNewTokens };
      const offload = offloadOptionsFromCli(o, config, base.device ?? 'cpu', shape);
      const miss = missOptionsFromCli(o);
      if (offload.cache && (offload.cache.policy === 'belady' || offload.cache.policy === 'opt' || offload.cache.policy === 'static')) {
        throw new UserError(`option --policy: ${offload.cache.policy} needs a routing replay; chat uses lru, lfu, fifo or lfru`);
      }
      const engine = await Engine.load(o.model, { ...base, ...offload, ...(miss ? { miss } : {}), ...(prefetch ? { prefetch } : {}) });
      printWarnings(engine.checkpoint.warnings);
      try {
        const tokenizer = engine.tokenizer;
        const interactive = process.stdin.isTTY === true;
        const messages: ChatMessage[] = o.system ? [{ role: 'system', content: o.system }] : [];
        const rl = createInterface({ input: process.stdin, terminal: interactive });
        if (interactive) process.stdout.write('(empty line or Ctrl-D to quit)\n> ');
        // The whole conversation is prefilled again each turn (no cache kept between turns).
        for await (const line of rl) {
          const text = line.trim();
          if (text === '') {
            if (interactive) break;
            continue;
          }
          messages.push({ role: 'user', content: text });
          const prompt = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
          if (prompt.length + maxNewTokens - 1 > config.maxPositionEmbeddings) {
            throw new UserError(`the conversation (${prompt.length} tokens) plus a reply of --max-new-tokens ${maxNewTokens} no longer fits the model's context of ${config.maxPositionEmbeddings} tokens; start a new chat`);
          }
          const stream = new TextStream((ids) => tokenizer.decode(ids, { skipSpecialTokens: true }));
          process.stdout.write('Assistant:');
          for await (const t of engine.generate({ prompts: [prompt], maxNewTokens, sampling })) {
            process.stdout.write(stream.push(t.token));
          }
          process.stdout.write(stream.flush() + '\n');
          messages.push({ role: 'assistant', content: stream.text.trim() });
          if (interactive) process.stdout.write('> ');
        }
        // Over the whole conversation (the counts are cumulative since load), as generate prints per run.
        const summary = prefetch ? prefetchSummaryLine(prefetch.name, prefetchFigures(engine.cacheStats(), engine.offloadStats())) : null;
        if (summary) process.stderr.write(summary + '\n');
      } finally {
        engine.close();
      }
    });
}
