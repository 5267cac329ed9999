/** SimResults as flat rows: one shape for results.json, results.parquet and the charts. */
import type { SimResult } from '../simulation.js';

export interface ResultRow {
  trace: string;
  routing: string;
  policy: string;
  cache: number;
  batch: number;
  prefetch: string;
  miss: string;
  hits: number;
  requests: number;
  hit_rate: number;
  ready_hit_rate: number;
  late_hits: number;
  bytes_moved: number;
  tpt_mean_ms: number;
  tpt_p50_ms: number;
  tpt_p99_ms: number;
  throughput_tok_s: number;
  pf_issued: number;
  pf_useful: number;
  /** null when nothing was prefetched (recall: when nothing was requested) */
  pf_precision: number | null;
  pf_recall: number | null;
  gpu_non_expert_ms: number;
  gpu_expert_ms: number;
  gpu_idle_ms: number;
  copy_busy_ms: number;
  cpu_busy_ms: number;
  step_ms: number;
  calibration: string;
}

/** Column types for DuckDB, in row order. */
export const ROW_COLUMNS: Array<[keyof ResultRow, 'VARCHAR' | 'INTEGER' | 'DOUBLE']> = [
  ['trace', 'VARCHAR'], ['routing', 'VARCHAR'], ['policy', 'VARCHAR'], ['cache', 'INTEGER'], ['batch', 'INTEGER'],
  ['prefetch', 'VARCHAR'], ['miss', 'VARCHAR'], ['hits', 'DOUBLE'], ['requests', 'DOUBLE'], ['hit_rate', 'DOUBLE'],
  ['ready_hit_rate', 'DOUBLE'], ['late_hits', 'DOUBLE'], ['bytes_moved', 'DOUBLE'], ['tpt_mean_ms', 'DOUBLE'],
  ['tpt_p50_ms', 'DOUBLE'], ['tpt_p99_ms', 'DOUBLE'], ['throughput_tok_s', 'DOUBLE'], ['pf_issued', 'DOUBLE'],
  ['pf_useful', 'DOUBLE'], ['pf_precision', 'DOUBLE'], ['pf_recall', 'DOUBLE'], ['gpu_non_expert_ms', 'DOUBLE'],
  ['gpu_expert_ms', 'DOUBLE'], ['gpu_idle_ms', 'DOUBLE'], ['copy_busy_ms', 'DOUBLE'], ['cpu_busy_ms', 'DOUBLE'],
  ['step_ms', 'DOUBLE'], ['calibration', 'VARCHAR'],
];

export function routingDescription(r: SimResult): string {
  const synthetic = /synthetic/i.test(r.trace.dataset) || /synthetic/i.test(r.trace.modelId);
  return `${synthetic ? 'SYNTHETIC (generated, not model routing; see traces/samples/README.md), ' : ''}source ${r.trace.routingSource}, dataset ${r.trace.dataset}`;
}

export function toRow(traceName: string, r: SimResult): ResultRow {
  return {
    trace: traceName,
    routing: routingDescription(r),
    policy: r.config.policy,
    cache: r.config.cacheSize,
    batch: r.config.batch,
    prefetch: r.config.prefetch,
    miss: r.config.miss,
    hits: r.hits,
    requests: r.requests,
    hit_rate: r.hitRate,
    ready_hit_rate: r.requests > 0 ? r.readyHits / r.requests : 0,
    late_hits: r.lateHits,
    bytes_moved: r.bytesMoved,
    tpt_mean_ms: r.timePerTokenMs.mean,
    tpt_p50_ms: r.timePerTokenMs.p50,
    tpt_p99_ms: r.timePerTokenMs.p99,
    throughput_tok_s: r.throughputTokensPerS,
    pf_issued: r.prefetch.issued,
    pf_useful: r.prefetch.useful,
    pf_precision: r.prefetch.precision,
    pf_recall: r.prefetch.recall,
    gpu_non_expert_ms: r.breakdown.gpuNonExpertMs,
    gpu_expert_ms: r.breakdown.gpuExpertMs,
    gpu_idle_ms: r.breakdown.gpuIdleMs,
    copy_busy_ms: r.breakdown.copyBusyMs,
    cpu_busy_ms: r.breakdown.cpuBusyMs,
    step_ms: r.breakdown.stepMs,
    calibration: r.calibrationLabel,
  };
}
