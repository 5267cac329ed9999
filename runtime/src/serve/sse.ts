/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, `data: [DONE]\n\n` last;
 * an error after the stream began is sent as `data: {"error": ...}` (what the official clients raise).
 */
import type { ServerResponse } from 'node:http';

export class SseStream {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  /** Sends the headers (200, text/event-stream) once. */
  open(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    this.res.flushHeaders();
  }

  get writable(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  send(data: unknown): void {
    this.open();
    if (this.writable) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** `[DONE]` and the end of the response. */
  done(): void {
    this.open();
    if (this.writable) this.res.end('data: [DONE]\n\n');
  }

  /** An error event, then the end (no [DONE]: the stream did not complete). */
  fail(body: unknown): void {
    this.open();
    if (this.writable) this.res.end(`data: ${JSON.stringify(body)}\n\n`);
  }
}
