/**
 * Issue 15, item 16: the README's worked CPU example (synth-model -> generate -> chat -> record-trace ->
 * simulate) is run verbatim: the code block is taken from README.md as it is and each line runs, in order, in
 * one bash (its variables carry over, as when pasted). A line that fails names itself; then the outputs are
 * checked for what the README says they show.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireAddonOrSkip } from '../../runtime/test/engine/helpers.js';
import { repoRoot } from '../../core/test/helpers.js';

/** The lines of the first ```sh block after the heading. */
export function exampleLines(readme: string, heading: string): string[] {
  const start = readme.indexOf(heading);
  if (start < 0) throw new Error(`README.md has no heading ${heading}`);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  if (!block) throw new Error(`no sh code block under ${heading}`);
  return block[1].split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

const ready = requireAddonOrSkip('README example');

describe.skipIf(!ready)('README: a first run on the CPU', () => {
  it('runs verbatim, line by line', () => {
    const lines = exampleLines(readFileSync(join(repoRoot, 'README.md'), 'utf8'), '## A first run on the CPU');
    expect(lines.length).toBeGreaterThanOrEqual(6);
    // Each line as written, then a check of its status that names it; a marker on both streams before it.
    const script = [
      'set -u',
      ...lines.flatMap((line, i) => [
        `echo "@@ line ${i}"; echo "@@ line ${i}" >&2`,
        `${line} || { echo "README example line ${i + 1} failed: ${JSON.stringify(line).slice(1, -1).replace(/[`$]/g, '\\$&')}" >&2; exit 1; }`,
      ]),
      'rm -rf "${DEMO:?}"',
    ].join('\n');
    const r = spawnSync('bash', ['-c', script], { cwd: repoRoot, encoding: 'utf8', timeout: 540_000, env: { ...process.env, CI: process.env.CI ?? '' } });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    const out = (i: number) => r.stdout.split(`@@ line ${i}\n`)[1]?.split('@@ line')[0] ?? '';
    const err = (i: number) => r.stderr.split(`@@ line ${i}\n`)[1]?.split('@@ line')[0] ?? '';
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(out(at(/synth-model/))).toMatch(/^wrote .*tiny: tiny-a, seed 1/);
    const json = JSON.parse(out(at(/generate .*--json/)));
    expect(json.tokens).toHaveLength(8);
    expect(json.expertCache.policy).toBe('lfu');
    expect(out(at(/chat/))).toMatch(/^Assistant:/);
    expect(err(at(/record-trace/))).toMatch(/record-trace: wrote .*tiny\.arrow: \d+ rows, \d+ steps, 4 sequences/);
    expect(out(at(/traces info/))).toMatch(/sequences\s+4/);
    expect(out(at(/simulate/))).toMatch(/^belady\s+4\s+1/m);
  }, 600_000);
});
