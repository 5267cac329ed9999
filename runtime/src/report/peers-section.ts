/**
 * REPORT.md's section on llama.cpp beside moe-offload on the same H200 (issue 17): the second oracle, the
 * ratio tables of reports/bench/peers-h200/peers.json (rendered by tools/peers/report.mjs), one sentence
 * per row on why the faster side is faster there, and whether our goal (faster than llama.cpp's best
 * `--n-cpu-moe` setting at 12 GiB, equal weight format, batch 1 and 16) is met. Every number comes from
 * those files; what a sentence infers rather than measures says so.
 */
import { LITE_CONFIG } from '../model/synth/geometries.js';
import { table } from './experiments.js';
import type { PeersRatio } from './quant-sources.js';
import type { Sources } from './sources.js';

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const LITE = LITE_CONFIG as Record<string, number>;
const MOE_LAYERS = LITE.num_hidden_layers - LITE.first_k_dense_replace;
/** llama.cpp's scheduler moves CPU-resident weights to the GPU for ops of at least this many tokens (op offload, its default). */
const LLAMA_OP_OFFLOAD_MIN_BATCH = 32;

const batchOf = (test: string) => Number(/^decode b(\d+)$/.exec(test)?.[1] ?? NaN);
const promptOf = (test: string) => Number(/^prefill (\d+)$/.exec(test)?.[1] ?? NaN);

/** The engine without offload (bf16, CUDA graphs) at batch 1, prompt 128, when committed: the ceiling rows' reference. */
function residentEngineB1(s: Sources): { ms: number; source: string } | null {
  const m = s.measured.find((x) => x.system === 'all-resident (moe-offload CUDA)' && x.batch === 1 && x.prompt === 128);
  return m ? { ms: m.ms.mean, source: m.source } : null;
}

/** Why the faster side is faster on this row: what each side does with the experts there. */
export function whyFaster(r: PeersRatio, resident: { ms: number; source: string } | null): string {
  const o = r.oursFacts;
  const l = r.llamaFacts;
  const oursWins = r.ratio >= 1;
  const lead = `${oursWins ? 'moe-offload' : 'llama.cpp'} ${f2(oursWins ? r.ratio : 1 / r.ratio)}x`;
  const b = batchOf(r.test);
  const p = promptOf(r.test);
  if (!r.fair) {
    return `${lead}, context only: moe-offload on replayed real (ESFT) routing${o.hitRate != null ? ` (hit rate ${pct(o.hitRate)})` : ''}, llama.cpp on its own router; not like for like.`;
  }
  const bothOnGpu = o.allOnGpu && l.allOnGpu;
  if (bothOnGpu) {
    if (Number.isFinite(b)) {
      if (!oursWins) {
        const engine = resident ? ` The engine without offload (bf16, CUDA graphs) ran ${f2(resident.ms)} ms per step at batch 1 in another call (${resident.source}), so the gap is the offload mode's, not the kernels'.` : '';
        return `${lead}: every expert is on the GPU on both sides, but moe-offload's offload mode still brings each MoE layer's routing to the host to plan that layer (${MOE_LAYERS} synchronisations per step, no CUDA graph)${o.msPerToken != null ? `: ${f2(o.msPerToken)} against ${f2((1000 * b) / r.llamaTps)} ms per step` : ''}; the fixed cost weighs most at small batches.${b === 1 && r.dtype === 'bf16' ? engine : ''}`;
      }
      return `${lead}: every expert is on the GPU on both sides and at ${b} sequences the step is GPU work that grows with the batch, where moe-offload's grouped expert kernels outrun llama.cpp's in spite of its per-layer host round trips (kernel-level reasons not profiled here).`;
    }
    return `${lead}: every expert is on the GPU on both sides, so this is the GPU kernels' efficiency over a ${p}-token prompt (moe-offload: one grouped GEMM per layer over the prompt's experts; llama.cpp: its MUL_MAT_ID kernels; not profiled here).`;
  }
  const cpuLayers = `${l.nCpuMoe} of its ${l.nLayer} layers`;
  if (Number.isFinite(b)) {
    const llamaSide = b < LLAMA_OP_OFFLOAD_MIN_BATCH
      ? `llama.cpp computes every routed expert of ${cpuLayers} on the 16 host cores at each step (${b} token${b > 1 ? 's' : ''} x 6 experts per layer; below ${LLAMA_OP_OFFLOAD_MIN_BATCH} tokens its scheduler does not move them to the GPU) while the GPU waits`
      : `llama.cpp moves the expert tensors of ${cpuLayers} to the GPU for each step (op offload, ${b} tokens)`;
    const oursSide = o.miss === 'hybrid'
      ? `moe-offload keeps ${o.cache} of 64 experts of every MoE layer on the GPU (${o.hitRate != null ? `${pct(o.hitRate)} of requests hit` : 'hit rate not recorded'}) and, per miss, computes it on the CPU${o.cpuExpertsPerToken != null ? ` (${f1(o.cpuExpertsPerToken)} experts per token)` : ''} or copies it from pinned memory, whichever its cost model expects sooner`
      : `moe-offload keeps ${o.cache} of 64 experts of every MoE layer on the GPU (${o.hitRate != null ? `${pct(o.hitRate)} of requests hit` : 'hit rate not recorded'}) and copies each miss from pinned memory`;
    return oursWins ? `${lead}: ${llamaSide}; ${oursSide}, so only the misses leave the GPU.` : `${lead}: ${oursSide}, and here that costs more than llama.cpp's CPU layers (${llamaSide}).`;
  }
  const seconds = p / r.llamaTps;
  return `${lead}: for a ${p}-token prompt llama.cpp's scheduler moves the expert tensors of ${cpuLayers} to the GPU (op offload, on by default) from its pageable, memory-mapped host copy; its prompt took ${f2(seconds)} s (inferred from the rate, not profiled). moe-offload copies only the experts the prompt routes to, from pinned memory, once per layer, then runs them on the GPU.`;
}

export function peersSection(s: Sources): string[] {
  const p = s.quant.peersReport;
  const a = s.quant.peerAgreement;
  const out = ['### Peers: llama.cpp on the same H200', ''];
  if (a) {
    out.push(`**Second oracle** (\`${a.file}\`): our CUDA engine's logits against ${a.reference}, ${a.sequences} x ${a.length} random token ids, teacher-forced; an implementation of DeepSeek-V2 independent of transformers. ${a.pass ? 'Passes' : '**Fails**'} our bar (top-1 >= 99% where llama.cpp's gap >= ${a.marginMin}, median relative error <= 5%):`, '');
    out.push(table(['path', 'positions', 'top-1 (all)', `top-1 (gap >= ${a.marginMin})`, 'positions with that gap', 'logits rel. error p50', 'max', 'pass'], a.paths.map((x) => [x.path, String(x.positions), pct(x.top1Agreement), pct(x.top1AgreementSeparated), String(x.separatedPositions), pct(x.relErrorP50), pct(x.relErrorMax), x.pass ? 'yes' : 'no'])), '');
  } else out.push('No second-oracle result is committed (`reports/bench/peers-h200/device/peer-agreement.json`).', '');
  if (!p) return [...out, s.quant.peers?.length ? 'llama.cpp raw logs are committed (`reports/bench/peers-h200/`) but not rendered; no llama.cpp row is reported.' : 'No committed llama.cpp measurement (`reports/bench/peers-h200/` absent).', ''];
  out.push(`${p.partial ? '**Partial.** ' : ''}From \`${p.file}\` (${p.device}; llama.cpp ${p.commit.slice(0, 12)}; full table, every command line, notes and chart in [peers-h200/peers.md](bench/peers-h200/peers.md)). Weight formats are equal in kind, not in bits: int8 (per output channel) beside Q8_0 (per 32 weights), int4 g64 beside Q4_K_M (4-6 bits by tensor). How it was run:`, '');
  out.push(...p.notes.map((n) => `- ${n}`), '');
  const resident = residentEngineB1(s);
  const rows = (ceiling: boolean) => p.ratios.filter((r) => r.ceiling === ceiling);
  for (const [ceiling, title] of [[false, 'Within the 12 GiB budget'], [true, 'Ceilings: every expert on the GPU']] as const) {
    const rs = rows(ceiling);
    if (!rs.length) continue;
    out.push(`${title} (moe-offload / llama.cpp tokens/s, the best configuration of each side; "fair" = the same routing):`, '');
    out.push(table(['test', 'moe-offload', 'llama.cpp', 'ours tok/s', 'llama.cpp tok/s', 'ratio', 'fair', 'why'], rs.map((r) => [r.test, r.ours, r.llama, f1(r.oursTps), f1(r.llamaTps), `${f2(r.ratio)}x`, r.fair ? 'yes' : 'no', whyFaster(r, resident)])), '');
  }
  out.push(...goal(p.ratios), '');
  return out;
}

/** Our stated goal: at 12 GiB and equal weight format, faster than llama.cpp's best setting at batch 1 and 16. */
export function goal(ratios: PeersRatio[]): string[] {
  const lines: string[] = [];
  let all = true;
  for (const dtype of ['bf16', 'int8', 'int4']) {
    const at = (test: string) => ratios.find((r) => !r.ceiling && r.fair && r.dtype === dtype && r.test === test);
    const b1 = at('decode b1');
    const b16 = at('decode b16');
    if (!b1 || !b16) {
      all = false;
      lines.push(`${dtype}: not measured on both sides`);
      continue;
    }
    const met = b1.ratio > 1 && b16.ratio > 1;
    all &&= met;
    lines.push(`${dtype} vs ${b1.llamaDtype}: ${f2(b1.ratio)}x at batch 1, ${f2(b16.ratio)}x at batch 16: ${met ? 'met' : '**not met**'}`);
  }
  return [`**Goal** (at 12 GiB and equal weight format, moe-offload faster than llama.cpp's best \`--n-cpu-moe\` setting at batch 1 and at batch 16, own routing): ${all ? 'met' : '**not met everywhere**'}. ${lines.join('; ')}.`];
}
