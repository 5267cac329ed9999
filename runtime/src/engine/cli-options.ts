import { UserError } from '../util/errors.js';
import { parseChoiceOption, parseFloatOption, parseIntOption } from '../util/options.js';
import type { EngineLoadOptions, Sampling } from './options.js';

/** Raw commander values of the options `generate` and `chat` share. */
export interface RawEngineCliOptions {
  greedy?: boolean;
  temperature?: string;
  topP?: string;
  seed?: string;
  device?: string;
  threads?: string;
}

/** `--greedy | --temperature T [--top-p P] [--seed S]`: greedy unless a temperature is given. */
export function samplingFromCli(o: RawEngineCliOptions): Sampling {
  const sampled = o.temperature !== undefined || o.topP !== undefined || o.seed !== undefined;
  if (o.greedy && sampled) throw new UserError('option --greedy: cannot be combined with --temperature, --top-p or --seed');
  if (!sampled) return 'greedy';
  if (o.temperature === undefined) throw new UserError('option --temperature: required when --top-p or --seed is given');
  return {
    temperature: parseFloatOption('--temperature', o.temperature, Number.MIN_VALUE, 100),
    topP: o.topP === undefined ? 1 : parseFloatOption('--top-p', o.topP, Number.MIN_VALUE, 1),
    seed: o.seed === undefined ? 0 : parseIntOption('--seed', o.seed, 0, Number.MAX_SAFE_INTEGER),
  };
}

export function loadOptionsFromCli(o: RawEngineCliOptions): EngineLoadOptions {
  return {
    device: parseChoiceOption('--device', o.device ?? 'cpu', ['cpu', 'cuda'] as const),
    threads: o.threads === undefined ? 0 : parseIntOption('--threads', o.threads, 0, 1024),
  };
}

/** Streams decoded text: decodes the whole sequence so far and emits only the new suffix, so tokens
 * that only form a character together (byte-level BPE) come out whole. */
export class TextStream {
  private ids: number[] = [];
  private emitted = '';
  constructor(private readonly decode: (ids: number[]) => string) {}

  push(id: number): string {
    this.ids.push(id);
    const text = this.decode(this.ids);
    // An incomplete UTF-8 sequence decodes to U+FFFD at the end: wait for the rest.
    if (text.endsWith('\uFFFD')) return '';
    const delta = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return delta;
  }

  /** Whatever has not been emitted yet (a trailing partial character at the very end). */
  flush(): string {
    const text = this.decode(this.ids);
    const rest = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return rest;
  }

  get text(): string {
    return this.decode(this.ids);
  }
}
