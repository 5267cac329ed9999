/**
 * Issue 15 for generate, chat and the entry point: no command is a usage error, generate --json carries the
 * cache figures, a checkpoint's warnings are printed, limits are checked before loading, options with no
 * effect are refused and messages speak in the command's own options and plain ranges.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCheckpoint, requireAddonOrSkip } from '../../runtime/test/engine/helpers.js';
import { copyDir, editJson } from '../../runtime/test/model/fixtures.js';
import { runCli, tempDir } from '../../core/test/helpers.js';

describe('the entry point', () => {
  it('no command: the help on stderr and exit 2 (a usage error); --help exits 0', () => {
    const r = runCli([]);
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/Usage: moe-offload/);
    expect(r.stderr).toMatch(/moe-offload: give a command/);
    expect(runCli(['traces']).status).toBe(2);
    expect(runCli(['--help']).status).toBe(0);
    expect(runCli(['help', 'generate']).status).toBe(0);
  });
});

const ready = requireAddonOrSkip('generate/chat hardening tests');

/** Adds one tensor the config does not use, in its own shard listed by the index (Checkpoint.warnings). */
function withExtraTensor(model: string, dir: string): string {
  copyDir(model, dir);
  const header = Buffer.from(JSON.stringify({ 'model.extra.weight': { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(join(dir, 'extra.safetensors'), Buffer.concat([len, header, Buffer.alloc(8)]));
  editJson(join(dir, 'model.safetensors.index.json'), (o) => {
    o.weight_map['model.extra.weight'] = 'extra.safetensors';
  });
  return dir;
}

describe.skipIf(!ready)('generate and chat', () => {
  const tmp = tempDir('gen-hard-');
  let model = '';
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 1);
  });
  afterAll(() => tmp.cleanup());

  it('generate --json with a cache: the cache figures per MoE layer, with the hit rate', () => {
    const r = runCli(['generate', '--model', model, '--prompt', 'hello', '--max-new-tokens', '4', '--cache', '2', '--policy', 'lfu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.tokens).toHaveLength(4);
    const c = doc.expertCache;
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    expect(c).toMatchObject({ policy: 'lfu', slotsPerLayer: 2 });
    expect(c.moeLayers).toHaveLength(config.num_hidden_layers - config.first_k_dense_replace);
    expect(c.hits).toHaveLength(c.moeLayers.length);
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    expect(sum(c.requests)).toBeGreaterThan(0);
    expect(c.hitRate).toBeCloseTo(sum(c.hits) / sum(c.requests), 12);
    // Several prompts: the run's figures beside the results.
    const two = JSON.parse(runCli(['generate', '--model', model, '--prompt', 'a', '--prompt', 'b', '--max-new-tokens', '2', '--cache', '2', '--json']).stdout);
    expect(two.results).toHaveLength(2);
    expect(two.expertCache.policy).toBe('lru');
    // No cache, no cache figures.
    expect(JSON.parse(runCli(['generate', '--model', model, '--prompt', 'a', '--max-new-tokens', '2', '--json']).stdout).expertCache).toBeUndefined();
  });

  it('long work is never silent: generate --json and bench print a heartbeat line (shortened here by MOE_HEARTBEAT_MS)', () => {
    const env = { MOE_HEARTBEAT_MS: '50' };
    const g = runCli(['generate', '--model', model, '--prompt-ids', '1', '--max-new-tokens', '3000', '--no-stop-on-eos', '--json'], { env });
    expect(g.status, g.stderr).toBe(0);
    expect(g.stderr).toMatch(/^generate: (prefill of 1 x 1 tokens|\d+\/3000 generated tokens), \d+ s so far$/m);
    expect(JSON.parse(g.stdout).tokens).toHaveLength(3000);
    const b = runCli(['bench', '--model', model, '--device', 'cpu', '--batch', '1', '--prompt', '1500', '--new-tokens', '400', '--repeats', '1', '--warmup', '0'], { env });
    expect(b.status, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/^bench: batch 1 prompt 1500 new 400, timed run 1\/1: (prefill of 1 x 1500 tokens|decode step \d+\/399), \d+ s so far$/m);
    // Without the variable the heartbeat waits 5 s: a short run prints none.
    const quiet = runCli(['generate', '--model', model, '--prompt-ids', '1', '--max-new-tokens', '2', '--json']);
    expect(quiet.stderr).not.toMatch(/so far/);
  });

  it("prints the checkpoint's warnings (an unexpected extra tensor)", () => {
    const dir = withExtraTensor(model, join(tmp.path, 'extra'));
    const r = runCli(['generate', '--model', dir, '--prompt-ids', '1,2', '--max-new-tokens', '2']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/moe-offload: warning: .*model\.extra\.weight/);
    const t = runCli(['record-trace', '--model', dir, '--prompt-len', '3', '--gen', '2', '--quiet', '--out', join(tmp.path, 'w.arrow')]);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/moe-offload: warning: .*model\.extra\.weight/);
    const b = runCli(['bench', '--model', dir, '--device', 'cpu', '--batch', '1', '--prompt', '3', '--new-tokens', '2', '--repeats', '1', '--warmup', '0']);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/moe-offload: warning: .*model\.extra\.weight/);
  });

  it('refuses, before loading, what cannot work or would do nothing, in its own words', () => {
    const g = ['generate', '--model', model, '--prompt', 'hi'];
    const c = ['chat', '--model', model];
    const cases: Array<[string[], RegExp]> = [
      [[...g, '--max-new-tokens', '200000'], /option --max-new-tokens: 2 prompt tokens \+ 200000 new tokens exceed the model's context of 163840 tokens/],
      [[...g, '--temperature', '0'], /option --temperature: must be above 0 and at most 100, got 0$/m],
      [[...g, '--temperature', '1', '--top-p', '0'], /option --top-p: must be above 0 and at most 1, got 0$/m],
      [[...g, '--policy', 'lfu'], /option --policy: has no effect here \(it is used with --cache or --gpu-memory\)/],
      [[...g, '--cache', '2', '--policy', 'belady'], /option --policy: belady decides from the run's future requests.*record-trace --routing/],
      [[...g, '--cache', '2', '--policy', 'static'], /option --policy: static pins the most popular experts of a replayed trace; add --routing/],
      [[...g, '--cache', '99'], /option --cache: 99 is out of range \[0, 8\]/],
      [[...g, '--device', 'cuda', '--threads', '2'], /option --threads: has no effect here \(it is used with --device cpu\)/],
      [[...c, '--context', '100'], /option --context: has no effect here \(it is used with --gpu-memory/],
      [[...c, '--max-new-tokens', '200000'], /option --max-new-tokens: .* exceed the model's context/],
    ];
    for (const [args, want] of cases) {
      const r = runCli(args, { input: '' });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(want);
      expect(r.stderr).not.toMatch(/5e-324|cache\.(schedule|pinned|policy|slotsPerLayer)/);
    }
  });

  it('a missing tokenizer: chat says what is missing without naming options it lacks; generate names its --prompt-ids', () => {
    const dir = copyDir(model, join(tmp.path, 'no-tok'));
    rmSync(join(dir, 'tokenizer.json'));
    const chat = runCli(['chat', '--model', dir], { input: 'hello\n' });
    expect(chat.status).toBe(2);
    expect(chat.stderr).toMatch(/tokenizer\.json: missing tokenizer file: tokenizer\.json \(both are needed to encode and decode text\)/);
    expect(chat.stderr).not.toMatch(/--prompt-ids/);
    const gen = runCli(['generate', '--model', dir, '--prompt-ids', '1,2', '--max-new-tokens', '2']);
    expect(gen.status, gen.stderr).toBe(0);
    expect(gen.stderr).toMatch(/printing token ids only \(--prompt-ids needs no tokenizer\)/);
  });
});
