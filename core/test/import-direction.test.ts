/**
 * The project's structure as a test: imports run one way, cli -> runtime -> predictor -> sim -> traces -> core.
 * A file may import its own part or a part to its right, never one to its left, so the layers cannot drift
 * back into each other (the runtime once held the CLI and the shared helpers, and everything imported it).
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from './helpers.js';

/** Left to right: each part may import only itself and the parts after it. */
export const LAYERS = ['cli', 'runtime', 'predictor', 'sim', 'traces', 'core'] as const;

const SOURCE = /\.(ts|mts|mjs|js)$/;
/** `import ... from 'x'`, `export ... from 'x'`, `import 'x'`, `import('x')`, `require('x')`. */
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])([^'"\n]+)\1/g;

export interface Violation {
  file: string;
  line: number;
  specifier: string;
  reason: string;
}

function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'build' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (SOURCE.test(name)) out.push(path);
  }
}

function partOf(root: string, path: string): string | undefined {
  const first = relative(root, path).split(sep)[0];
  return (LAYERS as readonly string[]).includes(first) ? first : undefined;
}

/** Every import in the parts under `root` that runs against the order (or out of the parts from non-test code). */
export function importViolations(root: string): Violation[] {
  const files: string[] = [];
  for (const part of LAYERS) {
    try {
      if (statSync(join(root, part)).isDirectory()) walk(join(root, part), files);
    } catch {
      // a part that does not exist has nothing to check
    }
  }
  const found: Violation[] = [];
  for (const file of files) {
    const from = partOf(root, file)!;
    const isTest = relative(root, file).split(sep).includes('test');
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((text, i) => {
      for (const m of text.matchAll(SPECIFIER)) {
        const specifier = m[2];
        if (!specifier.startsWith('.')) continue; // a package, not a part of the project
        const target = resolve(dirname(file), specifier);
        const to = partOf(root, target);
        const where = { file: relative(root, file), line: i + 1, specifier };
        if (to === undefined) {
          if (!isTest) found.push({ ...where, reason: `imports ${relative(root, target)}, outside the parts ${LAYERS.join(', ')}` });
          continue;
        }
        if (LAYERS.indexOf(to as (typeof LAYERS)[number]) < LAYERS.indexOf(from as (typeof LAYERS)[number])) {
          found.push({ ...where, reason: `${from}/ imports ${to}/, which stands above it (${LAYERS.join(' -> ')})` });
        }
      }
    });
  }
  return found;
}

describe('import direction', () => {
  it('holds for the whole tree', () => {
    const v = importViolations(repoRoot);
    expect(v.map((x) => `${x.file}:${x.line} ${x.specifier}: ${x.reason}`)).toEqual([]);
  });

  it('actually scans the parts (the tree has cross-part imports to check)', () => {
    // guard against a scanner that silently sees nothing: count downward cross-part imports it resolved
    let crossPart = 0;
    const files: string[] = [];
    walk(join(repoRoot, 'cli'), files);
    for (const f of files) for (const m of readFileSync(f, 'utf8').matchAll(SPECIFIER)) if (m[2].startsWith('../../runtime/')) crossPart++;
    expect(crossPart).toBeGreaterThan(10);
  });

  it('fails on an import from traces/ into runtime/ (fixture tree)', () => {
    const t = tempDir();
    try {
      const write = (path: string, text: string) => {
        mkdirSync(dirname(join(t.path, path)), { recursive: true });
        writeFileSync(join(t.path, path), text);
      };
      // Built from parts so that this file's own text holds no import for the whole-tree scan to flag.
      const q = "'";
      const from = (spec: string) => `import { x } from ${q}${spec}${q};\n`;
      write('runtime/src/engine.ts', from('../../core/src/errors.js') + 'export const x = 1;\n');
      write('core/src/errors.ts', 'export class UserError extends Error {}\n');
      write('traces/src/reader.ts', from('../../core/src/errors.js') + from('../../runtime/src/engine.js'));
      write('sim/src/a.ts', `export { x } from ${q}../../traces/src/reader.js${q};\nconst m = await import(${q}../../predictor/src/p.js${q});\n`);
      write('core/src/b.ts', `import ${q}../../sim/src/a.js${q};\n`);
      write('sim/src/tool.ts', from('../../tools/gpu/x.mjs'));
      write('sim/test/tool.test.ts', from('../../tools/gpu/x.mjs'));
      const v = importViolations(t.path).map((x) => `${x.file}:${x.line} ${x.specifier}`);
      expect(v.sort()).toEqual(
        [
          'core/src/b.ts:1 ../../sim/src/a.js',
          'sim/src/a.ts:2 ../../predictor/src/p.js',
          'sim/src/tool.ts:1 ../../tools/gpu/x.mjs',
          `traces/src/reader.ts:2 ../../runtime/src/engine.js`,
        ].sort(),
      );
    } finally {
      t.cleanup();
    }
  });
});
