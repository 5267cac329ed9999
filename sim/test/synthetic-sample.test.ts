/** The shipped sample trace is what its README says: regenerating it from the generator gives the same routing. */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTrace } from '../../traces/src/reader.js';
import { generateSyntheticRouting } from '../../traces/src/synthetic-routing.js';

describe('traces/samples/synthetic-zipf-sticky.arrow', () => {
  it('equals a fresh generation with the default parameters', () => {
    const t = readTrace(resolve(import.meta.dirname, '..', '..', 'traces', 'samples', 'synthetic-zipf-sticky.arrow'));
    const g = generateSyntheticRouting();
    expect(t.meta).toEqual(g.meta);
    expect(t.rows).toBe(g.rows);
    expect(Buffer.from(t.experts.buffer, t.experts.byteOffset, t.experts.byteLength).equals(Buffer.from(g.experts.buffer))).toBe(true);
    expect(Array.from(t.gateNextValid!)).toEqual(Array.from(g.gateNextValid));
    expect(Buffer.from(t.gateNext!.buffer, t.gateNext!.byteOffset, t.gateNext!.byteLength).equals(Buffer.from(g.gateNext.buffer))).toBe(true);
  });
  it('is deterministic and depends on the seed', () => {
    const a = generateSyntheticRouting({ sequences: 2, tokensPerSequence: 5 });
    const b = generateSyntheticRouting({ sequences: 2, tokensPerSequence: 5 });
    const c = generateSyntheticRouting({ sequences: 2, tokensPerSequence: 5, seed: 1 });
    expect(Array.from(a.experts)).toEqual(Array.from(b.experts));
    expect(Array.from(a.experts)).not.toEqual(Array.from(c.experts));
  });
});
