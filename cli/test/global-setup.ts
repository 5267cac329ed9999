import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../core/test/helpers.js';

/**
 * Compiles the TypeScript once so that CLI tests exercise exactly what users run. tsc emits even when a
 * file has type errors; those are reported here and fail `npm test` through its separate typecheck step.
 */
export default function setup(): void {
  const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.json')], {
    encoding: 'utf8',
  });
  if (r.status !== 0) process.stderr.write(`[global-setup] tsc reported problems (dist/ was still emitted):\n${r.stdout}${r.stderr}`);
}
