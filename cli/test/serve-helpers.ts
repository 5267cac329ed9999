/** Helpers of the serve tests: a `serve` child process on loopback, raw HTTP, metrics. */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { repoRoot } from '../../core/test/helpers.js';

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  stderr(): string;
  /** resolves with the exit code and signal */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `moe-offload serve ... --port 0` and waits for its "listening on" line. */
export function startServe(args: string[]): Promise<ServeProcess> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), 'serve', '--host', '127.0.0.1', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve({ child, url: m[1], stderr: () => err, exited });
    });
    void exited.then(({ code }) => reject(new Error(`serve exited (${code}) before listening:\n${out}\n${err}`)));
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request on loopback; body sent as given (a string, so malformed JSON can be sent). */
export function raw(url: string, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method, headers: { 'Content-Type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A metric's value from Prometheus text (the unlabelled series, or the first with these labels). */
export function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  if (!line) throw new Error(`metric ${name}${labels} not found in:\n${text}`);
  return Number(line.split(' ').pop());
}
