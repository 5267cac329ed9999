/**
 * The reader refuses what used to pass or hang (issue 15 items 1, 17, 18): repeated experts in a top-k,
 * non-finite or negative weights, NaN scores, a column of the wrong type, a FIFO, a flipped byte that
 * made apache-arrow loop forever, and framing that points outside the file.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeVector, Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../core/test/helpers.js';
import { BadInputError } from '../../core/src/errors.js';
import { parseTraceBytes, readTrace } from '../src/reader.js';
import { TraceWriter, type TraceRows } from '../src/writer.js';
import { tinyMeta } from './fixtures.js';

const d = tempDir();
afterAll(() => d.cleanup());

/** 4 steps x 2 layers of one sequence, top-2 of 8; `edit` may spoil the rows before they are written. */
function writeTiny(name: string, edit: (r: TraceRows & { weights: number[]; experts: number[]; scores?: number[] }) => void = () => {}, scores = false): string {
  const path = join(d.path, name);
  const w = TraceWriter.create(path, tinyMeta(), { scores });
  const rows = {
    step: [0, 0, 1, 1, 2, 2, 3, 3],
    phase: Array(8).fill(1),
    layer: [1, 2, 1, 2, 1, 2, 1, 2],
    seq: Array(8).fill(0),
    pos: [0, 0, 1, 1, 2, 2, 3, 3],
    experts: [0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6],
    weights: Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 0.6 : 0.4)),
    ...(scores ? { scores: Array.from({ length: 64 }, () => 1 / 8) } : {}),
  };
  edit(rows);
  w.append(rows);
  w.close();
  return path;
}

describe('trace reader refuses bad values', () => {
  it('accepts the untouched tiny trace (so every refusal below is the edit)', () => {
    expect(readTrace(writeTiny('ok.arrow', () => {}, true)).rows).toBe(8);
  });

  it('refuses a token whose top-k names an expert twice, naming row, layer and expert', () => {
    const p = writeTiny('dup.arrow', (r) => (r.experts[11] = 4)); // row 5 (step 2, layer 2): [4, 4]
    expect(() => readTrace(p)).toThrow(BadInputError);
    expect(() => readTrace(p)).toThrow(/dup\.arrow: row 5 \(step 2, layer 2, sequence 0, position 2\): expert 4 appears twice in the top-2 \(4,4\)/);
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-0.5', -0.5],
  ])('refuses a routing weight of %s', (label, v) => {
    const p = writeTiny(`w-${label}.arrow`, (r) => (r.weights[3] = v));
    expect(() => readTrace(p)).toThrow(new RegExp(`row 1 \\(step 0, layer 2.*routing weight ${label.replace('.', '\\.')} of expert 3 is not a finite number >= 0`));
  });

  it('refuses a NaN router score', () => {
    const p = writeTiny('score.arrow', (r) => (r.scores![8 + 5] = Number.NaN), true);
    expect(() => readTrace(p)).toThrow(/row 1 .*router score NaN of expert 5 is not a probability/);
  });

  it('refuses a predicted column of the wrong type (it used to read as expert 0)', () => {
    const t = tableFromIPC(readFileSync(writeTiny('p.arrow')));
    const bad = t.assign(new Table({ predicted: makeVector(new Float32Array(t.numRows)) }));
    const p = join(d.path, 'pred-f32.arrow');
    writeFileSync(p, tableToIPC(bad, 'file'));
    expect(() => readTrace(p)).toThrow(/pred-f32\.arrow: column 'predicted' has type Float32, trace v1 says List<Uint16>/);
  });

  it('refuses a FIFO without opening it (opening would block)', () => {
    const fifo = join(d.path, 'fifo.arrow');
    execFileSync('mkfifo', [fifo]);
    expect(() => readTrace(fifo)).toThrow(/fifo\.arrow: not a regular file/);
  });
});

describe('trace reader checks the Arrow IPC framing before parsing', () => {
  const good = readFileSync(writeTiny('frame.arrow'));

  it('refuses byte 37 flipped (apache-arrow looped forever on it) at once', () => {
    const b = Buffer.from(good);
    b[37] ^= 0xff;
    const t0 = performance.now();
    expect(() => parseTraceBytes('flip37.arrow', b)).toThrow(/flip37\.arrow: corrupt Arrow IPC file/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('refuses a metadata length that runs past the data', () => {
    const b = Buffer.from(good);
    b.writeInt32LE(1 << 30, 12); // the first message's metadata length
    expect(() => parseTraceBytes('len.arrow', b)).toThrow(/message at byte 8: metadata length 1073741824 runs past the data/);
  });

  it('refuses a footer length that does not fit the file', () => {
    const b = Buffer.from(good);
    b.writeInt32LE(b.length, b.length - 10);
    expect(() => parseTraceBytes('footer.arrow', b)).toThrow(/footer length \d+ does not fit/);
  });

  it('refuses a footer block that names no record batch of the stream', () => {
    // The footer's only block starts with the offset of the first message (8): point it one byte on.
    const b = Buffer.from(good);
    const footerLength = b.readInt32LE(b.length - 10);
    const footer = b.subarray(b.length - 10 - footerLength, b.length - 10);
    const at = footer.indexOf(Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]));
    expect(at).toBeGreaterThan(0);
    footer[at] = 9;
    expect(() => parseTraceBytes('block.arrow', b)).toThrow(/footer: block 0 \(offset 9/);
  });
});
