/**
 * The experiment sections of REPORT.md: the batch x prompt grid for every system with committed results,
 * the charts of it, where the time goes (copy-bound or compute-bound, from the bytes each step moved), and
 * simulated against measured. Every figure is computed from Sources.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Measured, Sources } from './sources.js';

export const BATCHES = [1, 4, 8, 16];
export const PROMPTS = [128, 256, 512];
/** Systems in the order the report lists them; the issue's + prefetch and + CPU rows are the runtime's gaps. */
export const SYSTEMS = [
  'naive on-demand (cache 0)', 'cache 16 lru', 'cache 16 lfu', 'cache 19 lru, misses fetched', 'cache 19 lru + CPU (cpu)', 'cache 19 lru + CPU (hybrid)',
  'serve, cache 16 lru (streaming clients; batch = concurrency)', 'all-resident (moe-offload CUDA)', 'transformers (all resident)', 'transformers + accelerate (CPU offload)',
];

/** SYSTEMS with the quantized-experts systems the committed grid has (their slot counts come from the data), before the all-resident rows. */
export function systemsOf(s: Sources): string[] {
  const quant = [...new Set(s.measured.filter((m) => s.quant.grid && m.source === s.quant.grid.file).map((m) => m.system))];
  const at = SYSTEMS.indexOf('all-resident (moe-offload CUDA)');
  return [...SYSTEMS.slice(0, at), ...quant, ...SYSTEMS.slice(at)];
}

const f2 = (x: number) => x.toFixed(2);
const f1 = (x: number) => x.toFixed(1);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
export const table = (head: string[], rows: string[][]) => [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');

export function find(s: Sources, system: string, batch: number, prompt: number): Measured | undefined {
  return s.measured.find((m) => m.system === system && m.batch === batch && m.prompt === prompt);
}

/** Systems with at least one point, and for each the grid points it lacks. */
export function coverage(s: Sources): { system: string; have: number; missing: string[] }[] {
  return systemsOf(s).map((system) => {
    const missing: string[] = [];
    let have = 0;
    for (const b of BATCHES) for (const p of PROMPTS) find(s, system, b, p) ? have++ : missing.push(`B${b} P${p}`);
    return { system, have, missing };
  });
}

export function gridTables(s: Sources): string[] {
  const out: string[] = [];
  const systems = coverage(s).filter((c) => c.have > 0);
  for (const [title, cell] of [
    ['ms per output token: mean / p50 / p99', (m: Measured) => `${f2(m.ms.mean)} / ${f2(m.ms.p50)} / ${f2(m.ms.p99)}`],
    ['decode throughput, output tokens/s', (m: Measured) => f1(m.tokS)],
  ] as const) {
    out.push(`**${title}** (— = no committed result for that point):`, '');
    const head = ['batch', 'prompt', ...systems.map((c) => c.system)];
    const rows: string[][] = [];
    for (const b of BATCHES) for (const p of PROMPTS) rows.push([String(b), String(p), ...systems.map((c) => { const m = find(s, c.system, b, p); return m ? cell(m) : '—'; })]);
    out.push(table(head, rows), '');
  }
  out.push('Coverage (grid points with a committed measurement, of the 12):', '');
  out.push(table(['system', 'points', 'missing'], coverage(s).map((c) => [c.system, String(c.have), c.missing.length === 12 ? 'all (no committed result)' : c.missing.length ? c.missing.join(', ') : 'none'])), '');
  return out;
}

export function gridCharts(s: Sources): { name: string; spec: TopLevelSpec }[] {
  const systems = systemsOf(s);
  const values = s.measured
    .filter((m) => systems.includes(m.system) && BATCHES.includes(m.batch) && PROMPTS.includes(m.prompt))
    .map((m) => ({ system: m.system, batch: m.batch, prompt: `prompt ${m.prompt}`, ms: m.ms.mean, p99: m.ms.p99, tokS: m.tokS }));
  const panel = (field: string, title: string, log: boolean) => ({
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 'batch', type: 'quantitative' as const, scale: { type: 'log' as const, base: 2 }, axis: { values: BATCHES } },
      y: { field, type: 'quantitative' as const, title, ...(log ? { scale: { type: 'log' as const } } : {}) },
      color: { field: 'system', type: 'nominal' as const, title: null, sort: systems, legend: { labelLimit: 320 } },
    },
    width: 200,
    height: 180,
  });
  const facet = (field: string, title: string, log: boolean, text: string): TopLevelSpec => ({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text, subtitle: `${s.device ?? 'device'}; points without a committed measurement are absent` },
    data: { values },
    facet: { column: { field: 'prompt', type: 'nominal', title: null, sort: PROMPTS.map((p) => `prompt ${p}`) } },
    spec: panel(field, title, log),
  });
  return [
    { name: 'latency-grid', spec: facet('ms', 'ms per output token (mean, log)', true, 'Latency by batch and prompt length') },
    { name: 'throughput-grid', spec: facet('tokS', 'output tokens / s (log)', true, 'Decode throughput by batch and prompt length') },
  ];
}

/**
 * Where the time goes, per offloaded point: the PCIe time of the experts one step misses (misses per cache
 * step x (expert bytes / measured host-to-device bandwidth + per-copy cost), calibration profile) against the
 * measured step, and the all-resident step (the compute floor) where it was measured at the same point.
 */
export function timeBreakdown(s: Sources): { rows: string[][]; copyShares: number[] } {
  const cal = s.calibration;
  const rows: string[][] = [];
  const copyShares: number[] = [];
  if (!cal) return { rows, copyShares };
  for (const system of ['naive on-demand (cache 0)', 'cache 16 lru', 'cache 16 lfu'])
    for (const b of BATCHES)
      for (const p of PROMPTS) {
        const m = find(s, system, b, p);
        if (!m || m.missesPerStep === undefined) continue;
        const copyMs = m.missesPerStep * ((cal.expertBytes / (cal.h2dGBps * 1e9)) * 1e3 + cal.perCopyMs);
        const resident = find(s, 'all-resident (moe-offload CUDA)', b, p);
        const share = copyMs / m.ms.mean;
        copyShares.push(share);
        rows.push([system, String(b), String(p), f2(m.ms.mean), f1(m.missesPerStep), f2(copyMs), pct(share), resident ? f2(resident.ms.mean) : '—', resident ? pct(resident.ms.mean / m.ms.mean) : '—', share >= 0.75 ? 'copy-bound' : share >= 0.5 ? 'mostly copy' : 'compute-bound']);
      }
  return { rows, copyShares };
}

/** errors: the issue-6 offload grid's points (misses fetched); cpuErrors: the points with misses on the CPU. */
export function simVsMeasured(s: Sources): { rows: string[][]; errors: number[]; cpuErrors: number[] } {
  const rows: string[][] = [];
  const errors: number[] = [];
  const cpuErrors: number[] = [];
  const ordered = [...s.measured].sort((a, b) => a.system.localeCompare(b.system) || a.batch - b.batch || a.prompt - b.prompt);
  for (const m of ordered) {
    if (m.simMs === undefined) continue;
    const e = m.simMs / m.ms.mean - 1;
    if (m.source === s.offloadGrid) errors.push(e);
    if (m.system.includes('+ CPU')) cpuErrors.push(e);
    rows.push([m.system, String(m.batch), String(m.prompt), f2(m.ms.mean), f2(m.simMs), `${(100 * e).toFixed(1)}%`]);
  }
  return { rows, errors, cpuErrors };
}
