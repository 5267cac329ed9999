import type { TraceTable } from './reader.js';

/** Names of the columns a loaded trace has, in schema order (for `traces info`). */
export function traceColumns(t: TraceTable): string[] {
  const cols = ['step', 'phase', 'layer', 'seq', 'pos', 'experts', 'weights'];
  if (t.token) cols.push('token');
  if (t.scores) cols.push('scores');
  if (t.gateNext) cols.push('gate_next');
  if (t.predicted) cols.push('predicted');
  if (t.layerUs) cols.push('layer_us', 'transfer_wait_us', 'hits', 'misses', 'cpu_experts');
  return cols;
}
