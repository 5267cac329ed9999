/**
 * Prompts of exactly --prompt-len tokens. Rule (documented in runtime/src/record/README.md): prompt i is
 * <bos> followed by the tokens of dataset prompt i; while it is shorter than L it is continued with "\n\n"
 * and the next dataset prompts (i+1, i+2, ..., wrapping around), then cut to L tokens. No padding token is
 * used: the engine has no attention mask, so every token of a prompt is real text the model reads.
 */
import type { ModelTokenizer } from '../model/tokenizer.js';
import { UserError } from '../../../core/src/errors.js';

export function buildPromptIds(texts: readonly string[], tokenizer: ModelTokenizer, promptLen: number, count: number): number[][] {
  if (texts.length === 0) throw new UserError('the dataset has no prompts');
  const encoded = new Map<number, number[]>();
  const enc = (i: number) => {
    let ids = encoded.get(i);
    if (!ids) encoded.set(i, (ids = tokenizer.encode(texts[i], { addBos: false })));
    return ids;
  };
  const sep = tokenizer.encode('\n\n', { addBos: false });
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const ids = [tokenizer.bosTokenId, ...enc(i % texts.length)];
    for (let j = 1; ids.length < promptLen; j++) {
      if (j > texts.length * 4 + 4 && ids.length <= 1) throw new UserError('the dataset prompts encode to no tokens');
      ids.push(...sep, ...enc((i + j) % texts.length));
    }
    out.push(ids.slice(0, promptLen));
  }
  return out;
}
