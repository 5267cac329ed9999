/**
 * Prompt sources of record-trace: `builtin` (the embedded set in prompts/builtin.ts) or a ShareGPT-format
 * JSON file (an array of {id, conversations: [{from: 'human' | 'gpt', value}]}; the first human turn of
 * each conversation is its prompt; conversations without one are skipped). Nothing is downloaded.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { BadInputError, UserError } from '../../../core/src/errors.js';
import { BUILTIN_PROMPTS } from './prompts/builtin.js';

export interface PromptTexts {
  /** dataset label for the trace metadata */
  label: string;
  texts: string[];
}

export function loadPromptTexts(dataset: string): PromptTexts {
  if (dataset === 'builtin') return { label: 'builtin', texts: [...BUILTIN_PROMPTS] };
  if (dataset === 'sharegpt') {
    throw new UserError('option --dataset: give the path of a ShareGPT-format JSON file (e.g. --dataset ShareGPT_V3_unfiltered_cleaned_split.json); nothing is downloaded');
  }
  if (!existsSync(dataset)) throw new BadInputError(dataset, 'no such dataset file (--dataset takes builtin or a ShareGPT-format JSON file)');
  if (!statSync(dataset).isFile()) throw new BadInputError(dataset, 'not a file');
  return { label: `sharegpt:${basename(dataset)}`, texts: parseShareGpt(readFileSync(dataset, 'utf8'), dataset) };
}

export function parseShareGpt(text: string, file: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new BadInputError(file, `not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(doc)) throw new BadInputError(file, 'a ShareGPT file is a JSON array of {id, conversations: [{from, value}]}');
  const prompts: string[] = [];
  doc.forEach((item, i) => {
    const conv = (item as { conversations?: unknown })?.conversations;
    if (!Array.isArray(conv)) throw new BadInputError(file, `entry ${i} has no conversations array`);
    conv.forEach((turn, j) => {
      const t = turn as { from?: unknown; value?: unknown };
      if (typeof t?.from !== 'string' || typeof t.value !== 'string') {
        throw new BadInputError(file, `entry ${i}, turn ${j}: expected {from: string, value: string}`);
      }
    });
    const first = (conv as { from: string; value: string }[]).find((t) => t.from === 'human');
    if (first && first.value.trim() !== '') prompts.push(first.value);
  });
  if (prompts.length === 0) throw new BadInputError(file, 'no conversation has a non-empty human turn');
  return prompts;
}
