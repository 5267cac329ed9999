/**
 * `moe-offload report`: writes reports/REPORT.md and its charts (reports/figures/*.vl.json, .svg, .png) from
 * the committed result files. `check` compares instead of writing: the markdown and the chart specs must equal
 * the committed ones byte for byte (SVG/PNG depend on the fonts of the machine that renders them, so they
 * are written, not compared).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { writeChart } from '../../../core/src/charts.js';
import { buildReport } from './build.js';
import { readSources } from './sources.js';

export const REPORT_FILE = 'reports/REPORT.md';
export const FIGURES_DIR = 'reports/figures';

const specText = (spec: unknown) => JSON.stringify(spec, null, 2) + '\n';

/** The files the report consists of, as they should be (markdown and chart specs). */
export function expectedReportFiles(root: string): Map<string, string> {
  const r = buildReport(readSources(root));
  const files = new Map<string, string>([[REPORT_FILE, r.markdown]]);
  for (const c of r.charts) files.set(`${FIGURES_DIR}/${c.name}.vl.json`, specText(c.spec));
  return files;
}

/** Paths whose committed content differs from what the sources give (empty: up to date). */
export function staleReportFiles(root: string): string[] {
  const stale: string[] = [];
  for (const [rel, text] of expectedReportFiles(root)) {
    const f = join(root, rel);
    if (!existsSync(f) || readFileSync(f, 'utf8') !== text) stale.push(rel);
  }
  return stale;
}

export async function writeReport(root: string): Promise<string[]> {
  const r = buildReport(readSources(root));
  mkdirSync(join(root, FIGURES_DIR), { recursive: true });
  const written: string[] = [];
  for (const c of r.charts) {
    const w = await writeChart(c.spec, join(root, FIGURES_DIR, c.name));
    written.push(w.spec, w.svg, w.png);
  }
  writeFileAtomic(join(root, REPORT_FILE), r.markdown);
  written.push(join(root, REPORT_FILE));
  return written;
}
