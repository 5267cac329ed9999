/**
 * Reads a text file line by line in fixed-size chunks, so that a file of any size (an ESFT layer dump
 * over 512 MB is over V8's string limit) is never held as one string. Lines end with '\n'; the last
 * line must end with one too (a missing final newline usually means a truncated file).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { BadInputError } from '../../core/src/errors.js';

const CHUNK = 4 << 20;
/** One ESFT line holds one sequence (12 fields per token): far below this even for 100k-token sequences. */
export const MAX_LINE_BYTES = 256 << 20;

/** Calls `onLine(text, lineNumber)` for each line (1-based); returns the number of lines. */
export function forEachLine(file: string, onLine: (line: string, n: number) => void, chunkBytes = CHUNK): number {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(chunkBytes);
    let carry: Buffer[] = [];
    let carryBytes = 0;
    let n = 0;
    let position = 0;
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, position);
      if (got === 0) break;
      position += got;
      let start = 0;
      for (let i = buf.indexOf(10, 0); i >= 0 && i < got; i = buf.indexOf(10, start)) {
        const piece = buf.subarray(start, i);
        const line = carryBytes > 0 ? Buffer.concat([...carry, piece]).toString('utf8') : piece.toString('utf8');
        carry = [];
        carryBytes = 0;
        onLine(line, ++n);
        start = i + 1;
      }
      if (start < got) {
        carryBytes += got - start;
        if (carryBytes > MAX_LINE_BYTES) throw new BadInputError(file, `line ${n + 1} is longer than ${MAX_LINE_BYTES} bytes`);
        carry.push(Buffer.from(buf.subarray(start, got)));
      }
    }
    if (carryBytes > 0) throw new BadInputError(file, `line ${n + 1}: no final newline (truncated file?)`);
    return n;
  } finally {
    closeSync(fd);
  }
}
