/**
 * reports/REPORT.md is generated: `moe-offload report` from the committed result files must reproduce the
 * committed markdown and chart specs byte for byte; with no result files every data section says so.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildReport } from '../../src/report/build.js';
import { readSources } from '../../src/report/sources.js';
import { expectedReportFiles, staleReportFiles } from '../../src/report/write-report.js';
import { repoRoot, runCli, tempDir } from '../../../core/test/helpers.js';

const tmp = tempDir('report-');
afterAll(() => tmp.cleanup());

describe('REPORT.md', () => {
  it('the committed report and chart specs are exactly what the committed results give', () => {
    expect(staleReportFiles(repoRoot)).toEqual([]);
    expect([...expectedReportFiles(repoRoot).keys()]).toEqual(['reports/REPORT.md', 'reports/figures/latency-grid.vl.json', 'reports/figures/throughput-grid.vl.json', 'reports/figures/quant-must-show.vl.json']);
    const r = runCli(['report', '--check']);
    expect(r.status, r.stderr).toBe(0);
  });

  it('states the quantized-experts results and what is missing from the committed files', () => {
    const md = expectedReportFiles(repoRoot).get('reports/REPORT.md')!;
    expect(md).not.toMatch(/quantized experts exist in neither|Not implemented in the simulator or the runtime|prefetch \(next-gate, predicted, oracle\) exists only in the simulator/);
    expect(md).toMatch(/## What is missing or partial/);
    expect(md).toMatch(/`reports\/bench\/quant-h200\/must-show\/bench\.json`/);
  });

  it('starts with the Chinese summary, then English, and cites its sources', () => {
    const md = expectedReportFiles(repoRoot).get('reports/REPORT.md')!;
    expect(md.indexOf('## 摘要')).toBeGreaterThan(0);
    expect(md.indexOf('## 摘要')).toBeLessThan(md.indexOf('## Summary'));
    expect(md).toMatch(/Sources: `reports\/bench\/offload-h200-grid\/summary\.json`/);
  });

  it('a section whose data is absent says so instead of inventing it', () => {
    const md = buildReport(readSources(tmp.path)).markdown;
    expect(md).toMatch(/没有已提交的 GPU 测量结果/);
    expect(md).toMatch(/No committed GPU measurements/);
    expect(md).toMatch(/No committed simulator sweep on ESFT routing/);
    expect(md).toMatch(/No committed offloaded measurements with hit counts/);
    expect(md).toMatch(/No committed `validate --best` result: it has not been run on the GPU yet/);
    expect(md).toMatch(/No committed quantized-experts bench/);
    expect(md).toMatch(/No committed GPU measurement of next-gate prefetch/);
    expect(md).toMatch(/fidelity-cpu\/`\) is absent/);
    expect(md).toMatch(/No committed llama\.cpp measurement/);
    expect(md).not.toMatch(/\d+\.\d+ ms/);
  });

  it('an interrupted validation is not reported as a result', () => {
    const dir = join(tmp.path, 'reports', 'validate', 'cut');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'validation.json'), JSON.stringify({ format: 'moe-offload-validation-v1', status: 'interrupted', points: [], checks: [], plan: { routing: [] } }));
    expect(buildReport(readSources(tmp.path)).markdown).toMatch(/reports\/validate\/cut: interrupted, partial; not used/);
  });
});
