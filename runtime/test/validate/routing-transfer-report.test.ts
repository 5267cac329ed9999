/** The committed routing-transfer report is the one its results generate. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { staticPinsTable, transferTable, type TransferResult } from '../../src/validate/routing-transfer.js';

describe('routing-transfer report', () => {
  it('README holds the tables of both committed results', () => {
    const dir = join(import.meta.dirname, '../../../reports/sim/routing-transfer-2026-12-05');
    const read = (v: string) => JSON.parse(readFileSync(join(dir, `static-pins-${v}`, 'routing-transfer.json'), 'utf8')) as TransferResult;
    const own = read('own');
    const others = read('others');
    const md = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(own.predictedOnly && others.predictedOnly).toBe(true);
    expect(md).toContain(transferTable(own));
    expect(md).toContain(transferTable(others));
    expect(md).toContain(staticPinsTable(own, others));
    expect(() => staticPinsTable(others, own)).toThrow(/own-pins and an others-pins/);
  });
});
