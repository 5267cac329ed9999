/**
 * The notebooks run headless on the committed data (notebooks/run.py, nbclient) and are committed without
 * outputs. A notebook that breaks, including its own checks against the simulator's committed results and
 * REPORT.md, fails this test (so `npm test` and CI fail).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pythonBin, repoRoot, requirePythonOrSkip, tempDir } from '../../core/test/helpers.js';

const dir = join(repoRoot, 'notebooks');
const notebooks = readdirSync(dir).filter((f) => f.endsWith('.ipynb')).sort();
const ready = requirePythonOrSkip('notebooks', 'duckdb', 'matplotlib', 'nbclient', 'nbformat', 'ipykernel');

interface Cell {
  cell_type: string;
  outputs?: unknown[];
  execution_count?: number | null;
}

describe('notebooks', () => {
  it('are committed with their outputs stripped', () => {
    expect(notebooks).toEqual(['cache.ipynb', 'report-figures.ipynb', 'traces.ipynb']);
    for (const name of notebooks) {
      const nb = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { cells: Cell[] };
      for (const c of nb.cells.filter((x) => x.cell_type === 'code')) {
        expect(c.outputs, name).toEqual([]);
        expect(c.execution_count, name).toBeNull();
      }
    }
  });

  describe.skipIf(!ready)('executed headless', () => {
    const out = tempDir('notebooks-');
    afterAll(() => out.cleanup());
    it('every notebook runs to the end on the committed data and draws its figures', () => {
      const r = spawnSync(pythonBin, [join(dir, 'run.py')], { cwd: dir, encoding: 'utf8', env: { ...process.env, MOE_NOTEBOOK_OUT: out.path }, maxBuffer: 64 << 20 });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout.split('\n').filter((l) => l.startsWith('ok ')).length).toBe(notebooks.length);
      for (const f of ['popularity.png', 'reuse-distance.png', 'hit-rate-vs-cache.png', 'sweeps.png', 'time-breakdown.png', 'latency-throughput-grid.png', 'sim-vs-measured.png']) {
        expect(existsSync(join(out.path, f)), f).toBe(true);
      }
    }, 300_000);
  });
});
