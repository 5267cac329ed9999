import { UserError } from '../../../core/src/errors.js';

/**
 * The DeepSeek-V2(-Lite)-Chat chat template, implemented in code. The Jinja source below is what
 * the model's tokenizer_config.json carries; it is only compared against, never interpreted.
 */
export const DEEPSEEK_V2_CHAT_TEMPLATE =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}" +
  '{{ bos_token }}{% for message in messages %}' +
  "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}" +
  "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}" +
  "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatTemplateOptions {
  /** end with `Assistant:` so the model writes the next reply */
  addGenerationPrompt?: boolean;
}

/**
 * `<bos>` then, per message: user -> `User: {content}\n\n`, assistant -> `Assistant: {content}<eos>`,
 * system -> `{content}\n\n`; with a generation prompt the text ends in `Assistant:`.
 * (The Jinja template silently drops unknown roles; here they are an error, since dropping a
 * message is never what the caller meant.)
 */
export function renderChat(messages: readonly ChatMessage[], bosToken: string, eosToken: string, opts: ChatTemplateOptions = {}): string {
  let text = bosToken;
  messages.forEach((m, i) => {
    if (typeof m?.content !== 'string') throw new UserError(`chat message ${i}: content must be a string`);
    switch (m.role) {
      case 'user':
        text += `User: ${m.content}\n\n`;
        break;
      case 'assistant':
        text += `Assistant: ${m.content}${eosToken}`;
        break;
      case 'system':
        text += `${m.content}\n\n`;
        break;
      default:
        throw new UserError(`chat message ${i}: unknown role ${JSON.stringify((m as { role: unknown }).role)} (expected system, user or assistant)`);
    }
  });
  if (opts.addGenerationPrompt) text += 'Assistant:';
  return text;
}

/** Whitespace-insensitive comparison, so a re-serialised template with other spacing still counts as known. */
export function isKnownChatTemplate(template: string): boolean {
  const squash = (s: string) => s.replace(/\s+/g, '');
  return squash(template) === squash(DEEPSEEK_V2_CHAT_TEMPLATE);
}
