import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkOutputDir, checkOutputFile } from '../src/output-path.js';
import { tempDir } from './helpers.js';

const t = tempDir();
afterAll(() => t.cleanup());
const file = join(t.path, 'old.json');
const dir = join(t.path, 'folder');
writeFileSync(file, '{}');
mkdirSync(dir);

describe('checkOutputFile', () => {
  it('accepts a new file in an existing folder', () => {
    expect(checkOutputFile(join(t.path, 'new.json'), { option: '--out' })).toBe(join(t.path, 'new.json'));
  });
  it('refuses, naming the option: a folder, a missing folder, an existing file without --force, a device, an input', () => {
    expect(() => checkOutputFile(dir, { option: '--out' })).toThrow(/^option --out: .* is a folder/);
    expect(() => checkOutputFile(join(t.path, 'missing', 'x.json'), { option: '--out' })).toThrow(/^option --out: the folder .*missing does not exist/);
    expect(() => checkOutputFile(join(file, 'x.json'), { option: '--out' })).toThrow(/is not a folder/);
    expect(() => checkOutputFile(file, { option: '--out' })).toThrow(/already exists; pass --force/);
    expect(() => checkOutputFile('/dev/null', { option: '--out', force: true })).toThrow(/not a regular file/);
    expect(() => checkOutputFile(file, { option: '--out', force: true, inputs: [file] })).toThrow(/one of the command's inputs/);
    const link = join(t.path, 'dangling');
    symlinkSync(join(t.path, 'nowhere'), link);
    expect(() => checkOutputFile(link, { option: '--out', force: true })).toThrow(/not a regular file/);
  });
  it('replaces an existing regular file with --force', () => {
    expect(checkOutputFile(file, { option: '--out', force: true })).toBe(file);
  });
});

describe('checkOutputDir', () => {
  it('accepts a new folder, and an existing one only with --force', () => {
    expect(checkOutputDir(join(t.path, 'fresh'), { option: '--out' })).toBe(join(t.path, 'fresh'));
    expect(() => checkOutputDir(dir, { option: '--out' })).toThrow(/the folder .* already exists; pass --force/);
    expect(checkOutputDir(dir, { option: '--out', force: true })).toBe(dir);
  });
  it('refuses a file where a folder is wanted', () => {
    expect(() => checkOutputDir(file, { option: '--out', force: true })).toThrow(/exists and is not a folder/);
  });
});
