/** requiredScriptArg: the value after an option in a script's own arguments; a missing one named. */
import { describe, expect, it } from 'vitest';
import { requiredScriptArg } from '../src/options.js';

describe('requiredScriptArg', () => {
  const argv = ['node', 'x.js', '--bench', 'a.json,b.json', '--out'];
  it('returns the value after the option', () => {
    expect(requiredScriptArg('--bench', argv)).toBe('a.json,b.json');
  });
  it('refuses an absent option and one without a value, naming it', () => {
    expect(() => requiredScriptArg('--base', argv)).toThrow('option --base: required');
    expect(() => requiredScriptArg('--out', argv)).toThrow('option --out: required');
  });
});
