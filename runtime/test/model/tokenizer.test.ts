import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEEPSEEK_V2_CHAT_TEMPLATE, isKnownChatTemplate, renderChat } from '../../src/model/chat-template.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { BOS_TOKEN, EOS_TOKEN } from '../../src/model/synth/tokenizer-files.js';
import { tempDir } from '../../../core/test/helpers.js';
import { copyDir, editJson, makeTiny } from './fixtures.js';

describe('DeepSeek-V2-Chat template', () => {
  const B = '<B>';
  const E = '<E>';
  it('renders system, user and assistant turns exactly', () => {
    const text = renderChat(
      [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'Why?' },
      ],
      B,
      E,
      { addGenerationPrompt: true },
    );
    expect(text).toBe('<B>You are terse.\n\nUser: Hi\n\nAssistant: Hello.<E>User: Why?\n\nAssistant:');
  });
  it('adds the generation prompt only when asked', () => {
    expect(renderChat([{ role: 'user', content: 'x' }], B, E)).toBe('<B>User: x\n\n');
    expect(renderChat([{ role: 'user', content: 'x' }], B, E, { addGenerationPrompt: false })).toBe('<B>User: x\n\n');
    expect(renderChat([], B, E, { addGenerationPrompt: true })).toBe('<B>Assistant:');
  });
  it('refuses unknown roles instead of dropping the message', () => {
    expect(() => renderChat([{ role: 'tool' as 'user', content: 'x' }], B, E)).toThrow(/chat message 0: unknown role "tool"/);
  });
  it('recognises the Hub template, also re-spaced, and nothing else', () => {
    expect(isKnownChatTemplate(DEEPSEEK_V2_CHAT_TEMPLATE)).toBe(true);
    expect(isKnownChatTemplate(DEEPSEEK_V2_CHAT_TEMPLATE.replace(/%}/g, ' %}\n'))).toBe(true);
    expect(isKnownChatTemplate(DEEPSEEK_V2_CHAT_TEMPLATE.replace("'User: '", "'USER: '"))).toBe(false);
  });
});

describe('tokenizer of a synthetic checkpoint', () => {
  const d = tempDir();
  let dir: string;
  beforeAll(async () => {
    dir = await makeTiny(join(d.path, 'tiny-b'), 'tiny-b', 5);
  });
  afterAll(() => d.cleanup());

  it('round-trips text, with every id inside the vocabulary', () => {
    const tok = loadTokenizer(dir);
    const vocab = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).vocab_size;
    for (const s of ['Hello world!', 'Experts are offloaded to the host: 1024 tokens.', 'émoji 😀, 中文, tabs\tand\nnewlines  ', '']) {
      const ids = tok.encode(s);
      expect(ids.every((i) => Number.isInteger(i) && i >= 0 && i < vocab), s).toBe(true);
      expect(tok.decode(ids)).toBe(s);
    }
    // learned merges make common words shorter than their bytes
    expect(tok.encode('the experts').length).toBeLessThan('the experts'.length);
  });

  it("has bos/eos at config.json's ids with DeepSeek's strings", () => {
    const tok = loadTokenizer(dir);
    expect(tok.bosTokenId).toBe(1000);
    expect(tok.eosTokenId).toBe(1001);
    expect(tok.bosToken).toBe(BOS_TOKEN);
    expect(tok.eosToken).toBe(EOS_TOKEN);
    expect(tok.encode('x', { addBos: true })[0]).toBe(1000);
    expect(tok.decode([1000, 1001])).toBe(BOS_TOKEN + EOS_TOKEN);
    expect(tok.decode([1000, 1001], { skipSpecialTokens: true })).toBe('');
    // every id of the vocabulary decodes (a model with random weights may emit any of them)
    for (let id = 0; id < 1024; id++) expect(typeof tok.decode([id])).toBe('string');
    expect(() => tok.decode([72, 1024])).toThrow(/token id 1024 is not in the vocabulary of .*tokenizer\.json/);
    expect(() => tok.decode([-1])).toThrow(/token id -1 is not in the vocabulary/);
  });

  it('applies the chat template: special tokens become their ids, once', () => {
    const tok = loadTokenizer(dir);
    const messages = [
      { role: 'user' as const, content: 'Hi' },
      { role: 'assistant' as const, content: 'Hello' },
      { role: 'user' as const, content: 'More?' },
    ];
    const text = tok.renderChat(messages, { addGenerationPrompt: true });
    expect(text).toBe(`${BOS_TOKEN}User: Hi\n\nAssistant: Hello${EOS_TOKEN}User: More?\n\nAssistant:`);
    const ids = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    expect(ids[0]).toBe(1000);
    expect(ids.filter((i) => i === 1000)).toHaveLength(1);
    expect(ids.filter((i) => i === 1001)).toHaveLength(1);
    expect(tok.decode(ids)).toBe(text);
  });

  it('names missing tokenizer files', () => {
    const a = copyDir(dir, join(d.path, 'no-tokenizer'));
    unlinkSync(join(a, 'tokenizer.json'));
    expect(() => loadTokenizer(a)).toThrow(/tokenizer\.json: missing tokenizer file: tokenizer\.json/);
    unlinkSync(join(a, 'tokenizer_config.json'));
    expect(() => loadTokenizer(a)).toThrow(/missing tokenizer files: tokenizer\.json and tokenizer_config\.json/);
  });

  it('refuses to apply an unknown chat template, but still encodes', () => {
    const a = copyDir(dir, join(d.path, 'other-template'));
    editJson(join(a, 'tokenizer_config.json'), (o) => (o.chat_template = '{{ messages }}'));
    const tok = loadTokenizer(a);
    expect(tok.decode(tok.encode('ok'))).toBe('ok');
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/tokenizer_config\.json: chat_template is not the DeepSeek-V2-Chat template/);
  });

  it('catches a tokenizer that disagrees with config.json on bos/eos', () => {
    const a = copyDir(dir, join(d.path, 'bos-mismatch'));
    editJson(join(a, 'config.json'), (o) => (o.bos_token_id = 7));
    expect(() => loadTokenizer(a)).toThrow(/config\.json: bos_token_id = 7 but the tokenizer's bos_token has id 1000/);
    const b = copyDir(dir, join(d.path, 'eos-missing'));
    editJson(join(b, 'tokenizer_config.json'), (o) => (o.eos_token = '<nope>'));
    expect(() => loadTokenizer(b)).toThrow(/tokenizer\.json: eos_token "<nope>" is not in the vocabulary/);
  });
});
