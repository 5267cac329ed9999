/**
 * An output that is a whole folder (a sweep's results and charts, a trained predictor), built beside the
 * target and swapped in at the end, so that an interrupted run never leaves a folder that mixes new
 * files with the previous run's.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A fresh, hidden, empty folder beside `target` (same file system, so the swap is a rename). */
export function makePartialDir(target: string): string {
  const partial = join(dirname(target), `.${basename(target)}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial);
  return partial;
}

/**
 * Makes `partial` visible as `target`. A previous `target` is first moved aside, so there is only a
 * moment between the two renames in which neither exists, and never one with a mix of both.
 */
export function publishDir(partial: string, target: string): void {
  if (!existsSync(target)) {
    renameSync(partial, target);
    return;
  }
  const old = join(dirname(target), `.${basename(target)}.old-${process.pid}`);
  rmSync(old, { recursive: true, force: true });
  renameSync(target, old);
  renameSync(partial, target);
  rmSync(old, { recursive: true, force: true });
}

export function discardDir(partial: string): void {
  rmSync(partial, { recursive: true, force: true });
}
