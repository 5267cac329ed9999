import type { ModelConfig } from '../model/config.js';
import { UserError } from '../../../core/src/errors.js';

/**
 * A sequence may not run past the model's context (max_position_embeddings: the positions its RoPE
 * scaling was made for). Checked before anything loads, so a run that cannot work is refused at once,
 * in the command's own option names, instead of after minutes of prefill.
 */
export function checkContextLimit(config: ModelConfig, promptTokens: number, newTokens: number, names: { prompt: string; newTokens: string }): void {
  const limit = config.maxPositionEmbeddings;
  if (promptTokens > limit) {
    throw new UserError(`option ${names.prompt}: ${promptTokens} prompt tokens exceed the model's context of ${limit} tokens (max_position_embeddings in config.json)`);
  }
  // The last generated token is never fed back, so a sequence occupies prompt + new - 1 positions.
  if (promptTokens + newTokens - 1 > limit) {
    throw new UserError(
      `option ${names.newTokens}: ${promptTokens} prompt tokens + ${newTokens} new tokens exceed the model's context of ${limit} tokens ` +
        `(max_position_embeddings in config.json); at most ${limit - promptTokens + 1} new tokens after this prompt`,
    );
  }
}
