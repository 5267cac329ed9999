import { statSync } from 'node:fs';
import { BadInputError } from '../../../core/src/errors.js';

/**
 * A checkpoint's files must be regular files. stat() does not block, but open() and read() on a FIFO wait
 * for a writer forever, and a device (/dev/zero) reads without end: so every file is checked here before
 * it is opened. A symbolic link to a regular file is fine (the Hub cache links every file).
 */
export function requireRegularFile(path: string, what: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new BadInputError(path, `missing: ${what}`);
  }
  if (st.isDirectory()) throw new BadInputError(path, `is a folder, not a file (${what})`);
  if (!st.isFile()) throw new BadInputError(path, `is not a regular file (a pipe, socket or device; ${what}): refused before opening it, as reading it could block or never end`);
}
