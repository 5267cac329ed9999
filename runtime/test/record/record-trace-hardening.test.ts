/**
 * Issue 15, items 2, 4, 5, 6, 8, 11, 19 for record-trace: SIGTERM is handled like Ctrl-C (valid shorter trace,
 * exit 130, the sequences really written reported), stale partials of the output are removed, an existing
 * trace is replaced only with --force, a special file or one of the inputs is never an output, and options
 * that would do nothing or cannot fit the context are refused before the model loads.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrace } from '../../../traces/src/reader.js';
import { makeCheckpoint, requireAddonOrSkip } from '../engine/helpers.js';
import { repoRoot, runCli, tempDir } from '../../../core/test/helpers.js';

const ready = requireAddonOrSkip('record-trace hardening tests');

/** A PID no process has (so a partial named after it is stale). */
function deadPid(): number {
  for (let pid = 4_000_000; pid > 1000; pid -= 7919) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return pid;
    }
  }
  throw new Error('no free pid found');
}

describe.skipIf(!ready)('record-trace hardening', () => {
  const tmp = tempDir('record-hard-');
  let model = '';
  let small = '';
  const base = () => ['record-trace', '--model', model, '--prompt-len', '4', '--gen', '2', '--quiet'];
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 1);
    small = join(tmp.path, 'small.arrow');
    const r = runCli([...base(), '--out', small]);
    expect(r.status, r.stderr).toBe(0);
  });
  afterAll(() => tmp.cleanup());

  it('SIGTERM: a valid shorter trace, exit 130, the sequences written (not the planned ones) reported', async () => {
    const out = join(tmp.path, 'term.arrow');
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), 'record-trace', '--model', model, '--prompt-len', '4', '--gen', '100000', '--batch', '2', '--sequences', '6', '--out', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (!sent && /record-trace: \d+\/600000 generated tokens/.test(err)) {
        sent = true;
        setTimeout(() => child.kill('SIGTERM'), 1500);
      }
    });
    const code = await new Promise<number | null>((res) => child.on('close', res));
    expect(code, err).toBe(130);
    expect(err).toMatch(/SIGTERM: closing the trace after this step/);
    const m = /record-trace interrupted: wrote .*term\.arrow: (\d+) rows, \d+ steps, (\d+) sequences .*a shorter trace: \d+ of the 6 planned sequences/.exec(err);
    expect(m, err).not.toBeNull();
    const t = readTrace(out);
    expect(t.rows).toBe(Number(m![1]));
    expect(new Set(Array.from(t.seq)).size).toBe(Number(m![2]));
    expect(Number(m![2])).toBe(2);
    expect(readdirSync(tmp.path).filter((f) => f.includes('.partial-'))).toEqual([]);
  }, 120_000);

  it('removes stale partials of the same output (their process is gone), keeps a live one', () => {
    const out = join(tmp.path, 'stale.arrow');
    const stale = join(tmp.path, `.stale.arrow.partial-${deadPid()}`);
    const live = join(tmp.path, `.stale.arrow.partial-${process.pid}`);
    writeFileSync(stale, 'half a trace');
    writeFileSync(live, 'a run in progress');
    const r = runCli([...base(), '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed .*stale\.arrow\.partial-\d+, the partial output of an earlier run that was killed/);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(readTrace(out).rows).toBeGreaterThan(0);
  });

  it('an existing trace is replaced only with --force', () => {
    const before = readFileSync(small);
    const r = runCli([...base(), '--gen', '3', '--out', small]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/option --out: .*small\.arrow already exists; pass --force to replace it/);
    expect(readFileSync(small).equals(before)).toBe(true);
    const f = runCli([...base(), '--gen', '3', '--out', small, '--force']);
    expect(f.status, f.stderr).toBe(0);
    expect(readTrace(small).rows).toBe((4 + 3 - 1) * readTrace(small).meta.moeLayers.length);
  });

  it('never writes onto a special file or one of its inputs', () => {
    const fifo = join(tmp.path, 'a-fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const cases: Array<[string[], RegExp]> = [
      [['--out', fifo, '--force'], /option --out: .*a-fifo exists and is not a regular file/],
      [['--out', small, '--force', '--routing', small], /option --out: .*small\.arrow is one of the command's inputs/],
      [['--out', join(model, 'config.json'), '--force'], /option --out: .*config\.json is one of the command's inputs/],
      [['--out', join(tmp.path, 'no-dir', 'x.arrow')], /option --out: the folder .*no-dir does not exist/],
      [['--out', tmp.path], /option --out: .* is a folder; give a file name/],
    ];
    for (const [args, want] of cases) {
      const r = runCli([...base(), ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(want);
    }
    expect(statSync(fifo).isFIFO()).toBe(true);
    expect(statSync(join(model, 'config.json')).size).toBeGreaterThan(100);
  });

  it('options that would do nothing, and runs past the context, are refused before loading', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--policy', 'lfu'], /option --policy: has no effect here \(it is used with --cache\)/],
      [['--batch', '4', '--sequences', '2'], /option --batch: 4 sequences per batch, but only 2 to record/],
      [['--gen', '200000'], /option --gen: 4 prompt tokens \+ 200000 new tokens exceed the model's context of 163840 tokens/],
      [['--prompt-len', '200000'], /option --prompt-len: 200000 prompt tokens exceed the model's context/],
      [['--cache', '2', '--policy', 'static'], /option --policy: static needs --routing <trace>/],
    ];
    for (const [args, want] of cases) {
      const out = join(tmp.path, 'never.arrow');
      const r = runCli([...base(), ...args, '--out', out]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(want);
      expect(existsSync(out)).toBe(false);
    }
  });
});
