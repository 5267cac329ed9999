// The ESFT routing traces for the GPU machine (../shared does not travel): each task imported to trace v1
// with the project's own importer (`moe-offload traces import esft`) and xz-compressed into
// .gpu/traces/<task>.arrow.xz (about 2.5 MB each instead of 11); tools/gpu/on-device.sh unpacks them to
// .gpu/traces/<task>.arrow. A task is re-imported only when its .xz is missing or older than its source.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const ESFT_TASKS = ['summary', 'translation', 'intent'];

/**
 * The tasks to bundle: the three the project knows, in that order, then every other folder of `esftDir`
 * that holds an ESFT dump (`expert_weights_1.txt`), sorted by name. Routing the project has not seen (the
 * upstream task left out of ../shared, or a user's own dump) then travels without a code change and is
 * replayed with `MOE_ROUTING=.gpu/traces/<task>.arrow` (tools/gpu/session-run.sh).
 */
export function esftTasks(esftDir) {
  const extra = existsSync(esftDir)
    ? readdirSync(esftDir)
        .filter((t) => !ESFT_TASKS.includes(t) && existsSync(join(esftDir, t, 'expert_weights_1.txt')))
        .sort()
    : [];
  return [...ESFT_TASKS, ...extra];
}

/** Newest modification time of a folder's files (ms). */
function newest(dir) {
  return Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs));
}

/**
 * Imports the ESFT tasks (esftTasks) found under `esftDir` into `outDir` (<task>.arrow.xz). `cli` runs the project CLI
 * (argument list). Returns {imported, skipped, missing} task names; a missing esftDir gives missing = all.
 */
export function bundleTraces(esftDir, outDir, cli, log = () => {}) {
  const result = { imported: [], skipped: [], missing: [] };
  mkdirSync(outDir, { recursive: true });
  for (const task of esftTasks(esftDir)) {
    const src = join(esftDir, task);
    const xz = join(outDir, `${task}.arrow.xz`);
    if (!existsSync(src)) {
      result.missing.push(task);
      continue;
    }
    if (existsSync(xz) && statSync(xz).mtimeMs >= newest(src)) {
      result.skipped.push(task);
      continue;
    }
    const arrow = join(outDir, `${task}.arrow`);
    log(`bundle: importing ESFT ${task}`);
    cli(['traces', 'import', 'esft', src, '--out', arrow, '--quiet']);
    execFileSync('bash', ['-c', `xz -T2 -6 -c "${arrow}" > "${xz}.tmp" && rm -f "${arrow}"`], { stdio: 'inherit' });
    renameSync(`${xz}.tmp`, xz);
    result.imported.push(task);
  }
  return result;
}
