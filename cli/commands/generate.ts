import type { Command } from 'commander';
import { Engine, type FinishReason, type OffloadStats } from '../../runtime/src/engine/index.js';
import type { NativeCacheStats } from '../../runtime/src/engine/native-binding.js';
import { checkContextLimit } from '../../runtime/src/engine/context-limit.js';
import { expertGroupRule, refuseUnused } from '../option-rules.js';
import { heartbeatMs } from '../../core/src/progress.js';
import { printWarnings } from '../warnings.js';
import { loadOptionsFromCli, missOptionsFromCli, offloadOptionsFromCli, prefetchOptionsFromCli, samplingFromCli, TextStream, type RawEngineCliOptions, type RawExpertCliOptions, type RawMissCliOptions, type RawPrefetchCliOptions } from '../../runtime/src/engine/cli-options.js';
import { addMissFlags } from '../miss-flags.js';
import { addPrefetchFlags, prefetchFigures, prefetchSummaryLine } from '../prefetch-flags.js';
import { addExpertDtypeFlags } from '../expert-dtype-flags.js';
import { loadTokenizer, type ModelTokenizer } from '../../runtime/src/model/tokenizer.js';
import { POLICY_NAMES } from '../../sim/src/cache/types.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import { checkReplayCoverage, loadRoutingReplay } from '../../runtime/src/offload/routing-replay.js';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption, parseIntListOption, parseIntOption } from '../../core/src/options.js';

interface GenerateCliOptions extends RawEngineCliOptions, RawMissCliOptions, RawExpertCliOptions, RawPrefetchCliOptions {
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
  const generate = program
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
  addPrefetchFlags(addExpertDtypeFlags(addMissFlags(generate)), { routing: true }).action(async (o: GenerateCliOptions, cmd: Command) => {
      if (!!o.prompt === !!o.promptIds) throw new UserError('give the prompt with either --prompt or --prompt-ids (not both)');
      refuseUnused(cmd, [
        { option: '--policy', applies: o.cache !== undefined || o.gpuMemory !== undefined, needs: 'with --cache or --gpu-memory' },
        { option: '--threads', applies: (o.device ?? 'cpu') === 'cpu', needs: 'with --device cpu' },
        expertGroupRule(o.expertDtype),
      ]);
      // Refused by name before the checkpoint is read (bench's rules, cli-options.ts).
      const prefetch = prefetchOptionsFromCli(o, { routing: o.routing !== undefined, offloadedCuda: o.device === 'cuda' && (o.cache !== undefined || o.gpuMemory !== undefined) });
      const maxNewTokens = parseIntOption('--max-new-tokens', o.maxNewTokens, 1, 1_000_000);
      const sampling = samplingFromCli(o);
      const policy = parseChoiceOption('--policy', o.policy, POLICY_NAMES);
      if (policy === 'belady' || policy === 'opt') throw new UserError(`option --policy: ${policy} decides from the run's future requests, which generate does not know; use record-trace --routing <trace> --policy ${policy}`);
      if (policy === 'static' && o.routing === undefined) throw new UserError('option --policy: static pins the most popular experts of a replayed trace; add --routing <trace>');
      const config = loadModelConfig(o.model);
      const routing = o.routing === undefined ? undefined : loadRoutingReplay(o.routing, config);
      // Prompts first: the GPU memory budget needs the run's shape before loading.
      const tokenizer = tryTokenizer(o.model, !!o.prompt);
      const prompts: number[][] = o.prompt
        ? o.prompt.map((p) => tokenizer!.encode(p, { addBos: true }))
        : o.promptIds!.map((s) => parseIntListOption('--prompt-ids', s, 0, config.vocabSize - 1));
      checkContextLimit(config, Math.max(...prompts.map((p) => p.length)), maxNewTokens, { prompt: o.prompt ? '--prompt' : '--prompt-ids', newTokens: '--max-new-tokens' });
      if (routing) checkReplayCoverage(routing, prompts.map((p) => p.length + maxNewTokens - 1));
      const base = loadOptionsFromCli(o);
      const shape = { batch: prompts.length, contextTokens: Math.max(...prompts.map((p) => p.length)) + maxNewTokens };
      const offload = offloadOptionsFromCli(o, config, base.device ?? 'cpu', shape);
      const miss = missOptionsFromCli(o);
      const cache = offload.cache;
      const engine = await Engine.load(o.model, { ...base, ...offload, routing, ...(miss ? { miss } : {}), ...(prefetch ? { prefetch } : {}) });
      printWarnings(engine.checkpoint.warnings);
      try {
        const decode = (ids: number[]) => (tokenizer ? tokenizer.decode(ids, { skipSpecialTokens: true }) : '');
        const streamText = !o.json && prompts.length === 1;
        const streams = prompts.map(() => new TextStream(decode));
        const tokens: number[][] = prompts.map(() => []);
        const finish: FinishReason[] = prompts.map(() => 'length');
        // A long prefill, or --json (nothing streams), would be silent for minutes: a line every few seconds.
        const started = Date.now();
        let produced = 0;
        const heartbeat = setInterval(() => {
          if (streamText && produced > 0) return; // the streamed text shows progress itself
          const what = produced === 0 ? `prefill of ${prompts.length} x ${Math.max(...prompts.map((p) => p.length))} tokens` : `${produced}/${prompts.length * maxNewTokens} generated tokens`;
          process.stderr.write(`generate: ${what}, ${Math.round((Date.now() - started) / 1e3)} s so far\n`);
        }, heartbeatMs());
        heartbeat.unref();
        try {
          for await (const t of engine.generate({ prompts, maxNewTokens, sampling, stopOnEos: o.stopOnEos })) {
            produced++;
            tokens[t.sequence].push(t.token);
            if (t.finished) finish[t.sequence] = t.finished;
            const delta = streams[t.sequence].push(t.token);
            if (streamText) process.stdout.write(tokenizer ? delta : `${t.index ? ',' : ''}${t.token}`);
          }
        } finally {
          clearInterval(heartbeat);
        }
        const results = prompts.map((p, i) => ({
          tokens: tokens[i],
          text: tokenizer ? streams[i].text : null,
          promptTokens: p,
          finish: finish[i],
        }));
        const stats = engine.cacheStats();
        const moved = stats ? engine.offloadStats() : null;
        if (stats) {
          const layers = engine.config.moeLayers;
          const line = layers.map((l, i) => `L${l} ${stats.hits[i]}/${stats.requests[i]}`).join(', ');
          process.stderr.write(`expert cache (${policy}, ${cache!.slotsPerLayer} slots/layer) hits/requests: ${line}\n`);
          if (moved) process.stderr.write(`expert copies to the GPU: ${moved.slotCopies} into slots, ${moved.stagedCopies} streamed, ${(moved.bytesH2D / 1e9).toFixed(2)} GB, compute waited ${moved.copyWaitMs.toFixed(1)} ms\n`);
          if (moved && miss) process.stderr.write(`misses on the CPU (--miss ${miss.mode}): ${moved.cpuExperts} experts (${moved.cpuRows} token rows), ${moved.fillCopies} background fills, CPU busy ${moved.cpuMs.toFixed(1)} ms, waited ${moved.cpuWaitMs.toFixed(1)} ms\n`);
        }
        const prefetched = prefetch ? prefetchFigures(stats, moved) : null;
        const prefetchLine = prefetch ? prefetchSummaryLine(prefetch.name, prefetched) : null;
        if (prefetchLine) process.stderr.write(prefetchLine + '\n');
        if (o.json) {
          // The run's cache figures belong to the whole batch, so they sit beside the results, not in one of them.
          const run = stats
            ? { expertCache: cacheJson(policy, cache!.slotsPerLayer, engine.config.moeLayers, stats), ...(moved ? { gpuCopies: copiesJson(moved) } : {}), ...(prefetched ? { prefetch: { name: prefetch!.name, ...prefetched } } : {}) }
            : {};
          const doc = results.length === 1 ? { ...results[0], ...run } : { results, ...run };
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

/** generate --json's cache figures: counts per MoE layer (ids in moeLayers), the hit rate as a fraction. */
function cacheJson(policy: string, slotsPerLayer: number, moeLayers: readonly number[], stats: NativeCacheStats) {
  const hits = Array.from(stats.hits);
  const requests = Array.from(stats.requests);
  const total = requests.reduce((a, b) => a + b, 0);
  return { policy, slotsPerLayer, moeLayers: [...moeLayers], hits, requests, hitRate: total ? hits.reduce((a, b) => a + b, 0) / total : null };
}

/** Device cuda: the expert copies, each key with its unit. */
function copiesJson(m: OffloadStats) {
  return { intoSlots: m.slotCopies, streamed: m.stagedCopies, hostToDeviceBytes: m.bytesH2D, copyWaitMs: m.copyWaitMs };
}

/** The tokenizer when the checkpoint has one; text prompts require it, token-id prompts do not. */
function tryTokenizer(dir: string, required: boolean): ModelTokenizer | null {
  try {
    return loadTokenizer(dir);
  } catch (err) {
    if (required) throw err;
    process.stderr.write(`moe-offload: no tokenizer (${(err as Error).message}); printing token ids only (--prompt-ids needs no tokenizer)\n`);
    return null;
  }
}
