/**
 * Engine behaviour without the oracle: option validation (errors name the option), stopping on EOS
 * or the token limit per sequence inside a batch, seeded sampling, lifecycle errors, and the CLI's
 * option errors. Uses one tiny synthetic checkpoint.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type GenerateOptions } from '../../src/engine/index.js';
import { runCli, tempDir } from '../../../core/test/helpers.js';
import { makeCheckpoint, requireAddonOrSkip } from './helpers.js';

const ready = requireAddonOrSkip('engine behaviour');

describe.skipIf(!ready)('engine behaviour', () => {
  const tmp = tempDir('moe-engine-behaviour-');
  let model: string;
  let engine: Engine;
  const prompt = [500, 3, 14, 15, 92];

  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'ckpt'), 'tiny-a', 5);
    engine = await Engine.load(model, { threads: 2 });
  });
  afterAll(() => {
    engine?.close();
    tmp.cleanup();
  });

  const run = (o: Partial<GenerateOptions>) => engine.generateAll({ prompts: [prompt], maxNewTokens: 6, ...o } as GenerateOptions);

  it('refuses bad load options by name', async () => {
    await expect(Engine.load(model, { device: 'tpu' as 'cpu' })).rejects.toThrow(/option device: unknown value 'tpu'/);
    // A CPU-only build refuses 'cuda' by name; a CUDA build without a GPU says so; with one it loads.
    const cuda = await Engine.load(model, { device: 'cuda' }).then(
      (e) => { const backend = e.info().backend; e.close(); return backend; },
      (err: Error) => err.message,
    );
    expect(cuda).toMatch(/^cuda$|device 'cuda': this build of the native engine has no CUDA backend|no usable CUDA GPU|unsupported geometry/);
    await expect(Engine.load(model, { threads: -1 })).rejects.toThrow(/option threads/);
    await expect(Engine.load(model, { thread: 2 } as never)).rejects.toThrow(/option thread: unknown option/);
    await expect(Engine.load(join(tmp.path, 'nope'))).rejects.toThrow(/not a directory/);
  });

  it('refuses bad generate options by name', async () => {
    await expect(run({ maxNewTokens: 0 })).rejects.toThrow(/option maxNewTokens/);
    await expect(run({ prompts: [] })).rejects.toThrow(/option prompts/);
    await expect(run({ prompts: [[]] })).rejects.toThrow(/option prompts\[0\]: is empty/);
    await expect(run({ prompts: [[500, 99999]] })).rejects.toThrow(/option prompts\[0\]\[1\]: token id 99999 is outside the vocabulary \[0, 512\)/);
    await expect(run({ sampling: { temperature: 0 } })).rejects.toThrow(/option sampling.temperature/);
    await expect(run({ sampling: { temperature: 1, topP: 1.5 } })).rejects.toThrow(/option sampling.topP/);
    await expect(run({ sampling: { temperature: 1, seed: -3 } })).rejects.toThrow(/option sampling.seed/);
    await expect(run({ sampling: 'beam' as 'greedy' })).rejects.toThrow(/option sampling/);
    await expect(run({ maxTokens: 3 } as never)).rejects.toThrow(/option maxTokens: unknown option/);
    await expect(run({ keepLogits: 'yes' } as never)).rejects.toThrow(/option keepLogits: must be a boolean/);
  });

  it('keepLogits changes nothing on the CPU backend (its logits are on the host already)', async () => {
    const kept = await engine.generateAll({ prompts: [prompt], maxNewTokens: 4, stopOnEos: false, keepLogits: true });
    const plain = await engine.generateAll({ prompts: [prompt], maxNewTokens: 4, stopOnEos: false });
    expect(plain.tokens).toEqual(kept.tokens);
  });

  it('stops each sequence at its own limit or EOS, the others unaffected', async () => {
    const greedy = await engine.generateAll({ prompts: [prompt], maxNewTokens: 8, stopOnEos: false });
    // A copy of the checkpoint whose eos id is the 4th greedily generated token.
    const eosDir = join(tmp.path, 'eos');
    mkdirSync(eosDir);
    for (const f of readdirSync(model)) copyFileSync(join(model, f), join(eosDir, f));
    const cfg = JSON.parse(readFileSync(join(eosDir, 'config.json'), 'utf8'));
    const eos = greedy.tokens[0][3];
    expect(greedy.tokens[0].slice(0, 3)).not.toContain(eos);
    cfg.eos_token_id = eos;
    writeFileSync(join(eosDir, 'config.json'), JSON.stringify(cfg));
    const e2 = await Engine.load(eosDir, { threads: 2 });
    try {
      const other = [500, 7, 7];
      const alone = await e2.generateAll({ prompts: [other], maxNewTokens: 8, stopOnEos: true });
      const events = [];
      for await (const t of e2.generate({ prompts: [prompt, other], maxNewTokens: 8 })) events.push(t);
      const seq0 = events.filter((t) => t.sequence === 0);
      expect(seq0.map((t) => t.token)).toEqual(greedy.tokens[0].slice(0, 4));
      expect(seq0.at(-1)!.finished).toBe('eos');
      expect(seq0.slice(0, -1).every((t) => t.finished === null)).toBe(true);
      expect(events.filter((t) => t.sequence === 1).map((t) => t.token)).toEqual(alone.tokens[0]);
      const noStop = await e2.generateAll({ prompts: [prompt], maxNewTokens: 8, stopOnEos: false });
      expect(noStop.tokens[0]).toEqual(greedy.tokens[0]);
      expect(noStop.finished[0]).toBe('length');
    } finally {
      e2.close();
    }
  });

  it('samples reproducibly from a seed; a tiny top-p is greedy', async () => {
    const sampling = { temperature: 1.5, topP: 0.95, seed: 1234 };
    const a = await run({ maxNewTokens: 12, sampling, stopOnEos: false });
    const b = await run({ maxNewTokens: 12, sampling, stopOnEos: false });
    expect(a.tokens).toEqual(b.tokens);
    const others: number[][] = [];
    for (const seed of [1, 2, 3]) others.push((await run({ maxNewTokens: 12, sampling: { ...sampling, seed }, stopOnEos: false })).tokens[0]);
    expect(others.some((t) => JSON.stringify(t) !== JSON.stringify(a.tokens[0]))).toBe(true);
    const greedy = await run({ maxNewTokens: 12, stopOnEos: false });
    const nucleus = await run({ maxNewTokens: 12, sampling: { temperature: 1, topP: 1e-6, seed: 9 }, stopOnEos: false });
    expect(nucleus.tokens).toEqual(greedy.tokens);
  });

  it('records logits only when asked, one vector per generated token', async () => {
    await run({ maxNewTokens: 3, stopOnEos: false });
    expect(engine.logits).toBeNull();
    await run({ maxNewTokens: 3, stopOnEos: false, recordLogits: true });
    expect(engine.logits!.perSequence[0].length).toBe(3);
    expect(engine.logits!.perSequence[0][0].length).toBe(512);
  });

  it('runs one generate at a time and refuses use after close', async () => {
    const first = engine.generate({ prompts: [prompt], maxNewTokens: 4 });
    await first.next();
    await expect(run({})).rejects.toThrow(/engine is busy/);
    await first.return(undefined);
    await run({});
    const e2 = await Engine.load(model, { threads: 1 });
    e2.close();
    await expect(e2.generateAll({ prompts: [prompt], maxNewTokens: 2 })).rejects.toThrow(/engine is closed/);
  });

  it('CLI: streams text, chats over a pipe, and names bad options', () => {
    const text = runCli(['generate', '--model', model, '--prompt', 'hello', '--max-new-tokens', '5', '--threads', '2']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout.endsWith('\n')).toBe(true);
    const chat = runCli(['chat', '--model', model, '--max-new-tokens', '4', '--threads', '2'], { input: 'hi\nhow are you\n' });
    expect(chat.status, chat.stderr).toBe(0);
    expect(chat.stdout.startsWith('Assistant:')).toBe(true);
    // two replies (a random-weight reply may itself spell 'Assistant:', hence at least)
    expect(chat.stdout.split('Assistant:').length - 1).toBeGreaterThanOrEqual(2);
    const both = runCli(['generate', '--model', model, '--prompt', 'x', '--prompt-ids', '1,2']);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/either --prompt or --prompt-ids/);
    const mixed = runCli(['generate', '--model', model, '--prompt-ids', '500,1', '--greedy', '--temperature', '0.7']);
    expect(mixed.stderr).toMatch(/option --greedy: cannot be combined/);
    const topP = runCli(['generate', '--model', model, '--prompt-ids', '500,1', '--top-p', '0.5']);
    expect(topP.stderr).toMatch(/option --temperature: required/);
    const ids = runCli(['generate', '--model', model, '--prompt-ids', '500,9999']);
    expect(ids.stderr).toMatch(/option --prompt-ids: 9999 is out of range/);
    const cuda = runCli(['generate', '--model', model, '--prompt-ids', '500,1', '--device', 'cuda']);
    // CPU-only build: refused by name; a CUDA build on a machine without a GPU / with a tiny geometry: also an error.
    expect(cuda.stderr).toMatch(/has no CUDA backend|no usable CUDA GPU|unsupported geometry/);
    const noAddon = runCli(['generate', '--model', model, '--prompt-ids', '500,1'], { env: { MOE_NATIVE_ADDON: join(tmp.path, 'missing.node') } });
    expect(noAddon.status).toBe(2);
    expect(noAddon.stderr).toMatch(/MOE_NATIVE_ADDON=.*missing.node: no such file/);
  }, 300_000); // nine CLI runs: slow when the suite shares a small machine with the oracle tests
});
