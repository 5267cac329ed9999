/**
 * Fault injection (issue 15, "Must show"): table-driven, seeded mutations of tiny traces, ESFT folders,
 * calibration profiles and predictor folders. Every case must end in a clean refusal: non-zero exit (or,
 * in-process, a BadInputError), one line naming the file, no stack trace, no hang, no partial output.
 * Byte flips run in-process in a worker thread (hundreds of cases; a hang is caught by terminating the
 * worker); the other classes run the built CLI under a time limit. The tally is printed at the end.
 * Checkpoint mutations are left to the model-loading work (another branch owns checkpoint validation).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from '../../core/test/helpers.js';
import { TraceWriter } from '../../traces/src/writer.js';
import { tinyMeta } from '../../traces/test/fixtures.js';
import { writeEsftDir } from '../../traces/test/fixtures.js';
import { structuredSequences, writeTinyTrace } from '../../predictor/test/fixtures.js';
import { mulberry32 } from '../../predictor/src/random.js';

const d = tempDir('fault-injection-');
const tally = new Map<string, Map<string, number>>();
const count = (cls: string, outcome: string) => {
  const m = tally.get(cls) ?? new Map<string, number>();
  m.set(outcome, (m.get(outcome) ?? 0) + 1);
  tally.set(cls, m);
};
afterAll(() => {
  const lines = ['fault injection: cases by class and outcome'];
  let total = 0;
  for (const [cls, m] of tally) {
    const n = [...m.values()].reduce((a, b) => a + b, 0);
    total += n;
    lines.push(`  ${cls.padEnd(22)} ${String(n).padStart(4)} cases: ${[...m].map(([o, c]) => `${o} ${c}`).join(', ')}`);
  }
  lines.push(`  ${'total'.padEnd(22)} ${String(total).padStart(4)} cases`);
  console.log(lines.join('\n'));
  d.cleanup();
});

/** The seeded generator of every mutation below (the predictor's mulberry32). */
const rng = mulberry32;

function tinyTrace(path: string): void {
  const w = TraceWriter.create(path, tinyMeta(), { gateNext: true });
  for (let s = 0; s < 6; s++) {
    w.append({
      step: [s, s],
      phase: [1, 1],
      layer: [1, 2],
      seq: [s % 2, s % 2],
      pos: [s >> 1, s >> 1],
      experts: [s % 8, (s + 1) % 8, (s + 2) % 8, (s + 5) % 8],
      weights: [0.6, 0.4, 0.7, 0.3],
      gateNext: [(s + 2) % 8, (s + 5) % 8, 0, 0],
      gateNextValid: [1, 0],
    });
  }
  w.close();
}

/** One CLI run under a time limit; returns what a user would see. */
function cli(args: string[], timeoutMs = 30_000) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), ...args], { encoding: 'utf8', timeout: timeoutMs, cwd: d.path });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', hung: r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' };
}

/** The clean refusal every CLI case must end in. */
function expectRefusal(cls: string, r: ReturnType<typeof cli>, names: string): void {
  // warnings (e.g. the default cost profile is another geometry's) may precede the error line
  const errors = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('moe-offload: warning: '));
  const outcome = r.hung ? 'HANG' : r.status === 0 ? 'ACCEPTED' : /internal error|\n\s+at /.test(r.stderr) ? 'STACK TRACE' : errors.length !== 1 ? 'NOT ONE LINE' : !errors[0].includes(names) ? 'FILE NOT NAMED' : 'refused cleanly';
  count(cls, outcome);
  expect(outcome, `${cls}: ${r.stderr}`).toBe('refused cleanly');
}

const noPartials = (dir: string) => readdirSync(dir).filter((f) => f.includes('.partial-'));

describe('fault injection: trace byte flips and truncations (in-process, seeded)', () => {
  it('every flipped or truncated tiny trace is refused with a BadInputError naming it, or still reads as a valid trace; none hangs', async () => {
    const good = join(d.path, 'good.arrow');
    tinyTrace(good);
    const bytes = readFileSync(good);
    const rand = rng(15);
    const cases: { name: string; bytes: Buffer }[] = [];
    for (let i = 0; i < 400; i++) {
      const b = Buffer.from(bytes);
      const flips = 1 + Math.floor(rand() * 3);
      for (let f = 0; f < flips; f++) b[Math.floor(rand() * b.length)] ^= 1 + Math.floor(rand() * 255);
      cases.push({ name: `flip-${i}.arrow`, bytes: b });
    }
    for (let i = 0; i < 40; i++) cases.push({ name: `cut-${i}.arrow`, bytes: Buffer.from(bytes.subarray(0, Math.floor(rand() * bytes.length))) });
    const reader = join(repoRoot, 'dist', 'traces', 'src', 'reader.js');
    const code = `
      const { parentPort } = require('node:worker_threads');
      let m;
      parentPort.on('message', async ({ name, bytes }) => {
        m ??= await import(${JSON.stringify(reader)});
        try { m.parseTraceBytes(name, new Uint8Array(bytes)); parentPort.postMessage({ r: 'valid' }); }
        catch (e) { parentPort.postMessage({ r: e.name === 'BadInputError' && e.message.startsWith(name + ': ') && !e.message.includes('\\n') ? 'refused' : 'CRASH ' + e.name + ': ' + e.message }); }
      });`;
    let worker = new Worker(code, { eval: true });
    const bad: string[] = [];
    try {
      for (const c of cases) {
        const r = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => {
            void worker.terminate();
            worker = new Worker(code, { eval: true });
            resolve('HANG');
          }, 5000);
          worker.once('message', (m: { r: string }) => {
            clearTimeout(timer);
            resolve(m.r);
          });
          worker.postMessage({ name: c.name, bytes: c.bytes });
        });
        const cls = c.name.startsWith('flip') ? 'trace byte flips' : 'trace truncations';
        count(cls, r === 'refused' ? 'refused cleanly' : r === 'valid' ? 'still a valid trace' : r.split(':')[0]);
        if (r !== 'refused' && r !== 'valid') bad.push(`${c.name}: ${r}`);
      }
    } finally {
      await worker.terminate();
    }
    expect(bad).toEqual([]);
  }, 300_000);
});

describe('fault injection: broken traces through the CLI', () => {
  const dir = join(d.path, 'traces');
  const cases: [string, (p: string) => void][] = [
    ['byte 37 flipped', (p) => { const b = readFileSync(p); b[37] ^= 0xff; writeFileSync(p, b); }],
    ['truncated by half', (p) => { const b = readFileSync(p); writeFileSync(p, b.subarray(0, b.length >> 1)); }],
    ['not Arrow at all', (p) => writeFileSync(p, 'step,layer\n0,1\n')],
    ['a FIFO', (p) => { rmSync(p); execFileSync('mkfifo', [p]); }],
    ['a folder', (p) => { rmSync(p); mkdirSync(p); }],
    ['empty', (p) => writeFileSync(p, '')],
  ];
  beforeAll(() => mkdirSync(dir, { recursive: true }));
  it.each(cases.flatMap(([name, mutate]) => [['traces info', name, mutate], ['simulate', name, mutate]] as const))('%s refuses a trace that is %s', (cmd, name, mutate) => {
    const p = join(dir, `${cmd.replace(' ', '-')}-${name.replaceAll(' ', '-')}.arrow`);
    tinyTrace(p);
    mutate(p);
    const args = cmd === 'simulate' ? ['simulate', '--trace', p, '--policy', 'lru', '--cache', '4'] : ['traces', 'info', p];
    expectRefusal('traces via CLI', cli(args), p);
  });
});

describe('fault injection: ESFT folders', () => {
  // 2 sequences x 2 MoE layers (model layers 1, 2 of 3), top-2 of 8
  const seqs = [
    [[[0, 1], [1, 2]], [[3, 4], [4, 5]]],
    [[[2, 3]], [[6, 7]]],
  ];
  const cases: [string, (dir: string) => string][] = [
    ['a layer file that is a FIFO', (dir) => { const f = join(dir, 'expert_weights_2.txt'); rmSync(f); execFileSync('mkfifo', [f]); return f; }],
    ['two files for one layer', (dir) => { cpSync(join(dir, 'expert_weights_1.txt'), join(dir, 'expert_weights_01.txt')); return dir; }],
    ['a missing layer', (dir) => { rmSync(join(dir, 'expert_weights_2.txt')); return dir; }],
    ['a NaN weight', (dir) => { const f = join(dir, 'expert_weights_1.txt'); writeFileSync(f, readFileSync(f, 'utf8').replace('0.5000', 'nan')); return f; }],
    ['a repeated expert', (dir) => { const f = join(dir, 'expert_weights_1.txt'); writeFileSync(f, readFileSync(f, 'utf8').replace(/^0\t1/, '1\t1')); return f; }],
    ['no final newline', (dir) => { const f = join(dir, 'expert_weights_2.txt'); writeFileSync(f, readFileSync(f, 'utf8').trimEnd()); return f; }],
    ['an empty layer file', (dir) => { const f = join(dir, 'expert_weights_2.txt'); writeFileSync(f, ''); return f; }],
    ['an expert id out of range', (dir) => { const f = join(dir, 'expert_weights_2.txt'); writeFileSync(f, readFileSync(f, 'utf8').replace(/^3/, '99')); return f; }],
    ['a line with fewer tokens than layer 1', (dir) => { const f = join(dir, 'expert_weights_2.txt'); writeFileSync(f, readFileSync(f, 'utf8').replace('3\t4\t4\t5\t\t0.5000\t0.2500\t0.5000\t0.2500', '3\t4\t\t0.5000\t0.2500')); return f; }],
  ];
  it.each(cases)('traces import esft refuses %s, and leaves no output', (name, mutate) => {
    const dir = join(d.path, 'esft', name.replaceAll(' ', '-'));
    writeEsftDir(dir, seqs);
    const named = mutate(dir);
    const outDir = join(d.path, 'esft-out', name.replaceAll(' ', '-'));
    mkdirSync(outDir, { recursive: true });
    const out = join(outDir, 'x.arrow');
    expectRefusal('ESFT folders', cli(['traces', 'import', 'esft', dir, '--out', out, '--layers', '3', '--experts', '8', '--top-k', '2', '--quiet']), named);
    expect(existsSync(out)).toBe(false);
    expect(noPartials(outDir)).toEqual([]);
  });
});

describe('fault injection: calibration profiles', () => {
  const base = JSON.parse(readFileSync(join(repoRoot, 'sim', 'calibration', 'h200-measured.json'), 'utf8'));
  const cases: [string, (c: Record<string, any>) => void][] = [
    ['copyEngines 1e9', (c) => (c.transfer.copyEngines = 1e9)],
    ['cpu.workers 1e9', (c) => (c.cpu.workers = 1e9)],
    ['expertMs 1e308', (c) => (c.gpu.expertMs[0][1] = 1e308)],
    ['h2dGBps 1e-300', (c) => (c.transfer.h2dGBps = 1e-300)],
    ['negative perCopyMs', (c) => (c.transfer.perCopyMs = -1)],
    ['expertBytes 0.5', (c) => (c.expertBytes = 0.5)],
    ['tokens descending', (c) => (c.gpu.headMs = [[16, 0.1], [1, 0.1]])],
    ['headMs a string', (c) => (c.gpu.headMs = 'fast')],
    ['no transfer section', (c) => delete c.transfer],
    ['activationCopyMs 1e300', (c) => (c.cpu.activationCopyMs = 1e300)],
    ['context 1e12', (c) => (c.gpu.byContext.referenceContext = 1e12)],
  ];
  it.each(cases)('simulate refuses a profile with %s', (name, mutate) => {
    const c = structuredClone(base);
    mutate(c);
    const p = join(d.path, `cal-${name.replaceAll(' ', '-')}.json`);
    writeFileSync(p, JSON.stringify(c));
    expectRefusal('calibration profiles', cli(['simulate', '--calibration', p, '--policy', 'lru', '--quiet']), p);
  });
  it('simulate refuses a profile that is a FIFO without blocking', () => {
    const p = join(d.path, 'cal-fifo.json');
    execFileSync('mkfifo', [p]);
    expectRefusal('calibration profiles', cli(['simulate', '--calibration', p, '--policy', 'lru', '--quiet']), p);
  });
});

describe('fault injection: predictor folders', () => {
  const trained = join(d.path, 'pred');
  const trace = join(d.path, 'pred-trace.arrow');
  beforeAll(() => {
    const g = { L: 4, k: 2, E: 8 };
    writeTinyTrace(trace, g, structuredSequences(g, 6, 12, 1), 'tiny/fault');
    const r = cli(['train-predictor', '--traces', `${trace}`, '--out', trained, '--epochs', '1', '--hidden', '4', '--quiet'], 120_000);
    expect(r.status, r.stderr).toBe(0);
  }, 180_000);
  const manifest = (dir: string) => join(dir, 'predictor.json');
  const edit = (dir: string, f: (m: Record<string, any>) => void) => {
    const m = JSON.parse(readFileSync(manifest(dir), 'utf8'));
    f(m);
    writeFileSync(manifest(dir), JSON.stringify(m));
  };
  const cases: [string, (dir: string) => string][] = [
    ["weights.file '../x'", (dir) => { edit(dir, (m) => (m.weights.file = '../pred-trace.arrow')); return manifest(dir); }],
    ['weights.file absolute', (dir) => { edit(dir, (m) => (m.weights.file = '/etc/passwd')); return manifest(dir); }],
    ['weights.file missing', (dir) => { rmSync(join(dir, 'weights.safetensors')); return dir; }],
    ['weights.file a folder', (dir) => { rmSync(join(dir, 'weights.safetensors')); mkdirSync(join(dir, 'weights.safetensors')); return join(dir, 'weights.safetensors'); }],
    ['weights.file a FIFO', (dir) => { rmSync(join(dir, 'weights.safetensors')); execFileSync('mkfifo', [join(dir, 'weights.safetensors')]); return join(dir, 'weights.safetensors'); }],
    ['a flipped weights byte', (dir) => { const f = join(dir, 'weights.safetensors'); const b = readFileSync(f); b[b.length - 3] ^= 0x40; writeFileSync(f, b); return f; }],
    ['a manifest that is not JSON', (dir) => { writeFileSync(manifest(dir), '{"format": '); return manifest(dir); }],
    ['a manifest of version 2', (dir) => { edit(dir, (m) => (m.version = 2)); return manifest(dir); }],
    ['a manifest that is a FIFO', (dir) => { rmSync(manifest(dir)); execFileSync('mkfifo', [manifest(dir)]); return manifest(dir); }],
  ];
  it.each(cases)('simulate --predictor refuses a predictor folder with %s', (name, mutate) => {
    const dir = join(d.path, `pred-${name.replace(/[^a-z0-9]+/gi, '-')}`);
    cpSync(trained, dir, { recursive: true });
    const named = mutate(dir);
    expectRefusal('predictor folders', cli(['simulate', '--trace', trace, '--policy', 'lru', '--cache', '4', '--prefetch', 'predicted', '--predictor', dir, '--quiet']), named);
  });
});
