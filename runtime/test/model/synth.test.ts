import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelConfig } from '../../src/model/config.js';
import { LITE_CONFIG } from '../../src/model/synth/geometries.js';
import { repoRoot, runCli, tempDir } from '../../../core/test/helpers.js';
import { makeTiny } from './fixtures.js';

const d = tempDir();
afterAll(() => d.cleanup());

function hashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = createHash('sha256').update(readFileSync(join(dir, f))).digest('hex');
  return out;
}

describe('synth-model', () => {
  it('is deterministic: same seed, same bytes; another seed, other weights', async () => {
    const a = hashes(await makeTiny(join(d.path, 'a'), 'tiny-c', 42));
    const b = hashes(await makeTiny(join(d.path, 'b'), 'tiny-c', 42));
    const c = hashes(await makeTiny(join(d.path, 'c'), 'tiny-c', 43));
    expect(b).toEqual(a);
    const shards = Object.keys(a).filter((f) => f.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(1);
    for (const s of shards) expect(c[s], s).not.toBe(a[s]);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json']) expect(c[f], f).toBe(a[f]);
  });

  it('writes the same bytes with worker threads as inline', async () => {
    const inline = hashes(await makeTiny(join(d.path, 'inline'), 'tiny-b', 8));
    const out = join(d.path, 'threaded');
    const r = runCli(['synth-model', '--geometry', 'tiny-b', '--seed', '8', '--out', out, '--threads', '2', '--quiet']);
    expect(r.stderr).toBe('');
    expect(hashes(out)).toEqual(inline);
  });

  it('writes the Hub layout with every field of the real config.json', async () => {
    const dir = await makeTiny(join(d.path, 'layout'), 'tiny-b', 1);
    const files = readdirSync(dir).sort();
    expect(files).toEqual([
      'config.json', 'generation_config.json',
      'model-00001-of-000004.safetensors', 'model-00002-of-000004.safetensors', 'model-00003-of-000004.safetensors', 'model-00004-of-000004.safetensors',
      'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json',
    ]);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(Object.keys(cfg).sort()).toEqual(Object.keys(LITE_CONFIG).sort());
    // floats stay floats for transformers' strict config classes
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toMatch(/"routed_scaling_factor": 1\.0/);
    expect(loadModelConfig(dir)).toMatchObject({ qLoraRank: 48, firstKDenseReplace: 2, normTopkProb: true });
  });

  it('takes a JSON geometry of config.json overrides', () => {
    const g = join(d.path, 'geom.json');
    writeFileSync(g, JSON.stringify({ vocab_size: 300, bos_token_id: 290, eos_token_id: 291, hidden_size: 32, num_hidden_layers: 2, intermediate_size: 64, moe_intermediate_size: 16, n_routed_experts: 4, num_experts_per_tok: 2, n_shared_experts: 1, num_attention_heads: 2, num_key_value_heads: 2, kv_lora_rank: 16, qk_nope_head_dim: 8, qk_rope_head_dim: 4, v_head_dim: 8 }));
    const out = join(d.path, 'from-json');
    const r = runCli(['synth-model', '--geometry', g, '--seed', '3', '--out', out, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/wrote .*from-json: .*geom\.json, seed 3, \d+ shards/);
    expect(loadModelConfig(out)).toMatchObject({ hiddenSize: 32, nRoutedExperts: 4, rmsNormEps: 1e-6, ropeScaling: { factor: 40 } });
  });

  it('refuses bad options, naming them, and leaves nothing behind', () => {
    const out = join(d.path, 'never');
    const cases: [string[], RegExp][] = [
      [['--geometry', 'huge'], /option --geometry: 'huge' is neither tiny, lite/],
      [['--geometry', 'tiny', '--tiny-variant', 'tiny-z'], /option --tiny-variant: unknown value 'tiny-z'/],
      [['--geometry', 'lite', '--tiny-variant', 'tiny-b'], /option --tiny-variant: only valid with --geometry tiny/],
      [['--geometry', 'tiny', '--seed', '-4'], /option --seed: -4 is out of range/],
      [['--geometry', 'tiny', '--seed', 'x'], /option --seed: 'x' is not an integer/],
      [['--geometry', join(d.path, 'absent.json')], /absent\.json: geometry file not found/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(['synth-model', ...args, '--out', out, '--quiet']);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const bad = join(d.path, 'sigmoid.json');
    writeFileSync(bad, JSON.stringify({ scoring_func: 'sigmoid' }));
    const r = runCli(['synth-model', '--geometry', bad, '--out', out, '--quiet']);
    expect(r.stderr).toMatch(/geometry .*sigmoid\.json: unsupported scoring_func = "sigmoid"/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(d.path).filter((f) => f.includes('.partial-'))).toEqual([]);
  });

  it('never overwrites silently; --force replaces', async () => {
    const out = await makeTiny(join(d.path, 'exists'), 'tiny-a', 1);
    const before = hashes(out);
    const r = runCli(['synth-model', '--geometry', 'tiny', '--seed', '9', '--out', out, '--quiet']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/option --out: the folder .*exists already exists; pass --force to replace it/);
    expect(hashes(out)).toEqual(before);
    const f = runCli(['synth-model', '--geometry', 'tiny', '--seed', '9', '--out', out, '--quiet', '--force']);
    expect(f.status).toBe(0);
    expect(hashes(out)['model-00001-of-000004.safetensors']).not.toBe(before['model-00001-of-000004.safetensors']);
    expect(readdirSync(d.path).filter((f) => f.includes('.old-') || f.includes('.partial-'))).toEqual([]);
  });

  it('issue 15: --force never replaces a file, a device or a geometry file inside --out', async () => {
    const file = join(d.path, 'a-file');
    writeFileSync(file, 'keep');
    const r = runCli(['synth-model', '--geometry', 'tiny', '--out', file, '--quiet', '--force']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/option --out: .*a-file exists and is not a folder/);
    expect(readFileSync(file, 'utf8')).toBe('keep');
    // A special file (a FIFO here, as /dev/full in the issue; never a real device, which a regression would delete):
    // refused by the same check, so never renamed away.
    const fifo = join(d.path, 'a-fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const dev = runCli(['synth-model', '--geometry', 'tiny', '--out', fifo, '--quiet', '--force']);
    expect(dev.status).toBe(2);
    expect(dev.stderr).toMatch(/option --out: .*a-fifo exists and is not a folder/);
    expect(statSync(fifo).isFIFO()).toBe(true);
    const ckpt = await makeTiny(join(d.path, 'with-geometry'), 'tiny-a', 2);
    const g = runCli(['synth-model', '--geometry', join(ckpt, 'config.json'), '--out', ckpt, '--quiet', '--force']);
    expect(g.status).toBe(2);
    expect(g.stderr).toMatch(/option --geometry: .*is inside --out/);
    expect(existsSync(join(ckpt, 'config.json'))).toBe(true);
  });

  it('an interrupted run leaves no checkpoint at DIR and removes its partial directory', async () => {
    // ~0.4 GB of weights: long enough to be interrupted mid-write on any machine
    const g = join(d.path, 'medium.json');
    writeFileSync(g, JSON.stringify({ vocab_size: 32000, bos_token_id: 31000, eos_token_id: 31001, hidden_size: 1024, num_hidden_layers: 3, n_routed_experts: 16 }));
    const out = join(d.path, 'interrupted');
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), 'synth-model', '--geometry', g, '--out', out, '--quiet'], { stdio: 'ignore' });
    const partialSeen = await new Promise<boolean>((resolve) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        const partial = readdirSync(d.path).find((f) => f.startsWith('.interrupted.partial-'));
        const shards = partial ? readdirSync(join(d.path, partial)).filter((f) => f.endsWith('.safetensors')) : [];
        if (shards.length > 0 || Date.now() - t0 > 20_000) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve(shards.length > 0);
        }
      }, 20);
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? -1 : null))));
    expect(partialSeen).toBe(true);
    expect(code).not.toBe(0);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(d.path).filter((f) => f.includes('.partial-'))).toEqual([]);
  });
});
