#!/usr/bin/env node
// Renders issue 17's comparison into reports/bench/peers-h200/: peers.md (table, ratios, command lines),
// peers.json (the table's rows), peers.vl.json + .svg + .png (Vega-Lite: tokens/s per test and configuration).
// llama.cpp's rows come from the device run's peers.json (tools/peers/run-h200.sh), or, for a run whose
// peers.json did not come back, from its logs: --logs DIR (commands.jsonl + <name>.log with the JSON that
// llama-bench -o json / llama-batched-bench --output-format jsonl print); --peak name=MiB,... adds peaks
// that were only read from the run's stderr. moe-offload's rows come from `moe bench` JSON (field grid):
// --own (the model's own routing, what llama.cpp runs) and --esft (replayed ESFT routing, context only),
// each a comma-separated list; a bench whose GPU budget is above --budget-gib (all experts resident) is the
// ceiling, as llama.cpp's --n-cpu-moe 0 is. --own-miss fetch keeps only the rows of one miss mode. Fields
// are read loosely (missing -> "-").
//   node tools/peers/report.mjs --logs DIR | --peers peers.json [--own a.json] [--esft b.json] --out DIR
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile } from 'vega-lite';

const argv = process.argv.slice(2);
const args = {};
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i].startsWith('--') || argv[i + 1] === undefined) fail(`bad argument ${argv[i]} (options take a value)`);
  args[argv[i].slice(2)] = argv[i + 1];
}
function fail(msg) {
  console.error(`report.mjs: ${msg}\nusage: report.mjs (--peers peers.json | --logs DIR) [--own a.json,b.json] [--esft c.json] [--own-miss fetch] [--budget-gib 12] [--peak name=MiB,...] [--note text] [--title text] --out DIR`);
  process.exit(2);
}
if (!args.out || !(args.peers || args.logs)) fail('--out and one of --peers / --logs are required');
const readJson = (f, opt) => {
  if (!existsSync(f)) fail(`option --${opt}: ${f} not found`);
  try {
    return JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    fail(`option --${opt}: ${f} is not JSON (${e.message})`);
  }
};

// llama.cpp runs: [{name, dtype, ncmoe, kind: bench|batched, argv, rows, peakMiB}]
const runs = [];
let meta = {};
const nameRe = /^(bench|batched)-(.+)-ncmoe(\d+)$/;
if (args.peers) {
  meta = readJson(args.peers, 'peers');
  for (const r of meta.results ?? []) {
    for (const s of r.settings ?? []) {
      for (const kind of ['bench', 'batched']) {
        const x = s[kind];
        if (x) runs.push({ dtype: r.dtype, ncmoe: s.n_cpu_moe, nLayer: r.n_layer, ceiling: !!s.ceiling, kind, argv: x.argv, rows: x.rows ?? [], peakMiB: x.peak_gpu_mib ?? null });
      }
    }
  }
} else {
  const dir = args.logs;
  const cmds = readFileSync(join(dir, 'commands.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const peaks = Object.fromEntries((args.peak ?? '').split(',').filter(Boolean).map((kv) => kv.split('=')));
  for (const c of cmds.filter((c) => c.argv && nameRe.test(c.name))) {
    const [, kind, dtype, n] = c.name.match(nameRe);
    const log = join(dir, `${c.name}.log`);
    const ended = cmds.find((x) => x.name === c.name && x.exit !== undefined);
    let rows = [];
    if (existsSync(log)) {
      const text = readFileSync(log, 'utf8');
      rows = kind === 'bench' ? JSON.parse(text.slice(text.indexOf('\n['))) : text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    }
    runs.push({ dtype, ncmoe: Number(n), nLayer: 27, kind, argv: c.argv, rows, peakMiB: ended?.peak_gpu_mib ?? (peaks[c.name] ? Number(peaks[c.name]) : null), logMissing: !existsSync(log) });
  }
  const lj = join(dir, 'llama.cpp.json');
  const gpu = join(dir, 'gpu.csv');
  meta = { llama_cpp: existsSync(lj) ? JSON.parse(readFileSync(lj, 'utf8')) : {}, device: existsSync(gpu) ? readFileSync(gpu, 'utf8').trim().split('\n').at(-1) : '?', partial: true };
}

const rows = [];
const fmtPeak = (mib) => (mib == null ? null : mib / 1024);
for (const r of runs) {
  const setting = r.ceiling ? 'all experts on the GPU (--n-cpu-moe 0)' : r.ncmoe >= r.nLayer ? `--cpu-moe (n-cpu-moe ${r.ncmoe})` : `--n-cpu-moe ${r.ncmoe}`;
  // overBudget: the ceiling run (not a candidate within the budget); allOnGpu: a candidate for the ceiling
  // table (with Q4_K_M, --n-cpu-moe 0 fits the budget and is both).
  const base = { system: 'llama.cpp', dtype: r.dtype, setting, overBudget: r.ceiling, allOnGpu: r.ncmoe === 0, nCpuMoe: r.ncmoe, nLayer: r.nLayer, routing: 'own (model router)', peakGiB: fmtPeak(r.peakMiB), source: r.argv.join(' ') };
  if (r.logMissing) rows.push({ ...base, test: `${r.kind === 'bench' ? 'llama-bench' : 'llama-batched-bench'}: log did not come back`, tps: null });
  for (const b of r.rows) {
    if (r.kind === 'bench') rows.push({ ...base, test: b.n_prompt === 0 ? 'decode b1' : `prefill ${b.n_prompt}`, tps: b.avg_ts, note: b.n_prompt === 0 ? `${b.n_gen} new tokens, empty context` : 'one sequence' });
    else {
      rows.push({ ...base, test: `decode b${b.pl}`, tps: b.speed_tg, note: `S_TG: ${b.pl} x ${b.tg} new tokens after ${b.pp}-token prompts` });
      rows.push({ ...base, test: `prefill b${b.pl} x ${b.pp}`, tps: b.speed_pp, note: 'S_PP' });
    }
  }
}
const budgetGiB = Number(args['budget-gib'] ?? 12);
const ours = (file, routingLabel, missOnly, opt) => {
  const b = readJson(file, opt);
  const ceiling = (b.offload?.gpuMemoryBytes ?? 0) > budgetGiB * 2 ** 30;
  for (const p of b.grid ?? b.points ?? []) {
    if (missOnly && p.miss !== missOnly) continue;
    const dtype = p.expertDtype ?? 'bf16';
    const setting = ceiling ? `all experts resident (cache ${p.cache ?? '?'}/64)` : `cache ${p.cache ?? 'all'}/64, ${p.miss ?? '-'}, prefetch ${p.prefetch ?? 'none'}`;
    const peakGiB = (p.deviceUsedPeakBytes ?? p.device?.deviceUsedPeakBytes ?? 0) / 2 ** 30 || null;
    const base = { system: 'moe-offload', dtype, setting, overBudget: ceiling, allOnGpu: p.cache === 64, cache: p.cache ?? null, miss: p.miss ?? null, hitRate: p.hitRate ?? null, cpuExpertsPerToken: p.cpuExpertsPerToken ?? null, msPerToken: p.msPerToken?.mean ?? null, routing: routingLabel, peakGiB, source: file };
    rows.push({ ...base, test: `decode b${p.batch}`, tps: p.decodeTokensPerSecond ?? null, note: `${p.newTokens} new tokens after ${p.prompt}-token prompts` });
    if (p.prefillMs?.mean) rows.push({ ...base, test: p.batch === 1 ? `prefill ${p.prompt}` : `prefill b${p.batch} x ${p.prompt}`, tps: (p.batch * p.prompt * 1000) / p.prefillMs.mean, note: 'begin() of all prompts' });
  }
};
for (const f of (args.own ?? '').split(',').filter(Boolean)) ours(f, 'own (model router)', args['own-miss'], 'own');
for (const f of (args.esft ?? '').split(',').filter(Boolean)) ours(f, 'ESFT replayed (context)', null, 'esft');

// Ratios: moe-offload / llama.cpp where both ran the same test, dtype and routing (own), best of each side.
// Oracle prefetch (perfect knowledge of the next experts) is an upper bound, not a configuration: never "best".
// Within the budget (every run not over it) and the ceilings (every run with all experts on the GPU,
// whatever its memory) are compared separately.
const best = (sys, dtype, test, routing, ceiling) => rows.filter((r) => r.system === sys && r.dtype === dtype && r.test === test && r.routing.startsWith(routing) && (ceiling ? r.allOnGpu : !r.overBudget) && r.tps != null && !r.setting.includes('prefetch oracle')).sort((a, b) => b.tps - a.tps)[0];
const ratios = [];
const TESTS = ['decode b1', 'decode b4', 'decode b8', 'decode b16', 'prefill 128', 'prefill 512'];
for (const ceiling of [false, true]) {
  for (const [dt, ldt] of [['bf16', 'bf16'], ['int8', 'q8_0'], ['int4', 'q4_k_m']]) {
    for (const test of TESTS) {
      for (const routing of ceiling ? ['own'] : ['own', 'ESFT']) {
        const o = best('moe-offload', dt, test, routing, ceiling);
        const l = best('llama.cpp', ldt, test, 'own', ceiling);
        if (!o && !l) continue;
        // the facts REPORT.md's sentence on each row is built from (runtime/src/report/peers-section.ts)
        const oursFacts = o && { cache: o.cache, miss: o.miss, hitRate: o.hitRate, cpuExpertsPerToken: o.cpuExpertsPerToken, msPerToken: o.msPerToken, peakGiB: o.peakGiB, allOnGpu: o.allOnGpu };
        const llamaFacts = l && { nCpuMoe: l.nCpuMoe, nLayer: l.nLayer, peakGiB: l.peakGiB, allOnGpu: l.allOnGpu };
        ratios.push({ ceiling, dtype: dt, llamaDtype: ldt, ours: `${dt} ${routing}${o ? `: ${o.setting}` : ''}`, llama: `${ldt}${l ? `: ${l.setting}` : ''}`, test, oursTps: o?.tps ?? null, llamaTps: l?.tps ?? null, ratio: o && l ? o.tps / l.tps : null, fair: routing === 'own', oursFacts, llamaFacts });
      }
    }
  }
}
const f1 = (x) => (x == null ? '-' : x.toFixed(1));
function ratioTable(rs) {
  return [
    '| test | moe-offload | llama.cpp | ours tok/s | llama.cpp tok/s | ratio | fair (same routing)? |',
    '| --- | --- | --- | ---: | ---: | ---: | --- |',
    ...rs.map((r) => `| ${r.test} | ${r.ours} | ${r.llama} | ${f1(r.oursTps)} | ${f1(r.llamaTps)} | ${r.ratio == null ? '-' : `${r.ratio.toFixed(2)}x`} | ${r.fair ? 'yes' : 'no: ESFT routing, context'} |`),
  ];
}
const notes = (args.note ?? '').split('|').filter(Boolean);
const md = [
  `# Peers on ${meta.device}: llama.cpp beside moe-offload, ${budgetGiB} GiB GPU budget`,
  '',
  `llama.cpp ${meta.llama_cpp?.llama_cpp_commit ?? '?'} (llama-cpp-python ${meta.llama_cpp?.llama_cpp_python ?? '?'} sdist, ggml ${meta.llama_cpp?.ggml_version ?? '?'}), CUDA build, 16 threads, -ngl 99, flash attention at its default.`,
  '',
  ...notes.map((n) => `- ${n}`),
  '',
  `## Ratios within the ${budgetGiB} GiB budget (moe-offload / llama.cpp tokens/s; best row of each side; "-" = a side was not measured)`,
  '',
  ...ratioTable(ratios.filter((r) => !r.ceiling)),
  '',
  '## Ceilings: every expert on the GPU (no budget), own routing',
  '',
  ...ratioTable(ratios.filter((r) => r.ceiling)),
  '',
  '## All rows',
  '',
  '| system | dtype | setting | routing | test | tokens/s | peak GPU GiB | note |',
  '| --- | --- | --- | --- | --- | ---: | ---: | --- |',
  ...rows.map((r) => `| ${r.system} | ${r.dtype} | ${r.setting} | ${r.routing} | ${r.test} | ${f1(r.tps)} | ${r.peakGiB == null ? '-' : r.peakGiB.toFixed(2)} | ${r.note ?? ''} |`),
  '',
  '## Sources and command lines',
  '',
  ...[...new Set(rows.map((r) => r.source))].map((c) => `- \`${c}\``),
  '',
].join('\n');
mkdirSync(args.out, { recursive: true });
writeFileSync(join(args.out, 'peers.md'), md);
writeFileSync(join(args.out, 'peers.json'), JSON.stringify({ device: meta.device, llama_cpp: meta.llama_cpp, partial: meta.partial ?? !!meta.incomplete, notes, ratios, rows }, null, 1) + '\n');
const spec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: args.title ?? `llama.cpp vs moe-offload, ${budgetGiB} GiB GPU budget (${meta.device})`,
  // One bar per side and row of the ratio tables (the best configuration of each side, own routing): the
  // full list of configurations is in the table; drawn all at once they are unreadable.
  data: { values: ratios.filter((r) => r.fair).flatMap((r) => [['moe-offload', r.oursTps], ['llama.cpp', r.llamaTps]].filter(([, t]) => t != null).map(([system, tps]) => ({ test: r.test, tps, system, group: `${r.dtype} / ${r.llamaDtype}${r.ceiling ? ', all on GPU' : ', 12 GiB'}` }))) },
  facet: { column: { field: 'test', type: 'nominal', title: null, sort: TESTS } },
  spec: {
    width: 150,
    height: 220,
    mark: 'bar',
    encoding: {
      x: { field: 'group', type: 'nominal', title: null, axis: { labelAngle: -45, labelLimit: 200 } },
      xOffset: { field: 'system', type: 'nominal' },
      y: { field: 'tps', type: 'quantitative', title: 'tokens/s' },
      color: { field: 'system', type: 'nominal' },
      tooltip: [{ field: 'group' }, { field: 'system' }, { field: 'tps', format: '.1f' }],
    },
  },
  resolve: { scale: { y: 'independent' } },
};
writeFileSync(join(args.out, 'peers.vl.json'), JSON.stringify(spec, null, 2) + '\n');
const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
const svg = await view.toSVG();
view.finalize();
writeFileSync(join(args.out, 'peers.svg'), svg);
writeFileSync(join(args.out, 'peers.png'), new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, background: 'white', font: { loadSystemFonts: true } }).render().asPng());
console.log(`report.mjs: ${rows.length} rows, ${ratios.filter((r) => r.ratio != null).length} ratios -> ${args.out}/peers.{md,json,vl.json,svg,png}`);
