import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTrace } from '../src/reader.js';
import { repoRoot, tempDir } from '../../core/test/helpers.js';

/**
 * A writer process killed with SIGKILL mid-run must leave no file at the target path (only its hidden
 * partial file), and a writer that closes after an interrupt leaves a valid, shorter trace.
 */
function writerScript(target: string, closeOnSigint: boolean): string {
  const writer = join(repoRoot, 'dist', 'traces', 'src', 'writer.js');
  return `
    import { TraceWriter } from ${JSON.stringify(writer)};
    const meta = { modelId: 'x', configHash: 'h', numLayers: 2, moeLayers: [1], numExperts: 4, topK: 1,
      routingSource: 'model', dataset: 'd', batchSize: 1, promptLength: 1, device: null, engineVersion: 't',
      gitRevision: null, createdAt: new Date().toISOString() };
    const w = TraceWriter.create(${JSON.stringify(target)}, meta);
    let step = 0;
    ${closeOnSigint ? "process.on('SIGINT', () => { w.close(); process.exit(130); });" : ''}
    setInterval(() => {
      w.append({ step: [step], phase: [1], layer: [1], seq: [0], pos: [step], experts: [step % 4], weights: [1] });
      w.flush();
      if (step++ === 5) process.stdout.write('ready\\n');
    }, 2);
  `;
}

function runUntilReady(script: string, dir: string): Promise<import('node:child_process').ChildProcess> {
  const file = join(dir, 'writer.mjs');
  writeFileSync(file, script);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('ready') && resolve(child));
    child.on('error', reject);
  });
}

describe('trace writer crash safety', () => {
  it('SIGKILL mid-run leaves no trace at the target path', async () => {
    const d = tempDir();
    try {
      const target = join(d.path, 'run.arrow');
      const child = await runUntilReady(writerScript(target, false), d.path);
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      expect(existsSync(target)).toBe(false);
      expect(readdirSync(d.path).filter((f) => f.startsWith('.run.arrow.partial-'))).toHaveLength(1);
    } finally {
      d.cleanup();
    }
  });

  it('an interrupted writer that closes leaves a valid trace of what it recorded', async () => {
    const d = tempDir();
    try {
      const target = join(d.path, 'run.arrow');
      const child = await runUntilReady(writerScript(target, true), d.path);
      child.kill('SIGINT');
      await new Promise((r) => child.on('exit', r));
      const t = readTrace(target);
      expect(t.rows).toBeGreaterThanOrEqual(6);
      expect([...t.step.subarray(0, 6)]).toEqual([0, 1, 2, 3, 4, 5]);
      expect(readdirSync(d.path).filter((f) => f.includes('.partial-'))).toEqual([]);
    } finally {
      d.cleanup();
    }
  });
});
