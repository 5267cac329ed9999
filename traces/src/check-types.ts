/**
 * Every column a trace v1 file names must have the type SCHEMA.md gives it: a `predicted` column of
 * float32 would otherwise read as expert ids 0, and a 32-bit `experts` column as wrapped ids. The
 * expected types come from the same buildSchema the writer uses, so the two cannot drift apart.
 */
import type { Schema } from 'apache-arrow';
import { BadInputError } from '../../core/src/errors.js';
import { buildSchema, type RunMeta } from './schema.js';

export function checkColumnTypes(path: string, schema: Schema, meta: RunMeta): void {
  const expected = new Map(
    buildSchema(meta, { tokens: true, scores: true, gateNext: true, predicted: true, timings: true }).fields.map((f) => [f.name, String(f.type)]),
  );
  const seen = new Set<string>();
  for (const field of schema.fields) {
    if (seen.has(field.name)) throw new BadInputError(path, `column '${field.name}' appears twice`);
    seen.add(field.name);
    const want = expected.get(field.name);
    if (want === undefined) continue; // extra columns are allowed and ignored (SCHEMA.md)
    const got = String(field.type);
    if (got !== want) throw new BadInputError(path, `column '${field.name}' has type ${got}, trace v1 says ${want} (traces/SCHEMA.md)`);
  }
}
