/**
 * Partial outputs left by a run that was killed before it could clean up (SIGKILL, a power cut): the
 * `.NAME.partial-PID` files of core/src/atomic-file.ts whose PID no longer runs. A new run of the same
 * output removes them, so they do not pile up beside the result; a partial of a live run is left alone.
 */
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the stale partials of `target` and returns their paths. */
export function removeStalePartials(target: string): string[] {
  const dir = dirname(target);
  const prefix = `.${basename(target)}.partial-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = name.slice(prefix.length);
    if (!/^\d+$/.test(pid) || alive(Number(pid))) continue;
    const path = join(dir, name);
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
