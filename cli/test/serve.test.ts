/**
 * `serve` end to end on loopback, tiny synthetic checkpoint on the CPU: the official `openai` client
 * streams chat completions; 32 concurrent streams (more than --max-batch, so requests queue, join
 * the running batch and leave it) each get exactly the text and token count of their prompt generated
 * alone (greedy); every bad request gets its OpenAI-shaped 4xx and the server keeps answering; a
 * disconnect mid-stream frees the slot; SIGTERM ends a running stream and exits 0. No timing assertions.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../runtime/src/engine/index.js';
import type { ChatMessage } from '../../runtime/src/model/chat-template.js';
import { tempDir } from '../../core/test/helpers.js';
import { makeCheckpoint, requireAddonOrSkip } from '../../runtime/test/engine/helpers.js';
import { metric, raw, startServe, type ServeProcess } from './serve-helpers.js';

const ready = requireAddonOrSkip('serve');
const KEY = 'test-key-123';
const NEW = 6;
const CONTEXT = 96;

const question = (i: number): ChatMessage[] => [{ role: 'user', content: `question ${i}: ${'why '.repeat(i % 5)}?` }];

describe.skipIf(!ready)('serve', () => {
  const tmp = tempDir('moe-serve-');
  let model: string;
  let srv: ServeProcess;
  let client: OpenAI;
  /** greedy reference of question(i) generated alone: decoded text and token count */
  const alone: { text: string; tokens: number }[] = [];
  const headers = { Authorization: `Bearer ${KEY}` };

  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 3);
    const engine = await Engine.load(model, { threads: 2 });
    try {
      const tok = engine.tokenizer;
      for (let i = 0; i < 32; i++) {
        const prompt = tok.applyChatTemplate(question(i), { addGenerationPrompt: true });
        const { tokens } = await engine.generateAll({ prompts: [prompt], maxNewTokens: NEW });
        alone.push({ text: tok.decode(tokens[0], { skipSpecialTokens: true }), tokens: tokens[0].length });
      }
    } finally {
      engine.close();
    }
    srv = await startServe(['--model', model, '--threads', '2', '--max-batch', '8', '--max-queue', '64', '--context', String(CONTEXT), '--api-key', KEY, '--max-body', '16KiB']);
    client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(() => {
    if (srv && srv.child.exitCode === null) srv.child.kill('SIGKILL');
    tmp.cleanup();
  });

  async function streamChat(i: number): Promise<{ text: string; finish: string | null; usage: number | undefined; roleFirst: boolean }> {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: question(i), max_tokens: NEW, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: number | undefined;
    let roleFirst = false;
    let first = true;
    for await (const chunk of stream) {
      if (first) roleFirst = chunk.choices[0]?.delta.role === 'assistant';
      first = false;
      const c = chunk.choices[0];
      if (c?.delta.content) text += c.delta.content;
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage.completion_tokens;
    }
    return { text, finish, usage, roleFirst };
  }

  it('lists its model and streams a chat completion to the official openai client', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tiny']);
    const got = await streamChat(0);
    expect(got.roleFirst).toBe(true);
    expect(got.text).toBe(alone[0].text);
    expect(got.usage).toBe(alone[0].tokens);
    expect(got.finish).toBe(alone[0].tokens < NEW ? 'stop' : 'length');
    const whole = await client.chat.completions.create({ model: 'tiny', messages: question(0), max_tokens: NEW, temperature: 0 });
    expect(whole.choices[0].message.content).toBe(alone[0].text);
    expect(whole.usage?.completion_tokens).toBe(alone[0].tokens);
  });

  it('serves 32 concurrent streams, each with the tokens of its prompt generated alone', async () => {
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) => streamChat(i)));
    results.forEach((r, i) => {
      expect({ i, text: r.text, tokens: r.usage }).toEqual({ i, text: alone[i].text, tokens: alone[i].tokens });
    });
    const m = (await raw(srv.url, 'GET', '/metrics', undefined, headers)).body;
    expect(metric(m, 'moe_serve_requests_total', '{endpoint="/v1/chat/completions",status="200"}')).toBeGreaterThanOrEqual(34);
    expect(metric(m, 'moe_serve_time_to_first_token_seconds_count')).toBeGreaterThanOrEqual(34);
  });

  it('answers every bad request with its OpenAI-shaped 4xx and keeps serving', async () => {
    const chat = (body: unknown) => raw(srv.url, 'POST', '/v1/chat/completions', typeof body === 'string' ? body : JSON.stringify(body), headers);
    const good = { model: 'tiny', messages: question(1), max_tokens: 2, temperature: 0 };
    const cases: [string, Promise<{ status: number; body: string }>, number, RegExp][] = [
      ['malformed JSON', chat('{"model": "tiny", "messages": ['), 400, /not valid JSON/],
      ['empty body', chat(''), 400, /empty/],
      ['not an object', chat('[1, 2]'), 400, /must be a JSON object/],
      ['wrong type max_tokens', chat({ ...good, max_tokens: '5' }), 400, /^max_tokens: must be an integer/],
      ['wrong type temperature', chat({ ...good, temperature: 'hot' }), 400, /^temperature: must be a number/],
      ['wrong type messages', chat({ ...good, messages: 'hi' }), 400, /^messages: must be a non-empty array/],
      ['wrong type stream', chat({ ...good, stream: 'yes' }), 400, /^stream: must be a boolean/],
      ['bad role', chat({ ...good, messages: [{ role: 'wizard', content: 'x' }] }), 400, /messages\[0\]\.role/],
      ['unknown field', chat({ ...good, frobnicate: 1 }), 400, /Unrecognized request argument supplied: frobnicate/],
      ['n > 1', chat({ ...good, n: 2 }), 400, /^n: only n: 1/],
      ['non-neutral penalty', chat({ ...good, presence_penalty: 1 }), 400, /^presence_penalty/],
      ['prompt longer than the context', raw(srv.url, 'POST', '/v1/completions', JSON.stringify({ model: 'tiny', prompt: Array(CONTEXT + 5).fill(7) }), headers), 400, /maximum context length is 96 tokens/],
      ['max_tokens past the limit', chat({ ...good, max_tokens: 100000 }), 400, /^max_tokens: 100000 is too large/],
      ['token id outside the vocabulary', raw(srv.url, 'POST', '/v1/completions', JSON.stringify({ model: 'tiny', prompt: [1, 99999] }), headers), 400, /prompt\[1\]: token id 99999/],
      ['unknown model', chat({ ...good, model: 'gpt-4' }), 404, /The model 'gpt-4' does not exist/],
      ['body too large', chat(JSON.stringify({ ...good, messages: [{ role: 'user', content: 'x'.repeat(20000) }] })), 413, /exceeds the limit of 16384 bytes/],
      ['no API key', raw(srv.url, 'POST', '/v1/chat/completions', JSON.stringify(good)), 401, /API key/],
      ['wrong API key', raw(srv.url, 'GET', '/v1/models', undefined, { Authorization: 'Bearer nope' }), 401, /API key/],
      ['unknown endpoint', raw(srv.url, 'GET', '/v1/engines', undefined, headers), 404, /no such endpoint/],
      ['wrong method', raw(srv.url, 'GET', '/v1/chat/completions', undefined, headers), 405, /not allowed/],
    ];
    for (const [what, pending, status, message] of cases) {
      const r = await pending;
      expect({ what, status: r.status }).toEqual({ what, status });
      const body = JSON.parse(r.body) as { error: { message: string; type: string } };
      expect(body.error.message, what).toMatch(message);
      expect(typeof body.error.type, what).toBe('string');
    }
    // The official client raises its own error classes from these bodies.
    await expect(client.chat.completions.create({ ...good, model: 'nope' })).rejects.toMatchObject({ status: 404 });
    await expect(client.chat.completions.create({ ...good, max_tokens: 0 })).rejects.toMatchObject({ status: 400 });
    // Not HTTP at all, and a client that leaves in the middle of its body.
    const port = Number(new URL(srv.url).port);
    const garbage = await new Promise<string>((resolve) => {
      const sock = connect(port, '127.0.0.1', () => sock.write('NOT HTTP\r\n\r\n'));
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', () => resolve(got));
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    await new Promise<void>((resolve) => {
      const sock = connect(port, '127.0.0.1', () => {
        sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model": "ti`);
        setTimeout(() => sock.destroy(), 20);
      });
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
    });
    // Still serving.
    expect((await raw(srv.url, 'GET', '/health', undefined, headers)).status).toBe(200);
    const again = await client.chat.completions.create({ ...good, max_tokens: NEW });
    expect(again.choices[0].message.content).toBe(alone[1].text);
  });

  it('applies stop strings and answers /v1/completions', async () => {
    const i = alone.findIndex((a) => a.text.length >= 3);
    expect(i).toBeGreaterThanOrEqual(0);
    const text = alone[i].text;
    const r = await client.completions.create({ model: 'tiny', prompt: 'hello there', max_tokens: 3, temperature: 0 });
    expect(r.choices[0].text.length).toBeGreaterThan(0);
    expect(r.usage?.completion_tokens).toBe(3);
    // A stop string taken from the middle of the known answer: the text ends right before it.
    const stop = text.slice(1, 3);
    const s = await client.chat.completions.create({ model: 'tiny', messages: question(i), max_tokens: NEW, temperature: 0, stop: [stop] });
    expect(s.choices[0].message.content).toBe(text.slice(0, text.indexOf(stop)));
    expect(s.choices[0].finish_reason).toBe('stop');
  });

  it('frees the slot of a client that disconnects mid-stream', async () => {
    const before = (await raw(srv.url, 'GET', '/metrics', undefined, headers)).body;
    const body = JSON.stringify({ model: 'tiny', prompt: [1, 2, 3], max_tokens: CONTEXT - 3, temperature: 0, stream: true });
    await new Promise<void>((resolve, reject) => {
      const req = request(`${srv.url}/v1/completions`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' } }, (res) => {
        res.once('data', () => {
          req.destroy(); // gone after the first chunk
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.once('response', (res) => res.on('error', () => undefined));
      req.on('timeout', reject);
      req.end(body);
    });
    // Poll until the server has noticed (no time limit here beyond the test's own).
    let health = { running: -1, queued: -1 };
    for (;;) {
      health = JSON.parse((await raw(srv.url, 'GET', '/health', undefined, headers)).body) as typeof health;
      if (health.running === 0 && health.queued === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = (await raw(srv.url, 'GET', '/metrics', undefined, headers)).body;
    expect(metric(after, 'moe_serve_cancelled_total') - metric(before, 'moe_serve_cancelled_total')).toBe(1);
    // It left long before its 93 tokens: the slot was freed, not run to the end.
    expect(metric(after, 'moe_serve_completion_tokens_total') - metric(before, 'moe_serve_completion_tokens_total')).toBeLessThan(CONTEXT - 3);
    expect(metric(after, 'moe_serve_batch_size')).toBe(0);
  });

  it('SIGTERM ends a running stream cleanly and exits 0', async () => {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: question(3), max_tokens: 60, temperature: 0, stream: true });
    const consumed = (async () => {
      let chunks = 0;
      try {
        for await (const _ of stream) {
          chunks++;
          if (chunks === 2) srv.child.kill('SIGTERM');
        }
        return 'ended';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    const outcome = await consumed;
    // Either the stream finished in the meantime or it was ended with the server's shutdown error.
    expect(outcome).toMatch(/^ended$|shut down/);
    const { code, signal } = await srv.exited;
    expect({ code, signal, stderr: srv.stderr() }).toMatchObject({ code: 0, signal: null });
    await expect(raw(srv.url, 'GET', '/health', undefined, headers)).rejects.toThrow();
  });
});

describe.skipIf(!ready)('serve queue bound', () => {
  const tmp = tempDir('moe-serve-queue-');
  let srv: ServeProcess;
  afterAll(() => {
    if (srv && srv.child.exitCode === null) srv.child.kill('SIGKILL');
    tmp.cleanup();
  });

  it('answers 429 with Retry-After past --max-batch + --max-queue, and serves again once a slot is free', async () => {
    const model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 3);
    srv = await startServe(['--model', model, '--threads', '1', '--max-batch', '1', '--max-queue', '0', '--context', '200']);
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const long = await client.completions.create({ model: 'tiny', prompt: [1, 2, 3], max_tokens: 190, temperature: 0, stream: true });
    const it = long[Symbol.asyncIterator]();
    await it.next(); // the long request holds the only slot
    const r = await raw(srv.url, 'POST', '/v1/completions', JSON.stringify({ model: 'tiny', prompt: 'hi', max_tokens: 2 }));
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('1');
    expect((JSON.parse(r.body) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
    long.controller.abort(); // the client leaves: its slot is freed at the next step
    for (;;) {
      const h = JSON.parse((await raw(srv.url, 'GET', '/health')).body) as { running: number };
      if (h.running === 0) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    const ok = await client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 2, temperature: 0 });
    expect(ok.usage?.completion_tokens).toBeGreaterThan(0);
    srv.child.kill('SIGINT');
    expect(await srv.exited).toEqual({ code: 0, signal: null });
  });
});
