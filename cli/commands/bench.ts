import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { agreementTable, gridTable, marginTable, noiseFloorText, targetsTable } from '../../runtime/src/bench/report.js';
import { writeBenchChart } from '../../runtime/src/bench/chart.js';
import { runBench, type BenchDocument } from '../../runtime/src/bench/run-bench.js';
import { failedChecks } from '../../runtime/src/bench/checks.js';
import { resolvePython } from '../../runtime/src/bench/transformers-baseline.js';
import { writeFileAtomic } from '../../core/src/atomic-file.js';
import { checkOutputDir } from '../../core/src/output-path.js';
import { checkContextLimit } from '../../runtime/src/engine/context-limit.js';
import { checkDeviceBuilt, defaultDevice } from '../../runtime/src/engine/devices.js';
import { given, refuseUnused } from '../option-rules.js';
import { BadInputError, UserError } from '../../core/src/errors.js';
import { parseChoiceListOption, parseChoiceOption, parseIntListOption, parseIntOption } from '../../core/src/options.js';
import { offloadTable, type OffloadPointResult } from '../../runtime/src/bench/offload-bench.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import { requireRegularFile } from '../../runtime/src/model/regular-file.js';
import { parseByteSize } from '../../runtime/src/offload/gpu-budget.js';
import { loadRoutingReplay } from '../../runtime/src/offload/routing-replay.js';
import { expertDtypeListFromCli, missGridFromCli, prefetchGridFromCli, quantizedFileFromCli } from '../../runtime/src/engine/cli-options.js';
import { QUANTIZED_FILE_HELP } from '../expert-dtype-flags.js';
import { CPU_ROUNDINGS } from '../../runtime/src/offload/miss-options.js';
import { quantCheckTable } from '../../runtime/src/bench/quant-check.js';
import { writeExpertErrorChart } from '../../runtime/src/bench/expert-fidelity.js';
import { expertGroupRule } from '../option-rules.js';

interface BenchCliOptions {
  model: string;
  device?: string;
  threads?: string;
  batch: string;
  prompt: string;
  newTokens: string;
  repeats: string;
  warmup: string;
  seed: string;
  baseline?: string;
  check?: string;
  checkSequences: string;
  checkLength: string;
  checkPrefill: string;
  checkFp32?: boolean;
  python?: string;
  out?: string;
  force?: boolean;
  replot?: string;
  cache?: string;
  policy: string;
  gpuMemory?: string;
  miss: string;
  checkMiss?: string;
  prefetch?: string;
  predictor?: string;
  predictorBudget?: string;
  predictorMinProb?: string;
  prefetchLookahead?: string;
  prefetchInFlight?: string;
  checkOffloadPrefetch?: string;
  cpuWorkers?: string;
  cpuThreads?: string;
  cpuSpinUs?: string;
  cpuFill: string;
  cpuRounding?: string;
  cpuEstimate?: string;
  calibration?: string;
  routing?: string;
  checkOffload?: boolean;
  checkOffloadCaches: string;
  checkOffloadPolicies: string;
  checkOffloadTokens: string;
  expertDtype: string;
  expertGroup: string;
  quantizedFile?: string;
  checkQuant?: string;
  checkQuantRows: string;
  residentSteps?: string;
  sampleOn?: string;
}

/** A bench.json written earlier (e.g. on the GPU machine), checked enough to re-render it. */
function readBenchDocument(path: string): BenchDocument {
  if (!existsSync(path)) throw new BadInputError(path, 'no such file');
  requireRegularFile(path, 'the bench.json to re-render');
  let doc: BenchDocument;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as BenchDocument;
  } catch (err) {
    throw new BadInputError(path, `not JSON (${(err as Error).message})`);
  }
  if (doc?.format !== 'moe-offload-bench-v1' || !Array.isArray(doc.grid)) throw new BadInputError(path, "not a bench.json (format 'moe-offload-bench-v1')");
  return doc;
}

/** Options of a timing run; --replot takes none of them. */
const RUN_OPTIONS = [
  '--model', '--device', '--threads', '--batch', '--prompt', '--new-tokens', '--repeats', '--warmup', '--seed', '--baseline', '--check',
  '--check-sequences', '--check-length', '--check-prefill', '--check-fp32', '--python', '--cache', '--policy', '--gpu-memory', '--routing',
  '--check-offload', '--check-offload-caches', '--check-offload-policies', '--check-offload-tokens',
  '--miss', '--cpu-workers', '--cpu-threads', '--cpu-fill', '--cpu-spin-us', '--cpu-rounding', '--cpu-estimate', '--calibration', '--check-miss',
  '--prefetch', '--predictor', '--predictor-budget', '--predictor-min-prob', '--prefetch-lookahead', '--prefetch-in-flight', '--check-offload-prefetch',
  '--expert-dtype', '--expert-group', '--quantized-file', '--check-quant', '--check-quant-rows', '--resident-steps', '--sample-on',
];

export function register(program: Command): void {
  program
    .command('bench')
    .description('time the engine over a grid (prefill, ms per output token mean/p50/p99, tokens/s, peak GPU memory); optionally against transformers')
    .option('--model <dir>', 'checkpoint directory (Hub layout)')
    .option('--device <d>', 'cpu or cuda (default: cuda when this build of the engine has the CUDA backend, else cpu)')
    .option('--threads <n>', 'CPU threads (device cpu; 0: all cores)')
    .option('--batch <list>', 'batch sizes (comma-separated)', '1,16')
    .option('--prompt <list>', "prompt lengths in tokens (comma-separated; prompt + new tokens must fit the model's context)", '128,512')
    .option('--new-tokens <list>', 'tokens generated per sequence (comma-separated)', '64')
    .option('--repeats <n>', 'timed generations per grid point', '3')
    .option('--warmup <n>', 'untimed generations per grid point first', '1')
    .option('--seed <n>', 'seed of the random prompts', '1')
    .option('--baseline <name>', "also time 'transformers' on the same checkpoint, same prompts, in the same run")
    .option('--check <name>', "agreement with 'transformers' (bf16 on the GPU): logits, per-layer hidden states, top-1; a failed check exits with status 1")
    .option('--check-sequences <n>', 'with --check: sequences of the agreement check', '8')
    .option('--check-length <n>', 'with --check: tokens per check sequence', '128')
    .option('--check-prefill <n>', 'with --check: the check decodes positions from this one on, one step each (the decode path)', '64')
    .option('--check-fp32', 'with --check: also against transformers in float32 (and bf16 vs float32: the reference noise)')
    .option('--python <path>', 'with --baseline or --check: Python with torch + transformers (default: $MOE_PYTHON, .venv, python3)')
    .option('--out <dir>', 'write bench.json, bench.md and the chart (bench.vl.json/.svg/.png) into this new (or empty) folder')
    .option('--force', 'with --out: write into a folder that already holds files (same-named files are replaced)')
    .option('--replot <bench.json>', 'no run: re-render the tables and the chart of an earlier bench.json')
    .option('--cache <list>', 'offload mode (device cuda): routed experts in host memory, these GPU slots per MoE layer (comma-separated; 0: naive on-demand loading; fit: with --gpu-memory, the most slots each --expert-dtype allows)')
    .option('--expert-dtype <list>', 'offload mode: routed experts stored as bf16, int8 or int4, each a grid dimension (comma-separated); the simulated column uses the profile\'s figures for the dtype (measured, or scaled by bytes with a warning)', 'bf16')
    .option('--expert-group <n>', 'with --expert-dtype / --check-quant int4: inputs per group', '64')
    .option('--quantized-file <f>', `${QUANTIZED_FILE_HELP}; with several quantized dtypes only auto`, 'off')
    .option('--check-quant <list>', 'issue 13 fidelity: quantized experts (int8, int4) against the bf16 engine, greedy generation of --check-sequences seeded prompts of --check-prefill tokens up to --check-length (logits compared while the tokens agree); thresholds in runtime/src/bench/quant-check.ts; a failure exits with status 1 (alone: no timing grid). Also the per-expert output relative error of every routed expert (CPU kernels, --check-quant-rows rows of random and of the run\'s activations). --device cuda: the quantized experts offloaded behind a 16-slot cache; --device cpu: the CPU engine\'s own quantized copy')
    .option('--check-quant-rows <n>', 'with --check-quant: activation rows per expert of the per-expert error (seeded rmsnorm(N(0,1)) * post_attention_layernorm)', '16')
    .option('--policy <list>', 'offload mode (with --cache): cache policies (comma-separated: lru, lfu, fifo, lfru, static)', 'lru')
    .option('--gpu-memory <size>', 'offload mode: GPU memory budget (e.g. 12GiB) the run is checked against; each --cache must fit')
    .option('--routing <traces>', 'offload mode: replay these traces\' routing (comma-separated; lanes filled from concatenated sequences when one trace is short)')
    .option('--miss <list>', 'offload mode: what to do with a missed expert, each a grid dimension (comma-separated: fetch, cpu, hybrid; cpu/hybrid compute misses on the CPU)', 'fetch')
    .option('--prefetch <list>', 'offload mode: prefetchers, each a grid dimension (comma-separated: none, next-gate, oracle, predicted; oracle and predicted need --routing, next-gate is refused with it)', 'none')
    .option('--predictor <dir>', 'offload mode, --prefetch predicted: the exported predictor (train-predictor --out DIR), run inside the runtime at each MoE layer')
    .option('--predictor-budget <n>', 'offload mode, --prefetch predicted: experts the predictor names per token and layer (default 6)')
    .option('--predictor-min-prob <p>', 'offload mode, --prefetch predicted: leave out predicted experts below this probability (default 0: keep all)')
    .option('--prefetch-lookahead <k>', 'offload mode, --prefetch oracle: layers ahead (default 1)')
    .option('--prefetch-in-flight <n>', 'offload mode: prefetch pieces on the copy stream at once (default 1)')
    .option('--check-offload-prefetch <list>', 'issue 12 numerics: prefetchers --check-offload also runs (comma-separated: none, next-gate on the model\'s own routing; oracle, predicted under replay of --routing, predicted with --predictor)', 'none,next-gate')
    .option('--cpu-workers <n>', 'offload mode, --miss cpu/hybrid: CPU experts computed at once (default: the calibration profile\'s choice)')
    .option('--cpu-threads <n>', 'offload mode, --miss cpu/hybrid: threads per CPU worker (default: the machine\'s threads / workers)')
    .option('--cpu-fill <list>', 'offload mode, --miss cpu/hybrid: what becomes of a miss computed on the CPU: admitted and filled by a background copy, admitted and copied when the GPU needs it, or not admitted (comma-separated: background, lazy, none; a grid dimension; default none)', 'none')
    .option('--cpu-spin-us <us>', 'offload mode, --miss cpu/hybrid: idle CPU threads poll this long for the next layer before sleeping (default 2000)')
    .option('--cpu-rounding <how>', 'offload mode and --check-miss, --miss cpu/hybrid, bf16 experts: fast (the dpbf16 kernel, the default) or gpu-order (rounds exactly as the GPU\'s decode kernel: CPU-computed misses change no logit; needs AVX-512BW)')
    .option('--cpu-estimate <how>', 'offload mode, --miss cpu/hybrid: the hybrid rule\'s CPU times, in the runtime and the simulated column: the profile\'s as they are (profile, the default) or corrected by the CPU jobs the run has finished (measured)')
    .option('--calibration <file>', 'offload mode: cost model of the hybrid rule and of the simulated column (default: sim/calibration/h200-measured.json)')
    .option('--resident-steps <on|off>', 'offload mode: decode steps with every routed expert cached run as resident steps, without the per-layer routing round trip to the host (on, default); off keeps the per-layer path in the runtime and the simulated column, to measure the difference')
    .option('--sample-on <device|host>', 'offload mode: where greedy tokens are sampled: device (default: on CUDA only the tokens come back) or host (every step\'s logits copied to the host and sampled there, the path before device sampling), to measure the difference')
    .option('--check-miss <list>', 'issue 12 numerics: logits with misses computed on the CPU (cpu, hybrid) against all-resident (alone: no timing grid)')
    .option('--check-offload', 'issue 6 invariant: tokens identical between all-resident and offloaded runs (alone: no timing grid); a difference exits with status 1')
    .option('--check-offload-caches <list>', 'cache sizes of --check-offload', '0,8,16,32')
    .option('--check-offload-policies <list>', 'policies of --check-offload', 'lru,lfu,fifo')
    .option('--check-offload-tokens <n>', 'tokens generated per sequence by --check-offload', '12')
    .action(async (o: BenchCliOptions, cmd: Command) => {
      if (o.replot !== undefined) {
        const extra = RUN_OPTIONS.filter((f) => given(cmd, f));
        if (extra.length) throw new UserError(`option ${extra[0]}: has no effect with --replot (it re-renders ${o.replot} without running anything); remove it`);
        const replot = resolve(o.replot);
        const out = o.out === undefined ? undefined : checkBenchOut(o.out, !!o.force, []);
        await publish(readBenchDocument(replot), out);
        return;
      }
      if (o.model === undefined) throw new UserError('option --model: required (or --replot)');
      const device = o.device === undefined ? defaultDevice() : parseChoiceOption('--device', o.device, ['cpu', 'cuda'] as const);
      const offloadMode = o.cache !== undefined;
      const checkOnly = (!!o.checkOffload || o.checkMiss !== undefined || o.checkQuant !== undefined) && !offloadMode;
      // --check-offload-prefetch oracle / predicted replay --routing's traces (and predicted runs --predictor)
      const checkReplay = !!o.checkOffload && /(^|,)\s*(oracle|predicted)\s*(,|$)/.test(o.checkOffloadPrefetch ?? '');
      const checkSeqs = o.check !== undefined || o.checkQuant !== undefined;
      refuseUnused(cmd, [
        { option: '--threads', applies: device === 'cpu', needs: 'with --device cpu' },
        { option: '--check-sequences', applies: checkSeqs, needs: 'with --check or --check-quant' },
        { option: '--check-length', applies: checkSeqs, needs: 'with --check or --check-quant' },
        { option: '--check-prefill', applies: checkSeqs, needs: 'with --check or --check-quant' },
        { option: '--expert-dtype', applies: offloadMode, needs: 'with --cache (offload mode; --check-quant takes its own list)' },
        expertGroupRule([o.expertDtype, o.checkQuant].filter((x) => x !== undefined).join(',')),
        { option: '--quantized-file', applies: offloadMode, needs: 'with --cache (offload mode) and --expert-dtype int8 / int4' },
        { option: '--check-quant-rows', applies: o.checkQuant !== undefined, needs: 'with --check-quant' },
        { option: '--check-fp32', applies: o.check !== undefined, needs: 'with --check' },
        { option: '--python', applies: o.check !== undefined || o.baseline !== undefined, needs: 'with --baseline or --check' },
        { option: '--policy', applies: offloadMode, needs: 'with --cache (offload mode)' },
        { option: '--check-offload-caches', applies: !!o.checkOffload, needs: 'with --check-offload' },
        { option: '--check-offload-policies', applies: !!o.checkOffload, needs: 'with --check-offload' },
        { option: '--check-offload-tokens', applies: !!o.checkOffload, needs: 'with --check-offload' },
        { option: '--force', applies: o.out !== undefined, needs: 'with --out' },
        { option: '--predictor', applies: offloadMode || checkReplay, needs: 'with --cache (offload mode), or --check-offload-prefetch predicted' },
        { option: '--cpu-rounding', applies: offloadMode || o.checkMiss !== undefined, needs: 'with --cache (offload mode) or --check-miss' },
        ...['--miss', '--cpu-workers', '--cpu-threads', '--cpu-fill', '--cpu-spin-us', '--cpu-estimate', '--calibration', '--prefetch', '--predictor-budget', '--predictor-min-prob', '--prefetch-lookahead', '--prefetch-in-flight', '--resident-steps', '--sample-on'].map((f) => ({ option: f, applies: offloadMode, needs: 'with --cache (offload mode)' })),
        ...['--batch', '--prompt', '--new-tokens', '--repeats', '--warmup'].map((f) => ({ option: f, applies: !checkOnly, needs: 'by the timing grid, which --check-offload / --check-miss alone do not run (add --cache for both)' })),
      ]);
      const baseline = o.baseline === undefined ? false : parseChoiceOption('--baseline', o.baseline, ['transformers'] as const) === 'transformers';
      const check = o.check === undefined ? false : parseChoiceOption('--check', o.check, ['transformers'] as const) === 'transformers';
      const checkLength = parseIntOption('--check-length', o.checkLength, 2, 4096);
      const checkPrefill = parseIntOption('--check-prefill', o.checkPrefill, 1, 4096);
      if (checkPrefill >= checkLength) throw new UserError(`option --check-prefill: must be below --check-length (${checkLength}), got ${checkPrefill}`);
      if ((offloadMode || o.checkOffload) && device !== 'cuda') throw new UserError(`option ${offloadMode ? '--cache' : '--check-offload'}: offloading needs --device cuda`);
      if (!offloadMode && (o.gpuMemory !== undefined || (o.routing !== undefined && !checkReplay))) {
        throw new UserError(`option ${o.gpuMemory !== undefined ? '--gpu-memory' : '--routing'}: only in offload mode (with --cache)${o.gpuMemory !== undefined ? '' : ', or for --check-offload-prefetch oracle / predicted'}`);
      }
      if (offloadMode && check) throw new UserError('option --check: the agreement check runs on the all-resident engine; run it without --cache');
      checkDeviceBuilt('--device', device);
      const config = loadModelConfig(o.model);
      const batches = parseIntListOption('--batch', o.batch, 1, 4096);
      const prompts = parseIntListOption('--prompt', o.prompt, 1, 1 << 20);
      const newTokens = parseIntListOption('--new-tokens', o.newTokens, 2, 1 << 20);
      if (!checkOnly) checkContextLimit(config, Math.max(...prompts), Math.max(...newTokens), { prompt: '--prompt', newTokens: '--new-tokens' });
      if (check) checkContextLimit(config, checkLength, 1, { prompt: '--check-length', newTokens: '--check-length' });
      const out = o.out === undefined ? undefined : checkBenchOut(o.out, !!o.force, [o.model, ...(o.routing?.split(',').map((f) => f.trim()) ?? [])]);
      const benchPolicies = ['lru', 'lfu', 'fifo', 'lfru', 'static'] as const;
      const offload = offloadMode
        ? {
            caches: o.cache!.trim() === 'fit' ? ('fit' as const) : parseIntListOption('--cache', o.cache!, 0, config.nRoutedExperts),
            formats: expertDtypeListFromCli(o),
            quantizedFile: quantizedFileFromCli(o, expertDtypeListFromCli(o)),
            policies: parseChoiceListOption('--policy', o.policy, benchPolicies),
            gpuMemory: o.gpuMemory === undefined ? null : parseByteSize('--gpu-memory', o.gpuMemory),
            routing: o.routing === undefined ? [] : o.routing.split(',').map((f) => loadRoutingReplay(resolve(f.trim()), config)),
            ...missGridFromCli(o),
            prefetches: prefetchGridFromCli(o),
            residentSteps: o.residentSteps === undefined ? true : parseChoiceOption('--resident-steps', o.residentSteps, ['on', 'off'] as const) === 'on',
            sampleOn: o.sampleOn === undefined ? ('device' as const) : parseChoiceOption('--sample-on', o.sampleOn, ['device', 'host'] as const),
          }
        : null;
      if (offload?.policies.includes('static') && offload.routing.length === 0) throw new UserError('option --policy: static needs --routing (pinned experts come from the replayed trace)');
      const checkOffload = o.checkOffload
        ? {
            caches: parseIntListOption('--check-offload-caches', o.checkOffloadCaches, 0, config.nRoutedExperts),
            policies: parseChoiceListOption('--check-offload-policies', o.checkOffloadPolicies, benchPolicies.filter((p) => p !== 'static')),
            newTokens: parseIntOption('--check-offload-tokens', o.checkOffloadTokens, 1, 4096),
            prefetches: parseChoiceListOption('--check-offload-prefetch', o.checkOffloadPrefetch ?? 'none,next-gate', ['none', 'next-gate', 'oracle', 'predicted'] as const),
            // oracle and predicted run under replay of --routing's traces (predicted: --predictor's predictor)
            routing: o.routing === undefined ? [] : o.routing.split(',').map((f) => loadRoutingReplay(resolve(f.trim()), config)),
            predictor: o.predictor,
          }
        : null;
      if (o.checkMiss !== undefined && device !== 'cuda') throw new UserError('option --check-miss: needs --device cuda');
      const checkMiss = o.checkMiss === undefined
        ? null
        : { misses: parseChoiceListOption('--check-miss', o.checkMiss, ['cpu', 'hybrid'] as const), cache: 16, newTokens: 24, rounding: parseChoiceOption('--cpu-rounding', o.cpuRounding ?? 'fast', CPU_ROUNDINGS) };
      if (offload?.caches === 'fit' && offload.gpuMemory === null) throw new UserError('option --cache fit: needs --gpu-memory (the budget the slots are sized by)');
      const checkQuant = o.checkQuant === undefined
        ? null
        : {
            formats: expertDtypeListFromCli({ expertDtype: o.checkQuant, expertGroup: o.expertGroup }).filter((f) => f.dtype !== 'bf16'),
            sequences: parseIntOption('--check-sequences', o.checkSequences, 1, 1024),
            // greedy generation (score is not available offloaded): prompts of --check-prefill tokens, then
            // --check-length - --check-prefill steps
            length: checkPrefill,
            newTokens: checkLength - checkPrefill,
            cache: 16,
            rows: parseIntOption('--check-quant-rows', o.checkQuantRows, 1, 4096),
          };
      if (checkQuant && checkQuant.formats.length === 0) throw new UserError('option --check-quant: list int8 and/or int4 (bf16 is the reference)');
      const seed = parseIntOption('--seed', o.seed, 0, 2 ** 31 - 1);
      const threads = o.threads === undefined ? 0 : parseIntOption('--threads', o.threads, 0, 1024);
      if (checkQuant) checkContextLimit(config, checkLength, 1, { prompt: '--check-length', newTokens: '--check-length' });
      const doc = await runBench({
        checkQuant: checkQuant ? { ...checkQuant, device, threads } : null,
        offload,
        checkOffload,
        checkMiss,
        skipGrid: checkOnly,
        model: o.model,
        device,
        threads,
        batches,
        prompts,
        newTokens,
        repeats: parseIntOption('--repeats', o.repeats, 1, 1000),
        warmup: parseIntOption('--warmup', o.warmup, 0, 1000),
        seed,
        baseline,
        check,
        checkSequences: parseIntOption('--check-sequences', o.checkSequences, 1, 1024),
        checkLength,
        checkPrefill,
        checkFp32: o.checkFp32 === true,
        python: resolvePython(o.python),
        log: (line) => process.stderr.write(line + '\n'),
      });
      await publish(doc, out);
      const failed = failedChecks(doc);
      if (failed.length) throw new UserError(`bench: ${failed.join('; ')} (the tables above${out ? ` and ${join(out, 'bench.md')}` : ''} have the figures)`, 1);
    });
}

/** --out: a new folder, or an existing empty one (made beforehand), or with --force any folder; checked before the run. */
function checkBenchOut(out: string, force: boolean, inputs: string[]): string {
  const abs = resolve(out);
  const empty = existsSync(abs) && statSync(abs).isDirectory() && readdirSync(abs).length === 0;
  return checkOutputDir(out, { option: '--out', force: force || empty, inputs });
}

function render(doc: BenchDocument): string {
  const sections = [`# moe bench: ${doc.engine.device} (${doc.engine.backend})`, '', doc.timing];
  if (doc.grid.length) sections.push('', gridTable(doc.grid, doc.baseline?.grid.length ? doc.baseline.grid : null));
  if (doc.agreement) {
    const a = doc.agreement;
    sections.push('', `Agreement with ${a.reference} (teacher forcing, ${a.sequences} x ${a.length} tokens; decode path from position ${a.prefillTokens}):`, '', agreementTable(a.paths));
    sections.push('', "Top-1 agreement by the reference's top-1/top-2 logit gap:", '', marginTable(a.paths));
    if (a.noiseFloor) sections.push('', noiseFloorText(a.noiseFloor));
  }
  if (doc.offload && doc.grid.length) {
    sections.push('', `Offloaded routed experts (routing: ${[...new Set((doc.grid as OffloadPointResult[]).map((p) => p.routing))].join('; ')}):`, '', offloadTable(doc.grid as OffloadPointResult[]));
  }
  if (doc.offloadCheck) {
    const c = doc.offloadCheck;
    const bad = c.cases.filter((x) => !x.identical);
    const replayed = c.cases.filter((x) => x.replayed);
    const prefetchers = [...new Set(c.cases.filter((x) => !x.replayed).map((x) => x.prefetch ?? 'none'))];
    sections.push('', `Tokens identical, all-resident vs offloaded (${c.cases.length} runs: caches ${[...new Set(c.cases.map((x) => x.cache))].join('/')}, policies ${[...new Set(c.cases.map((x) => x.policy))].join('/')}, ${c.batches.map((b) => b.label).join(', ')}; prefetch ${prefetchers.join('/')} on the model's own routing` +
      `${replayed.length ? `; prefetch ${[...new Set(replayed.map((x) => x.prefetch))].join('/')} under a replayed routing, against the all-resident engine under the same replay (${[...new Set(replayed.map((x) => x.label))].join(', ')}: ${replayed.length} runs)` : ''}` +
      `; ${c.newTokens} tokens each): ${c.allIdentical ? 'yes, every run' : `NO: ${bad.map((x) => `${x.label} cache ${x.cache} ${x.policy}${x.prefetch && x.prefetch !== 'none' ? ` prefetch ${x.prefetch}` : ''}`).join('; ')}`}`);
  }
  if (doc.cpuMissCheck) {
    const c = doc.cpuMissCheck;
    sections.push('', `Misses computed on the CPU (rounding ${c.rounding ?? 'fast'}${c.rounding === 'gpu-order' ? ': tokens must be identical' : ''}) against all-resident logits (cache ${c.cache}, ${c.newTokens} tokens, greedy; top-1 compared while the tokens so far agree): ${c.pass ? 'pass' : 'FAIL'}`, '',
      '| miss | fill | batch | CPU experts | top-1 where gap >= 0.1 | top-1 overall | max relative logit error | tokens | flipped confident positions (sequence/step: gap) |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...[...c.cases, ...(c.control ? [{ ...c.control, miss: 'control', fill: '-', cpuExperts: 0 }] : [])].map((x) => `| ${x.miss} | ${x.fill} | ${x.label} | ${x.cpuExperts} | ${x.confidentAgree}/${x.confident} | ${x.agree}/${x.steps} | ${x.maxRelLogitError.toExponential(2)} | ${x.identicalTokens ? 'identical' : 'diverge'} | ${x.flips.map((f) => `${f.sequence}/${f.step}: ${f.gap}`).join(', ') || '-'} |`));
    if (c.control) sections.push('', `control: ${c.control.label}, against the batch-16 reference (the engine's own rounding noise on the same measure; not part of pass/FAIL)`);
  }
  const host = (doc.offload as { hostProfile?: { layerMs: Array<[number, number]>; stepMs: Array<[number, number]> } | null } | null)?.hostProfile;
  if (host) {
    sections.push('', `Host work on the critical path (misses fetched; the simulator's profile section \`host\`): per MoE layer ${host.layerMs.map(([b, ms]) => `batch ${b} ${ms.toFixed(3)} ms`).join(', ')}; per step outside the forward ${host.stepMs.map(([b, ms]) => `batch ${b} ${ms.toFixed(2)} ms`).join(', ')}`);
  }
  if (doc.quantCheck) sections.push('', quantCheckTable(doc.quantCheck));
  if (doc.targets.length) sections.push('', targetsTable(doc.targets));
  return sections.join('\n') + '\n';
}

/** Prints the tables; with --out also writes bench.json, bench.md and the chart. */
async function publish(doc: BenchDocument, dir: string | undefined): Promise<void> {
  const md = render(doc);
  if (dir) {
    mkdirSync(dir, { recursive: true });
    // compact: committed results travel with every device call, which carries at most 64 MiB
    writeFileAtomic(join(dir, 'bench.json'), JSON.stringify(doc) + '\n');
    writeFileAtomic(join(dir, 'bench.md'), md);
    if (doc.grid.length) await writeBenchChart(doc, join(dir, "bench"), (line) => process.stderr.write(line + "\n"));
    const q = doc.quantCheck;
    try {
      if (q) await writeExpertErrorChart(q.expertErrors, `per-expert output relative error vs bf16 (${q.expertRows ?? '?'} rows; ${q.expertHost ?? doc.engine.host})`, join(dir, 'expert-errors'));
    } catch (err) {
      // as writeBenchChart: the GPU machine's bundle has no PNG renderer; bench.json is written already
      process.stderr.write(`bench: expert-error chart skipped (${(err as Error).message}); re-plot here with: moe bench --replot bench.json --out DIR\n`);
    }
  }
  process.stdout.write(md);
}
