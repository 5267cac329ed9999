/** The sample trace `simulate` runs on without --trace (traces/samples/README.md says what it is). */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SAMPLE_TRACE = 'traces/samples/synthetic-zipf-sticky.arrow';

/** Found from this module upwards (works from sim/src and dist/sim/src). */
export function sampleTracePath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, SAMPLE_TRACE);
    if (existsSync(p)) return p;
    dir = resolve(dir, '..');
  }
  throw new Error(`the sample trace ${SAMPLE_TRACE} is missing from this installation`);
}
