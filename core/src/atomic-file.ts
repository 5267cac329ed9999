import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Where an output is built before it is published. It sits beside the target (same file system, so the
 * final rename is atomic) and has a name no reader mistakes for a result.
 */
export function partialPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.partial-${process.pid}`);
}

/** Makes `tmp` visible as `target` in one step: readers see the old file or the whole new one, never a part. */
export function publish(tmp: string, target: string): void {
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, target);
}

export function discard(tmp: string): void {
  rmSync(tmp, { force: true });
}

/** Writes a whole file so that a crash or interrupt leaves the old file (or none), never half of the new one. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmp = partialPathFor(target);
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    } finally {
      closeSync(fd);
    }
    publish(tmp, target);
  } catch (err) {
    discard(tmp);
    throw err;
  }
}
