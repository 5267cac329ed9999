/**
 * record-trace on a tiny synthetic checkpoint: the recorded routing is what the model routes (checked
 * against the router logits the engine's debug hook shows on a plain run of the same prompts), gate_next
 * is the next MoE layer's router applied to this layer's MoE input (checked by hand from the checkpoint's
 * router weights), SIGINT leaves a valid shorter trace, and bad inputs fail cleanly without an output file.
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrace, type TraceTable } from '../../../traces/src/reader.js';
import { Engine } from '../../src/engine/index.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { recordTrace } from '../../src/record/recorder.js';
import { makeCheckpoint, requireAddonOrSkip } from '../engine/helpers.js';
import { repoRoot, runCli, tempDir } from '../../../core/test/helpers.js';

const ready = requireAddonOrSkip('record-trace tests');

/** top-k of a logit row by descending value, ties to the lower index (the engine's rule). */
function topK(logits: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: logits.length }, (_, e) => e)
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .slice(0, k);
}

function readBf16Matrix(file: string, offset: number, rows: number, cols: number): Float64Array {
  const buf = Buffer.alloc(rows * cols * 2);
  const fd = openSync(file, 'r');
  readSync(fd, buf, 0, buf.length, offset);
  closeSync(fd);
  const out = new Float64Array(rows * cols);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < rows * cols; i++) {
    u[0] = buf.readUInt16LE(2 * i) << 16;
    out[i] = f[0];
  }
  return out;
}

describe.skipIf(!ready)('record-trace', () => {
  const tmp = tempDir('record-trace-');
  let model = '';
  let trace: TraceTable;
  const P = 7;
  const N = 4;
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 1);
    await recordTrace({ model, dataset: 'builtin', batch: 2, promptLen: P, gen: N, sequences: 2, out: join(tmp.path, 't.arrow'), quiet: true });
    trace = readTrace(join(tmp.path, 't.arrow'));
  });
  afterAll(() => tmp.cleanup());

  it('writes every processed token at every MoE layer, with all column groups', () => {
    const L = trace.meta.moeLayers.length;
    expect(trace.rows).toBe(2 * (P + N - 1) * L);
    expect(trace.token && trace.scores && trace.gateNext && trace.layerUs && trace.hits).toBeTruthy();
    expect(trace.meta.routingSource).toBe('model');
    expect(trace.meta.notes).toMatch(/hits and misses are 0/);
    expect(Array.from(trace.hits!).every((h) => h === 0)).toBe(true);
    expect(Array.from(trace.layerUs!).every((t) => t > 0)).toBe(true);
    // last MoE layer: gate_next null; others valid
    const last = trace.meta.moeLayers[L - 1];
    for (let r = 0; r < trace.rows; r++) expect(trace.gateNextValid![r]).toBe(trace.layer[r] === last ? 0 : 1);
  });

  it('recorded routing and scores equal what the model routes on a plain run (router logits via the debug hook)', async () => {
    const k = trace.meta.topK;
    const E = trace.meta.numExperts;
    const engine = await Engine.load(model);
    try {
      const prompts = [0, 1].map((s) => Array.from({ length: P }, (_, p) => {
        const r = Array.from({ length: trace.rows }, (_, i) => i).find((i) => trace.seq[i] === s && trace.pos[i] === p)!;
        return trace.token![r];
      }));
      engine.setDebugCapture(['router_logits']);
      await engine.generateAll({ prompts, maxNewTokens: N, stopOnEos: false });
      const caps = engine.takeDebugCapture();
      // one capture per (forward, MoE layer), rows in batch order = trace rows of that (step, layer)
      let r = 0;
      let compared = 0;
      for (const c of caps) {
        for (let row = 0; row < c.rows; row++, r++) {
          expect(trace.layer[r]).toBe(c.layer);
          const logits = c.data.subarray(row * c.cols, (row + 1) * c.cols);
          expect(Array.from(trace.experts.subarray(r * k, r * k + k))).toEqual(topK(logits, k));
          const mx = Math.max(...logits);
          const ex = Array.from(logits, (v) => Math.exp(v - mx));
          const sum = ex.reduce((a, b) => a + b, 0);
          for (let e = 0; e < E; e++) expect(trace.scores![r * E + e]).toBeCloseTo(ex[e] / sum, 5);
          compared++;
        }
      }
      expect(r).toBe(trace.rows);
      expect(compared).toBeGreaterThan(0);
    } finally {
      engine.close();
    }
  });

  it('gate_next = top-k of the next MoE layer router on this layer\'s MoE input (hand check from the weights)', async () => {
    const ckpt = openCheckpoint(model);
    const { moeLayers, topK: k, numExperts: E } = trace.meta;
    const H = ckpt.config.hiddenSize;
    const engine = await Engine.load(model);
    try {
      const prompts = [Array.from({ length: P }, (_, p) => trace.token![Array.from({ length: trace.rows }, (_, i) => i).find((i) => trace.seq[i] === 0 && trace.pos[i] === p)!])];
      engine.setDebugCapture(['ffn_norm']);
      await engine.generateAll({ prompts, maxNewTokens: 1, stopOnEos: false });
      const caps = engine.takeDebugCapture().filter((c) => c.layer === moeLayers[0]);
      const next = ckpt.tensors.get(`model.layers.${moeLayers[1]}.mlp.gate.weight`)!;
      const W = readBf16Matrix(next.file, next.offset, E, H);
      let checked = 0;
      for (let p = 0; p < P; p++) {
        const x = caps[0].data.subarray(p * H, (p + 1) * H);
        const logits = Array.from({ length: E }, (_, e) => {
          let s = 0;
          for (let h = 0; h < H; h++) s += W[e * H + h] * x[h];
          return s;
        });
        const want = topK(logits, k);
        const r = Array.from({ length: trace.rows }, (_, i) => i).find((i) => trace.seq[i] === 0 && trace.pos[i] === p && trace.layer[i] === moeLayers[0])!;
        const got = Array.from(trace.gateNext!.subarray(r * k, r * k + k));
        const sorted = [...logits].sort((a, b) => b - a);
        if (sorted[k - 1] - sorted[k] > 1e-4) {
          expect(got).toEqual(want);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(P / 2);
    } finally {
      engine.close();
    }
  });

  it('reads a ShareGPT file (first human turn)', async () => {
    const file = join(tmp.path, 'sg.json');
    writeFileSync(file, JSON.stringify([{ id: 'a', conversations: [{ from: 'human', value: 'Hello there, how are you?' }, { from: 'gpt', value: 'Fine.' }] }]));
    const out = join(tmp.path, 'sg.arrow');
    await recordTrace({ model, dataset: file, batch: 1, promptLen: 5, gen: 2, out, quiet: true });
    const t = readTrace(out);
    expect(t.meta.dataset).toBe('sharegpt:sg.json');
    expect(t.rows).toBe((5 + 2 - 1) * t.meta.moeLayers.length);
  });

  it('SIGINT closes the writer, leaves a valid, shorter trace and exits 130', async () => {
    const out = join(tmp.path, 'int.arrow');
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), 'record-trace', '--model', model, '--prompt-len', '4', '--gen', '100000', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (!sent && /record-trace: \d+\/100000 generated tokens \(\d+%\)/.test(err)) {
        sent = true;
        setTimeout(() => child.kill('SIGINT'), 1500);
      }
    });
    const code = await new Promise<number | null>((res) => child.on('close', res));
    expect(code, err).toBe(130);
    expect(err).toMatch(/record-trace interrupted: wrote .*a shorter trace/);
    const t = readTrace(out);
    expect(t.rows).toBeGreaterThan(0);
    expect(t.rows).toBeLessThan((4 + 100000 - 1) * t.meta.moeLayers.length);
    expect(readdirSync(tmp.path).filter((f) => f.includes('.partial-'))).toEqual([]);
  }, 120_000);

  it('bad inputs: clear errors and no output file', () => {
    const bad = join(tmp.path, 'bad.json');
    writeFileSync(bad, '[{"id": 1, "conversations": [{"from": "human"');
    const noConv = join(tmp.path, 'noconv.json');
    writeFileSync(noConv, '[{"id": 1}]');
    const notArray = join(tmp.path, 'object.json');
    writeFileSync(notArray, '{"conversations": []}');
    const base = ['record-trace', '--model', model, '--prompt-len', '4', '--gen', '2', '--quiet'];
    const cases: Array<[string[], RegExp]> = [
      [['--dataset', join(tmp.path, 'missing.json')], /missing\.json: no such dataset file/],
      [['--dataset', bad], /bad\.json: no complete conversation has a non-empty human turn \(0 complete conversations read\)/],
      [['--dataset', noConv], /entry 0 has no conversations array/],
      [['--dataset', notArray], /object\.json: not ShareGPT-shaped/],
      [['--batch', '0'], /--batch/],
      [['--policy', 'mru', '--cache', '2'], /--policy/],
      [['--cache', '99'], /option --cache: 99 is out of range \[1, 8\]/],
      [['--device', 'cuda'], /CUDA/],
      [['--routing', join(tmp.path, 'missing.arrow')], /missing\.arrow/],
      [['--cache', '2', '--policy', 'belady'], /option --policy: belady needs --routing <trace>/],
    ];
    for (const [args, msg] of cases) {
      const out = join(tmp.path, `never-${cases.findIndex((c) => c[0] === args)}.arrow`);
      const r = runCli([...base, ...args, '--out', out]);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(existsSync(out)).toBe(false);
    }
    expect(readdirSync(tmp.path).filter((f) => f.includes('.partial-'))).toEqual([]);
  });
});
