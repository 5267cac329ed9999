/**
 * validate's output folder, published in one step: everything is written into a hidden partial folder beside
 * the target, which is renamed over it only when complete (an existing folder is replaced only with --force,
 * checked before any work). An interrupted run publishes what it measured with status 'interrupted' and a
 * PARTIAL title; a crash leaves only the hidden `.<name>.partial-<pid>` folder, never a folder that looks done.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { partialPathFor, writeFileAtomic } from '../../../core/src/atomic-file.js';
import { renderSvg, svgToPng } from '../../../core/src/charts.js';
import { formatResult } from './format.js';
import type { ValidationResult } from './result.js';

/** Predicted against measured ms per output token, one point per validated configuration, with y = x. */
export function validationChart(r: ValidationResult): TopLevelSpec {
  const values = r.points.flatMap((p) =>
    p.rows
      .filter((x) => x.measured)
      .map((x) => ({ point: `batch ${p.batch}, prompt ${p.prompt}`, configuration: x.key, role: x.roles.join(', '), measured: x.measured!.msPerToken.mean, predicted: x.predictedMs.mean, error: x.error })),
  );
  const all = values.flatMap((v) => [v.measured, v.predicted]);
  const lo = all.length ? Math.min(...all) * 0.8 : 1;
  const hi = all.length ? Math.max(...all) * 1.25 : 10;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `validate --best on ${r.device}: predicted vs measured ms per output token`, subtitle: `${r.plan.routing.join(' + ')}; ${r.plan.calibration}; line: predicted = measured` },
    layer: [
      {
        data: { values: [{ x: lo, y: lo }, { x: hi, y: hi }] },
        mark: { type: 'line', color: 'gray', strokeDash: [4, 4] },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
      },
      {
        data: { values },
        mark: { type: 'point', filled: true, size: 80 },
        encoding: {
          x: { field: 'measured', type: 'quantitative', scale: { type: 'log', domain: [lo, hi] }, title: 'measured ms per output token (log)' },
          y: { field: 'predicted', type: 'quantitative', scale: { type: 'log', domain: [lo, hi] }, title: 'predicted ms per output token (log)' },
          color: { field: 'point', type: 'nominal', title: null },
          shape: { field: 'role', type: 'nominal', title: null },
          tooltip: [{ field: 'configuration' }, { field: 'error', format: '.1%' }],
        },
      },
    ],
    width: 380,
    height: 320,
  };
}

/** Writes validation.json, validation.md and the chart into `out`, atomically as a folder. Returns the file names. */
export async function writeValidation(out: string, r: ValidationResult): Promise<string[]> {
  const tmp = partialPathFor(out);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const files = ['validation.json', 'validation.md', 'predicted-vs-measured.vl.json', 'predicted-vs-measured.svg'];
  try {
    const spec = validationChart(r);
    let md = formatResult(r);
    const svg = await renderSvg(spec);
    writeFileAtomic(join(tmp, 'predicted-vs-measured.vl.json'), JSON.stringify(spec, null, 2) + '\n');
    writeFileAtomic(join(tmp, 'predicted-vs-measured.svg'), svg);
    try {
      writeFileAtomic(join(tmp, 'predicted-vs-measured.png'), svgToPng(svg));
      files.push('predicted-vs-measured.png');
    } catch {
      // The GPU machine's bundle has no PNG renderer (tools/gpu/bundle.mjs stubs it); the spec and SVG are there.
      md = md.replace('![predicted vs measured](predicted-vs-measured.png)', '![predicted vs measured](predicted-vs-measured.svg)');
    }
    writeFileAtomic(join(tmp, 'validation.json'), JSON.stringify(r, null, 1) + '\n');
    writeFileAtomic(join(tmp, 'validation.md'), md);
    if (existsSync(out)) {
      const old = `${tmp}-old`;
      renameSync(out, old);
      renameSync(tmp, out);
      rmSync(old, { recursive: true, force: true });
    } else renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return files;
}
