import type { BenchDocument } from './run-bench.js';

/** The checks a run asked for that did not pass: a failed check is a failed run (exit status 1), not a table cell. */
export function failedChecks(doc: BenchDocument): string[] {
  const failed: string[] = [];
  for (const p of doc.agreement?.paths ?? []) {
    if (p.pass === false) failed.push(`the agreement check failed (${p.compared}, ${p.path} path: pass NO)`);
  }
  if (doc.offloadCheck && !doc.offloadCheck.allIdentical) failed.push('the offload check failed (tokens differ between all-resident and offloaded runs)');
  if (doc.cpuMissCheck && !doc.cpuMissCheck.pass) failed.push(`the CPU-miss check failed (top-1 differs from all-resident where the gap is >= 0.1, no expert ran on the CPU${doc.cpuMissCheck.rounding === 'gpu-order' ? ', or with --cpu-rounding gpu-order the tokens differ' : ''})`);
  if (doc.quantCheck && doc.quantCheck.pass === false) failed.push('the quantized-expert check failed (top-1 where the bf16 gap is >= 0.1 or the logits error past the stated threshold: the quant table has the figures)');
  return failed;
}
