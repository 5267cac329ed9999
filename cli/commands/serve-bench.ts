import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { seededIds } from '../../runtime/src/bench/grid.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import { runLevel, type LoadOptions } from '../../runtime/src/serve/load-client.js';
import { benchSide, serveBenchMarkdown, type BenchPointLike, type ServeBenchDocument } from '../../runtime/src/serve/load-report.js';
import { writeFileAtomic } from '../../core/src/atomic-file.js';
import { BadInputError, UserError } from '../../core/src/errors.js';
import { parseIntListOption, parseIntOption } from '../../core/src/options.js';

interface ServeBenchCliOptions {
  url: string;
  model: string;
  apiKey?: string;
  concurrency: string;
  requests: string;
  prompt: string;
  maxTokens: string;
  warmup: string;
  seed: string;
  bench?: string;
  out: string;
}

function readBenchPoints(path: string): BenchPointLike[] {
  if (!existsSync(path)) throw new BadInputError(path, 'no such file');
  let doc: { format?: string; grid?: BenchPointLike[] };
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as typeof doc;
  } catch (err) {
    throw new BadInputError(path, `not JSON (${(err as Error).message})`);
  }
  if (doc.format !== 'moe-offload-bench-v1' || !Array.isArray(doc.grid)) throw new BadInputError(path, "not a bench.json (format 'moe-offload-bench-v1')");
  return doc.grid;
}

export function register(program: Command): void {
  program
    .command('serve-bench')
    .description('load generator for a running `serve`: streaming clients at each concurrency; output tokens/s, TTFT, TPOT, beside a bench.json')
    .requiredOption('--url <url>', 'the server, e.g. http://127.0.0.1:8000')
    .requiredOption('--model <dir>', 'the checkpoint the server runs (its vocabulary and <bos> make the prompts)')
    .option('--api-key <key>', 'the server\'s API key')
    .option('--concurrency <list>', 'streaming clients per level', '1,4,8,16')
    .option('--requests <n>', 'requests per level, as a multiple of the concurrency (at least 8)', '4')
    .option('--prompt <n>', 'prompt tokens (<bos> + seeded random ids, as bench)', '128')
    .option('--max-tokens <n>', 'tokens generated per request', '64')
    .option('--warmup <n>', 'requests at concurrency 1 before the first level, not measured', '2')
    .option('--seed <n>', 'prompt seed', '0')
    .option('--bench <file>', 'a bench.json at the same prompt length: its batch sizes go beside the levels')
    .requiredOption('--out <dir>', 'folder for serve-bench.json and serve-bench.md')
    .action(async (o: ServeBenchCliOptions) => {
      const levels = parseIntListOption('--concurrency', o.concurrency, 1, 4096);
      const perClient = parseIntOption('--requests', o.requests, 1, 1_000_000);
      const promptLen = parseIntOption('--prompt', o.prompt, 1, 1 << 20);
      const maxTokens = parseIntOption('--max-tokens', o.maxTokens, 1, 1 << 20);
      const warmup = parseIntOption('--warmup', o.warmup, 0, 1000);
      const seed = parseIntOption('--seed', o.seed, 0, 1 << 30);
      if (existsSync(o.out) && !statSync(o.out).isDirectory()) throw new UserError(`option --out: ${o.out} exists and is not a folder`);
      const points = o.bench === undefined ? null : readBenchPoints(o.bench);
      const config = loadModelConfig(o.model);
      const url = o.url.replace(/\/+$/, '');
      const models = await fetch(`${url}/v1/models`, { headers: o.apiKey ? { Authorization: `Bearer ${o.apiKey}` } : {} }).then(
        (r) => (r.ok ? (r.json() as Promise<{ data: { id: string }[] }>) : Promise.reject(new UserError(`option --url: GET /v1/models answered ${r.status}`))),
        (err: Error) => Promise.reject(new UserError(`option --url: ${url} does not answer (${err.message})`)),
      );
      const modelId = models.data[0].id;
      const avoid = new Set([config.bosTokenId, config.eosTokenId]);
      const base: Omit<LoadOptions, 'concurrency' | 'requests'> = {
        url,
        apiKey: o.apiKey,
        model: modelId,
        maxTokens,
        prompt: (g) => [config.bosTokenId, ...seededIds(seed * 7919 + g * 104729 + promptLen, promptLen - 1, config.vocabSize, avoid)],
      };
      let sent = 0;
      if (warmup > 0) {
        await runLevel({ ...base, concurrency: 1, requests: warmup }, sent);
        sent += warmup;
      }
      const doc: ServeBenchDocument = {
        format: 'moe-offload-serve-bench-v1',
        date: new Date().toISOString(),
        url,
        model: modelId,
        method:
          `Each level: C streaming clients send /v1/completions requests back to back (greedy, ${promptLen}-token prompts, ${maxTokens} tokens) until ${perClient} x C (at least 8) have been sent; ` +
          'output tok/s = completion tokens / level wall time (prefills included); TTFT = request sent to first token chunk; TPOT = (last token chunk - first) / (tokens - 1), per request; ' +
          `${warmup} warm-up request(s) first. Requests are numbered in sending order across levels (the server's routing lanes follow its admission order).`,
        levels: [],
        benchFile: o.bench ?? null,
      };
      for (const c of levels) {
        const requests = Math.max(8, perClient * c);
        const r = await runLevel({ ...base, concurrency: c, requests }, sent);
        sent += requests;
        doc.levels.push({ ...r, bench: points ? benchSide(points, c, promptLen) : null });
        process.stderr.write(`serve-bench: concurrency ${c}: ${r.outputTokensPerSecond.toFixed(1)} tok/s, TTFT p50 ${r.ttftMs.p50.toFixed(1)} ms, TPOT p50 ${r.tpotMs.p50.toFixed(2)} ms\n`);
      }
      mkdirSync(o.out, { recursive: true });
      writeFileAtomic(join(o.out, 'serve-bench.json'), JSON.stringify(doc, null, 2) + '\n');
      const md = serveBenchMarkdown(doc);
      writeFileAtomic(join(o.out, 'serve-bench.md'), md);
      process.stdout.write(md);
    });
}
