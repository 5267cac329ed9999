import type { Command } from 'commander';
import { Engine, type FinishReason } from '../../runtime/src/engine/index.js';
import { loadOptionsFromCli, missOptionsFromCli, offloadOptionsFromCli, samplingFromCli, TextStream, type RawEngineCliOptions, type RawMissCliOptions } from '../../runtime/src/engine/cli-options.js';
import { addMissFlags } from '../miss-flags.js';
import { loadTokenizer, type ModelTokenizer } from '../../runtime/src/model/tokenizer.js';
import { POLICY_NAMES } from '../../sim/src/cache/types.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import { checkReplayCoverage, loadRoutingReplay } from '../../runtime/src/offload/routing-replay.js';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption, parseIntListOption, parseIntOption } from '../../core/src/options.js';

interface GenerateCliOptions extends RawEngineCliOptions, RawMissCliOptions {
  model: string;
  prompt?: string[];
  promptIds?: string[];
  maxNewTokens: string;
  json?: boolean;
  stopOnEos: boolean;
  cache?: string;
  policy: string;
  routing?: string;
  gpuMemory?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function register(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate text with a checkpoint on the native engine (streams to stdout)')
    .requiredOption('--model <dir>', 'checkpoint directory (Hub layout)')
    .option('--prompt <text>', 'text prompt, encoded with the checkpoint tokenizer after <bos> (repeat for a batch)', collect)
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids, used as given (repeat for a batch)', collect)
    .option('--max-new-tokens <n>', 'tokens to generate per prompt', '32')
    .option('--greedy', 'greedy decoding (the default)')
    .option('--temperature <t>', 'sample with this temperature')
    .option('--top-p <p>', 'nucleus sampling mass (with --temperature)')
    .option('--seed <n>', 'sampling seed (with --temperature)')
    .option('--no-stop-on-eos', 'keep generating after the end-of-sequence token')
    .option('--device <d>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0: all cores)')
    .option('--cache <C>', 'expert cache of C slots per MoE layer (device cuda: routed experts offloaded to host memory, C GPU slots per layer, 0: all loaded on demand; CPU: accounting); hits/misses on stderr')
    .option('--gpu-memory <size>', 'device cuda: GPU memory budget (e.g. 12GiB); routed experts offloaded, the cache gets the slots that fit')
    .option('--policy <P>', `cache policy: ${POLICY_NAMES.filter((p) => p !== 'belady' && p !== 'opt').join(', ')} (belady, opt: record-trace --routing)`, 'lru')
    .option('--routing <trace>', 'replay the routing of this trace (sequence g drives prompt g)')
    .option('--json', 'print one JSON document: {tokens, text, ...} (several prompts: {results: [...]})');
  addMissFlags(cmd).action(async (o: GenerateCliOptions) => {
      if (!!o.prompt === !!o.promptIds) throw new UserError('give the prompt with either --prompt or --prompt-ids (not both)');
      const maxNewTokens = parseIntOption('--max-new-tokens', o.maxNewTokens, 1, 1_000_000);
      const sampling = samplingFromCli(o);
      const policy = parseChoiceOption('--policy', o.policy, POLICY_NAMES);
      const config = loadModelConfig(o.model);
      const routing = o.routing === undefined ? undefined : loadRoutingReplay(o.routing, config);
      // Prompts first: the GPU memory budget needs the run's shape before loading.
      const tokenizer = tryTokenizer(o.model, !!o.prompt);
      const prompts: number[][] = o.prompt
        ? o.prompt.map((p) => tokenizer!.encode(p, { addBos: true }))
        : o.promptIds!.map((s) => parseIntListOption('--prompt-ids', s, 0, config.vocabSize - 1));
      if (routing) checkReplayCoverage(routing, prompts.map((p) => p.length + maxNewTokens - 1));
      const base = loadOptionsFromCli(o);
      const shape = { batch: prompts.length, contextTokens: Math.max(...prompts.map((p) => p.length)) + maxNewTokens };
      const offload = offloadOptionsFromCli(o, config, base.device ?? 'cpu', shape);
      const miss = missOptionsFromCli(o);
      const cache = offload.cache;
      const engine = await Engine.load(o.model, { ...base, ...offload, routing, ...(miss ? { miss } : {}) });
      try {
        const decode = (ids: number[]) => (tokenizer ? tokenizer.decode(ids, { skipSpecialTokens: true }) : '');
        const streamText = !o.json && prompts.length === 1;
        const streams = prompts.map(() => new TextStream(decode));
        const tokens: number[][] = prompts.map(() => []);
        const finish: FinishReason[] = prompts.map(() => 'length');
        for await (const t of engine.generate({ prompts, maxNewTokens, sampling, stopOnEos: o.stopOnEos })) {
          tokens[t.sequence].push(t.token);
          if (t.finished) finish[t.sequence] = t.finished;
          const delta = streams[t.sequence].push(t.token);
          if (streamText) process.stdout.write(tokenizer ? delta : `${t.index ? ',' : ''}${t.token}`);
        }
        const results = prompts.map((p, i) => ({
          tokens: tokens[i],
          text: tokenizer ? streams[i].text : null,
          promptTokens: p,
          finish: finish[i],
        }));
        const stats = engine.cacheStats();
        if (stats) {
          const layers = engine.config.moeLayers;
          const line = layers.map((l, i) => `L${l} ${stats.hits[i]}/${stats.requests[i]}`).join(', ');
          process.stderr.write(`expert cache (${policy}, ${cache!.slotsPerLayer} slots/layer) hits/requests: ${line}\n`);
          const moved = engine.offloadStats();
          if (moved) process.stderr.write(`expert copies to the GPU: ${moved.slotCopies} into slots, ${moved.stagedCopies} streamed, ${(moved.bytesH2D / 1e9).toFixed(2)} GB, compute waited ${moved.copyWaitMs.toFixed(1)} ms\n`);
          if (moved && miss) process.stderr.write(`misses on the CPU (--miss ${miss.mode}): ${moved.cpuExperts} experts (${moved.cpuRows} token rows), ${moved.fillCopies} background fills, CPU busy ${moved.cpuMs.toFixed(1)} ms, waited ${moved.cpuWaitMs.toFixed(1)} ms\n`);
        }
        if (o.json) {
          const doc = results.length === 1 ? results[0] : { results };
          process.stdout.write(JSON.stringify(doc) + '\n');
        } else if (streamText) {
          process.stdout.write((tokenizer ? streams[0].flush() : '') + '\n');
        } else {
          results.forEach((r, i) => process.stdout.write(`[${i}] ${r.text ?? r.tokens.join(',')}\n`));
        }
      } finally {
        engine.close();
      }
    });
}

/** The tokenizer when the checkpoint has one; text prompts require it, token-id prompts do not. */
function tryTokenizer(dir: string, required: boolean): ModelTokenizer | null {
  try {
    return loadTokenizer(dir);
  } catch (err) {
    if (required) throw err;
    process.stderr.write(`moe-offload: no tokenizer (${(err as Error).message}); printing token ids only\n`);
    return null;
  }
}
