import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BadInputError } from '../../../core/src/errors.js';

/** A committed result file, or null when it is absent; a file that is not JSON is bad input naming it. */
export function json<T>(root: string, rel: string): T | null {
  const f = join(root, rel);
  if (!existsSync(f)) return null;
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as T;
  } catch (err) {
    throw new BadInputError(rel, `not JSON (${(err as Error).message})`);
  }
}
