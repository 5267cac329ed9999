import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { Engine } from '../../runtime/src/engine/index.js';
import { loadOptionsFromCli, missOptionsFromCli, offloadOptionsFromCli, type RawEngineCliOptions, type RawExpertCliOptions, type RawMissCliOptions } from '../../runtime/src/engine/cli-options.js';
import { addMissFlags } from '../miss-flags.js';
import { addExpertDtypeFlags } from '../expert-dtype-flags.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import { parseByteSize } from '../../runtime/src/offload/gpu-budget.js';
import { fillLanes } from '../../runtime/src/offload/replay-lanes.js';
import { loadRoutingReplay } from '../../runtime/src/offload/routing-replay.js';
import { startServer } from '../../runtime/src/serve/server.js';
import { POLICY_NAMES } from '../../sim/src/cache/types.js';
import { UserError } from '../../core/src/errors.js';
import { expertGroupRule, refuseUnused } from '../option-rules.js';
import { parseIntOption } from '../../core/src/options.js';

interface ServeCliOptions extends RawEngineCliOptions, RawMissCliOptions, RawExpertCliOptions {
  model: string;
  modelName?: string;
  cache?: string;
  policy: string;
  gpuMemory?: string;
  routing?: string;
  routingLanes?: string;
  host: string;
  port: string;
  maxBatch: string;
  maxQueue: string;
  context?: string;
  maxPrefillTokens: string;
  apiKey?: string;
  maxBody: string;
}

const SERVE_POLICIES = POLICY_NAMES.filter((p) => p !== 'belady' && p !== 'opt');

export function register(program: Command): void {
  const cmd = program
    .command('serve')
    .description('OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics) with continuous batching')
    .requiredOption('--model <dir>', 'checkpoint directory (Hub layout, with tokenizer)')
    .option('--model-name <id>', 'the model id clients name (default: the directory name)')
    .option('--device <d>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (0: all cores)')
    .option('--gpu-memory <size>', 'device cuda: GPU memory budget (e.g. 12GiB); the cache gets the expert slots that fit')
    .option('--cache <C>', 'device cuda: routed experts offloaded to host memory, C GPU slots per MoE layer')
    .option('--policy <P>', `cache policy: ${SERVE_POLICIES.join(', ')} (static: needs --routing)`, 'lru')
    .option('--routing <trace>', 'replay the routing of these traces (comma-separated): the g-th admitted request replays lane g mod --routing-lanes (see README)')
    .option('--routing-lanes <n>', 'with --routing: lanes of --context tokens cut from the trace\'s sequences (default 4 x --max-batch)')
    .option('--host <addr>', 'address to listen on (loopback unless told otherwise)', '127.0.0.1')
    .option('--port <n>', 'TCP port (0: any free port; the address is printed)', '8000')
    .option('--max-batch <n>', 'sequences decoded together (KV-cache slots)', '16')
    .option('--max-queue <n>', 'requests that may wait for a slot; past it: 429 with Retry-After', '64')
    .option('--context <n>', 'tokens per sequence, prompt plus generated (default: min(4096, max_position_embeddings))')
    .option('--max-prefill-tokens <n>', 'prompt tokens admitted into one step (bounds the largest forward)', '4096')
    .option('--api-key <key>', 'require Authorization: Bearer <key> on every request (or env MOE_OFFLOAD_API_KEY)')
    .option('--max-body <size>', 'largest request body', '1MiB');
  addExpertDtypeFlags(addMissFlags(cmd)).action(async (o: ServeCliOptions, command: Command) => {
      refuseUnused(command, [expertGroupRule(o.expertDtype)]);
      // From the start: a signal while the model loads stops the server as soon as it is up.
      const signalled = new Promise<string>((r) => {
        process.once('SIGINT', () => r('SIGINT'));
        process.once('SIGTERM', () => r('SIGTERM'));
      });
      const config = loadModelConfig(o.model);
      const maxBatch = parseIntOption('--max-batch', o.maxBatch, 1, 1024);
      const maxQueue = parseIntOption('--max-queue', o.maxQueue, 0, 1_000_000);
      const context = o.context === undefined ? Math.min(4096, config.maxPositionEmbeddings) : parseIntOption('--context', o.context, 2, config.maxPositionEmbeddings);
      const maxPrefillTokens = parseIntOption('--max-prefill-tokens', o.maxPrefillTokens, 1, 1 << 24);
      const port = parseIntOption('--port', o.port, 0, 65535);
      const maxBodyBytes = parseByteSize('--max-body', o.maxBody);
      const apiKey = o.apiKey ?? process.env.MOE_OFFLOAD_API_KEY;
      if (apiKey !== undefined && apiKey.trim() === '') throw new UserError('option --api-key: must not be empty');
      if (o.routingLanes !== undefined && o.routing === undefined) throw new UserError('option --routing-lanes: only with --routing');
      const base = loadOptionsFromCli(o);
      // The largest forward: one whole prompt (or the prefill budget) beside every other slot's decode row.
      const shape = { batch: maxBatch, contextTokens: context, prefillRows: Math.max(context, maxPrefillTokens) + maxBatch };
      const offload = offloadOptionsFromCli(o, config, base.device ?? 'cpu', shape);
      const miss = missOptionsFromCli(o);
      if (offload.cache && (offload.cache.policy === 'belady' || offload.cache.policy === 'opt')) {
        throw new UserError(`option --policy: ${offload.cache.policy} needs the run's future, which a server does not know; use ${SERVE_POLICIES.join(', ')}`);
      }
      let routing;
      let lanes: number | undefined;
      if (o.routing !== undefined) {
        lanes = o.routingLanes === undefined ? 4 * maxBatch : parseIntOption('--routing-lanes', o.routingLanes, 1, 1_000_000);
        const fill = fillLanes(o.routing.split(',').map((p) => loadRoutingReplay(p.trim(), config)), lanes, context);
        routing = fill.replay;
        process.stderr.write(`routing replay: ${fill.description}\n`);
      } else if (offload.cache?.policy === 'static') {
        throw new UserError('option --policy: static needs --routing (its pinned experts come from the trace)');
      }
      const engine = await Engine.load(o.model, { ...base, ...offload, routing, ...(miss ? { miss } : {}) });
      try {
        const server = await startServer({
          engine,
          modelId: o.modelName ?? basename(resolve(o.model)),
          host: o.host,
          port,
          maxBatch,
          maxQueue,
          contextTokens: context,
          maxPrefillTokens,
          apiKey,
          maxBodyBytes,
          traceSequences: lanes,
          log: (m) => process.stderr.write(`serve: ${m}\n`),
        });
        process.stdout.write(`listening on ${server.url} (model ${o.modelName ?? basename(resolve(o.model))}, device ${base.device}, max batch ${maxBatch}, context ${context} tokens, queue ${maxQueue}${apiKey ? ', API key required' : ''})\n`);
        const sig = await signalled;
        process.stderr.write(`serve: ${sig}: stopping (queued and running requests are ended)\n`);
        await server.stop();
      } finally {
        engine.close();
      }
    });
}
