/**
 * The fixture of the runtime-vs-simulator twin tests: a tiny checkpoint and a trace recorded from it (the
 * model's own routing) that the tests replay through the runtime and feed to the simulator. Registers its
 * own beforeAll / afterAll; `paths` is filled before the tests run.
 */
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { recordTrace } from '../../src/record/recorder.js';
import { makeCheckpoint } from '../engine/helpers.js';
import { tempDir } from '../../../core/test/helpers.js';

/** batch B, sequences S, prompt tokens P, generated tokens N of every recording in those tests */
export const TWIN_SHAPE = { B: 2, S: 4, P: 6, N: 5 } as const;

/** recordTrace's options for the twin shape on the fixture's model (add out, routing, cache, prefetch) */
export function twinRecording(model: string) {
  const { B, S, P, N } = TWIN_SHAPE;
  return { model, dataset: 'builtin', batch: B, promptLen: P, gen: N, sequences: S, quiet: true } as const;
}

export function twinSourceTrace(prefix: string): { tmp: ReturnType<typeof tempDir>; paths: { model: string; source: string } } {
  const tmp = tempDir(prefix);
  const paths = { model: '', source: '' };
  beforeAll(async () => {
    paths.model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 3);
    paths.source = join(tmp.path, 'source.arrow');
    await recordTrace({ ...twinRecording(paths.model), out: paths.source });
  });
  afterAll(() => tmp.cleanup());
  return { tmp, paths };
}
