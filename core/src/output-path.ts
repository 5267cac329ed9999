/**
 * Checks of a command's output path, made before any work starts, so that a long run never ends in
 * EISDIR/ENOENT/EEXIST, and a result is never replaced without --force. One helper, so every command
 * words the refusal the same way ("option --out: ...").
 */
import { existsSync, lstatSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UserError } from './errors.js';

export interface OutputCheck {
  /** the option that named the path, as the user typed it (`--out`) */
  option: string;
  /** replace an existing output (the command's --force); without it an existing output is refused */
  force?: boolean;
  /** paths the command reads: an output may not be one of them */
  inputs?: readonly string[];
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

function checkCommon(path: string, c: OutputCheck): string {
  if (path.trim() === '') throw new UserError(`option ${c.option}: the path is empty`);
  const abs = resolve(path);
  const parent = dirname(abs);
  if (!existsSync(parent)) throw new UserError(`option ${c.option}: the folder ${parent} does not exist`);
  if (!statSync(parent).isDirectory()) throw new UserError(`option ${c.option}: ${parent} is not a folder`);
  for (const input of c.inputs ?? []) {
    if (existsSync(abs) && existsSync(input) && sameFile(abs, input)) {
      throw new UserError(`option ${c.option}: ${path} is one of the command's inputs; write the output elsewhere`);
    }
  }
  return abs;
}

/** An output that is one file: its folder exists, it is not a folder or a device, and it is new unless forced. */
export function checkOutputFile(path: string, c: OutputCheck): string {
  const abs = checkCommon(path, c);
  if (existsSync(abs) || isDanglingLink(abs)) {
    const st = lstatSync(abs);
    if (st.isDirectory()) throw new UserError(`option ${c.option}: ${path} is a folder; give a file name`);
    if (!st.isFile()) throw new UserError(`option ${c.option}: ${path} exists and is not a regular file (a device, pipe, socket or link); give a new file name`);
    if (!c.force) throw new UserError(`option ${c.option}: ${path} already exists; pass --force to replace it`);
  }
  return abs;
}

/** An output that is a folder of files: the path is not a file, and an existing folder is replaced only if forced. */
export function checkOutputDir(path: string, c: OutputCheck): string {
  const abs = checkCommon(path, c);
  if (existsSync(abs) || isDanglingLink(abs)) {
    const st = lstatSync(abs);
    if (!st.isDirectory()) throw new UserError(`option ${c.option}: ${path} exists and is not a folder; give a folder path`);
    if (!c.force) throw new UserError(`option ${c.option}: the folder ${path} already exists; pass --force to replace it`);
  }
  return abs;
}

function isDanglingLink(abs: string): boolean {
  try {
    lstatSync(abs);
    return !existsSync(abs);
  } catch {
    return false;
  }
}
