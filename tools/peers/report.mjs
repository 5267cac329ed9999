#!/usr/bin/env node
// Renders issue 17's comparison from the device run's peers.json (tools/peers/run-h200.sh) into
// reports/bench/peers-h200/: peers.md (llama.cpp rows: decode batch 1, prefill 128/512, batched 4/8/16,
// peak GPU memory, every command line) and peers.vl.json (Vega-Lite: tokens/s per test and setting).
// moe-offload's rows come from `moe bench` JSON files of the same device run (--ours bench.json,...):
// their end-to-end tokens/s per (batch, prompt) point are put beside with the dtype the file names.
//   node tools/peers/report.mjs --peers <files_at>/peers.json [--ours a.json,b.json] --out reports/bench/peers-h200
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, x, i, all) => (x.startsWith('--') ? [...acc, [x.slice(2), all[i + 1]]] : acc), []));
if (!args.peers || !args.out) {
  console.error('usage: report.mjs --peers peers.json [--ours bench.json,...] --out DIR');
  process.exit(2);
}
if (!existsSync(args.peers)) {
  console.error(`report.mjs: option --peers: ${args.peers} not found`);
  process.exit(2);
}
const doc = JSON.parse(readFileSync(args.peers, 'utf8'));
const rows = [];
for (const r of doc.results) {
  for (const s of r.settings) {
    const peak = Math.max(s.batched?.peak_gpu_mib ?? 0, s.bench?.peak_gpu_mib ?? 0);
    const add = (test, tps, cmd) => rows.push({ system: 'llama.cpp', dtype: r.dtype, setting: s.setting, test, tps, peakGiB: peak / 1024, cmd });
    for (const b of s.bench?.rows ?? []) {
      const test = b.n_gen > 0 && b.n_prompt === 0 ? `decode b1 (${b.n_gen} tokens)` : `prefill ${b.n_prompt}`;
      add(test, b.avg_ts, s.bench.argv.join(' '));
    }
    for (const b of s.batched?.rows ?? []) add(`decode b${b.pl} (${b.tg} tokens)`, b.speed_tg, s.batched.argv.join(' '));
  }
}
for (const f of (args.ours ?? '').split(',').filter(Boolean)) {
  // `moe bench` JSON: the point fields are read defensively, the lead joins what the run produced
  const b = JSON.parse(readFileSync(f, 'utf8'));
  for (const p of b.points ?? b.results ?? []) {
    const tps = p.outputTokensPerSecond ?? p.tokensPerSecond;
    if (tps === undefined) continue;
    rows.push({ system: 'moe-offload', dtype: p.expertDtype ?? b.expertDtype ?? 'bf16', setting: p.label ?? `cache ${p.cache ?? 'all'}`, test: `decode b${p.batch}`, tps, peakGiB: (p.peakGpuBytes ?? 0) / 2 ** 30, cmd: f });
  }
}
mkdirSync(args.out, { recursive: true });
const md = [
  `# Peers on ${doc.device}: llama.cpp beside moe-offload, ${doc.budget_gib} GiB GPU budget`,
  '',
  `llama.cpp ${doc.llama_cpp.llama_cpp_commit} (llama-cpp-python ${doc.llama_cpp.llama_cpp_python} sdist, ggml ${doc.llama_cpp.ggml_version}); ${doc.threads} threads; ${doc.reps} repetitions; peak memory: ${doc.peak_memory}.`,
  '',
  '| system | dtype | setting | test | tokens/s | peak GPU GiB |',
  '| --- | --- | --- | --- | ---: | ---: |',
  ...rows.map((r) => `| ${r.system} | ${r.dtype} | ${r.setting} | ${r.test} | ${r.tps.toFixed(1)} | ${r.peakGiB.toFixed(2)} |`),
  '',
  '## --n-cpu-moe search (fit test: llama-batched-bench at 16 sequences)',
  '',
  '| dtype | N | estimate MiB | peak MiB | exit |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...doc.results.flatMap((r) => (r.fit_search ?? []).map((t) => `| ${r.dtype} | ${t.n_cpu_moe} | ${t.estimate_mib} | ${t.peak_gpu_mib} | ${t.exit} |`)),
  '',
  '## Command lines',
  '',
  ...[...new Set(rows.map((r) => r.cmd))].map((c) => `- \`${c}\``),
  '',
].join('\n');
writeFileSync(join(args.out, 'peers.md'), md);
const spec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: `llama.cpp vs moe-offload, ${doc.budget_gib} GiB GPU budget (${doc.device})`,
  data: { values: rows.map(({ cmd, ...r }) => ({ ...r, config: `${r.system} ${r.dtype} ${r.setting}` })) },
  mark: 'bar',
  encoding: {
    column: { field: 'test', type: 'nominal', title: null },
    x: { field: 'config', type: 'nominal', title: null, axis: { labelAngle: -60 } },
    y: { field: 'tps', type: 'quantitative', title: 'tokens/s', scale: { type: 'log' } },
    color: { field: 'system', type: 'nominal' },
  },
};
writeFileSync(join(args.out, 'peers.vl.json'), JSON.stringify(spec, null, 2) + '\n');
copyFileSync(args.peers, join(args.out, 'peers.json'));
console.log(`report.mjs: ${rows.length} rows -> ${args.out}/peers.md, peers.vl.json`);
