import { UserError } from './errors.js';

/** Parsers for command-line option values: each error names the option and the value it refused. */
export function parseIntOption(name: string, value: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^-?\d+$/.test(value.trim())) throw new UserError(`option ${name}: '${value}' is not an integer`);
  const n = Number(value);
  if (n < min || n > max) throw new UserError(`option ${name}: ${n} is out of range [${min}, ${max}]`);
  return n;
}

export function parseIntListOption(name: string, value: string, min?: number, max?: number): number[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new UserError(`option ${name}: empty list`);
  return parts.map((p) => parseIntOption(name, p, min, max));
}

export function parseFloatOption(name: string, value: string, min = -Infinity, max = Infinity): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UserError(`option ${name}: '${value}' is not a number`);
  if (n < min || n > max) throw new UserError(`option ${name}: ${n} is out of range [${min}, ${max}]`);
  return n;
}

export function parseChoiceOption<T extends string>(name: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new UserError(`option ${name}: unknown value '${value}' (choose from ${choices.join(', ')})`);
  }
  return value as T;
}

export function parseChoiceListOption<T extends string>(name: string, value: string, choices: readonly T[]): T[] {
  return value.split(',').map((s) => parseChoiceOption(name, s.trim(), choices));
}

/**
 * The value after `name` in a node script's own arguments (the report and calibration scripts run as
 * `node dist/.../x.js --name value`, without the CLI's parser); a missing one is refused naming the option.
 */
export function requiredScriptArg(name: string, argv: readonly string[] = process.argv): string {
  const i = argv.indexOf(name);
  if (i < 0 || i + 1 >= argv.length) throw new UserError(`option ${name}: required`);
  return argv[i + 1];
}

/** The value after `name` as requiredScriptArg reads it, or `fallback` when `name` is absent (present without a value: refused). */
export function optionalScriptArg(name: string, fallback: string, argv: readonly string[] = process.argv): string {
  return argv.includes(name) ? requiredScriptArg(name, argv) : fallback;
}
