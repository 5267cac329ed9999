import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { Engine } from '../../engine/index.js';
import { loadOptionsFromCli, samplingFromCli, TextStream, type RawEngineCliOptions } from '../../engine/cli-options.js';
import type { ChatMessage } from '../../model/chat-template.js';
import { parseIntOption } from '../../util/options.js';

interface ChatCliOptions extends RawEngineCliOptions {
  model: string;
  maxNewTokens: string;
  system?: string;
}

export function register(program: Command): void {
  program
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
    .action(async (o: ChatCliOptions) => {
      const maxNewTokens = parseIntOption('--max-new-tokens', o.maxNewTokens, 1, 1_000_000);
      const sampling = samplingFromCli(o);
      const engine = await Engine.load(o.model, loadOptionsFromCli(o));
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
          const stream = new TextStream((ids) => tokenizer.decode(ids, { skipSpecialTokens: true }));
          process.stdout.write('Assistant:');
          for await (const t of engine.generate({ prompts: [prompt], maxNewTokens, sampling })) {
            process.stdout.write(stream.push(t.token));
          }
          process.stdout.write(stream.flush() + '\n');
          messages.push({ role: 'assistant', content: stream.text.trim() });
          if (interactive) process.stdout.write('> ');
        }
      } finally {
        engine.close();
      }
    });
}
