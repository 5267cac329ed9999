/**
 * Issue 15, item 11: non-TTY progress showed `0/29958 (0%)` for 13 s without a unit. Lines now carry the
 * unit, and a heartbeat line comes whenever nothing was printed for heartbeatMs (a slow first step).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startProgress } from '../src/progress.js';

describe('startProgress without a terminal', () => {
  const lines: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    lines.length = 0;
  });
  const capture = () => {
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      lines.push(String(s));
      return true;
    });
  };

  it('names the unit in every line', () => {
    capture();
    const p = startProgress('record-trace', 400, { unit: 'generated tokens' });
    for (let i = 0; i < 400; i++) p.tick();
    p.done();
    expect(lines[0]).toBe('record-trace: 0/400 generated tokens (0%)\n');
    expect(lines.every((l) => l.includes('generated tokens'))).toBe(true);
    expect(lines.at(-1)).toMatch(/^record-trace: done \(400\/400 generated tokens/);
  });

  it('prints a heartbeat line while a step takes longer than heartbeatMs, and none after done()', async () => {
    capture();
    const p = startProgress('slow', 10, { unit: 'steps', heartbeatMs: 200 });
    await new Promise((r) => setTimeout(r, 700));
    const during = lines.filter((l) => l.startsWith('slow: 0/10 steps')).length;
    expect(during).toBeGreaterThanOrEqual(2); // the first line and at least one heartbeat
    p.done();
    const after = lines.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(lines.length).toBe(after);
  });
});
