/**
 * Vega-Lite charts rendered offline: spec -> Vega -> SVG (vega's headless renderer) -> PNG (resvg).
 * Every chart is written three ways: the spec (.vl.json, for notebooks and re-rendering), SVG and PNG.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from './atomic-file.js';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string, scale = 2): Uint8Array {
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, background: 'white', font: { loadSystemFonts: true } }).render();
  return png.asPng();
}

/** Writes `<base>.vl.json`, `<base>.svg` and `<base>.png`; returns the three paths. */
export async function writeChart(spec: TopLevelSpec, base: string): Promise<{ spec: string; svg: string; png: string }> {
  const svg = await renderSvg(spec);
  const paths = { spec: `${base}.vl.json`, svg: `${base}.svg`, png: `${base}.png` };
  writeFileAtomic(paths.spec, JSON.stringify(spec, null, 2) + '\n');
  writeFileAtomic(paths.svg, svg);
  writeFileAtomic(paths.png, svgToPng(svg));
  return paths;
}
