/** Shared test helpers: repo paths, temp dirs, running the built CLI, locating ../shared data. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const esftRoot = resolve(repoRoot, '..', 'shared', 'traces', 'esft');
export const hasEsft = existsSync(join(esftRoot, 'intent'));
export const pythonBin = join(repoRoot, '.venv', 'bin', 'python');

/** Warns once, loudly, why a suite that needs ../shared is skipped. */
export function warnIfNoEsft(suite: string): void {
  if (!hasEsft) console.warn(`[skip] ${suite}: ${esftRoot} is absent (real ESFT routing traces live in ../shared beside the checkout)`);
}

/** Whether the project's Python venv has the given modules; in CI their absence is a failure, not a skip. */
export function pythonHas(...modules: string[]): boolean {
  if (!existsSync(pythonBin)) return false;
  const r = spawnSync(pythonBin, ['-c', modules.map((m) => `import ${m}`).join('; ')], { encoding: 'utf8' });
  return r.status === 0;
}

export function requirePythonOrSkip(suite: string, ...modules: string[]): boolean {
  const ok = pythonHas(...modules);
  if (!ok) {
    const msg = `${suite}: the Python venv (${pythonBin}) lacks ${modules.join(', ')}; run tools/setup-python.sh`;
    if (process.env.CI === 'true') throw new Error(msg);
    console.warn(`[skip] ${msg}`);
  }
  return ok;
}

export function tempDir(prefix = 'moe-offload-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (dist/) as a user would. */
export function runCli(args: string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), ...args], {
    cwd: opts.cwd ?? repoRoot,
    input: opts.input,
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
