/**
 * The HTTP layer on Node's own `http` module: routing by method and path, Bearer API key, request
 * bodies read with a size limit and parsed as JSON, and one place that turns any error into an
 * OpenAI-shaped response, so that no request can take the process down.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './api-error.js';
import type { ServeMetrics } from './metrics.js';

export interface Route {
  method: 'GET' | 'POST';
  /** exact path, or a prefix ending in '/' matched with the rest as `rest` */
  path: string;
  prefix?: boolean;
  /** the metrics' endpoint label (defaults to path) */
  label?: string;
  handle(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> | void;
}

export interface HttpOptions {
  /** every request needs `Authorization: Bearer <apiKey>` */
  apiKey?: string;
  maxBodyBytes: number;
  metrics: ServeMetrics;
  /** for unexpected errors (bugs): logged, answered 500 */
  log(message: string): void;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  sendJson(res, err.status, err.body(), err.headers);
}

/** The body as JSON; 413 past `limit` bytes, 400 when it is not JSON. */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new ApiError(413, `the request body of ${declared} bytes exceeds the limit of ${limit} bytes`, 'invalid_request_error', null, 'request_too_large'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    let ended = false;
    // A client that goes away mid-body: settle (nobody reads the answer) instead of waiting forever.
    req.on('close', () => {
      if (ended || failed) return;
      failed = true;
      reject(new ApiError(400, 'the client closed the connection before the request body ended'));
    });
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new ApiError(413, `the request body exceeds the limit of ${limit} bytes`, 'invalid_request_error', null, 'request_too_large'));
        return;
      }
      chunks.push(c);
    });
    req.on('error', (e) => {
      if (!failed) reject(new ApiError(400, `reading the request body failed: ${e.message}`));
      failed = true;
    });
    req.on('end', () => {
      ended = true;
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') {
        reject(new ApiError(400, 'the request body is empty; expected a JSON object'));
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, `the request body is not valid JSON (${(e as Error).message})`, 'invalid_request_error', null, 'invalid_json'));
      }
    });
  });
}

function authorized(req: IncomingMessage, key: string): boolean {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
  const got = Buffer.from(h.slice('Bearer '.length).trim());
  const want = Buffer.from(key);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The request listener: auth, route, and errors -> OpenAI-shaped bodies. */
export function createRequestListener(routes: Route[], o: HttpOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    let label = 'other';
    res.on('finish', () => o.metrics.requests.inc({ endpoint: label, status: String(res.statusCode) }));
    const run = async (): Promise<void> => {
      if (o.apiKey !== undefined && !authorized(req, o.apiKey)) {
        throw new ApiError(401, 'Incorrect or missing API key: send the header Authorization: Bearer <key>', 'authentication_error', null, 'invalid_api_key', { 'WWW-Authenticate': 'Bearer' });
      }
      const matches = routes.filter((r) => (r.prefix ? path.startsWith(r.path) && path.length > r.path.length : path === r.path));
      if (matches.length === 0) throw new ApiError(404, `no such endpoint: ${req.method} ${path}`, 'invalid_request_error', null, 'not_found');
      const route = matches.find((r) => r.method === req.method);
      if (!route) throw new ApiError(405, `method ${req.method} is not allowed on ${path} (use ${matches.map((r) => r.method).join(' or ')})`, 'invalid_request_error', null, 'method_not_allowed', { Allow: matches.map((r) => r.method).join(', ') });
      label = route.label ?? route.path;
      await route.handle(req, res, route.prefix ? decodeURIComponent(path.slice(route.path.length)) : '');
    };
    run().catch((err: unknown) => {
      if (err instanceof ApiError) {
        // An unread body keeps the connection from being reused: close it after the answer.
        if (err.status === 413) res.setHeader('Connection', 'close');
        sendError(res, err);
        return;
      }
      o.log(`internal error on ${req.method} ${path}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      sendError(res, new ApiError(500, `internal server error: ${err instanceof Error ? err.message : String(err)}`, 'server_error'));
    });
  };
}
