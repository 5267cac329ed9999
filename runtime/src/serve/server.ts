/**
 * The OpenAI-compatible server over one loaded Engine: a continuous batch of `maxBatch` slots owned
 * by the Scheduler, and the routes (models, completions, chat completions, health, metrics). stop()
 * refuses new connections, ends queued and running requests, and closes the batch; the caller closes
 * the engine.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engine/engine.js';
import { UserError } from '../../../core/src/errors.js';
import { ApiError } from './api-error.js';
import { handleGeneration, type GenerationDeps } from './generation-handler.js';
import { createRequestListener, sendJson, type Route } from './http.js';
import { ServeMetrics, type EngineFigures } from './metrics.js';
import type { ModelContext } from './openai-request.js';
import { Scheduler } from './scheduler.js';

export interface ServeOptions {
  engine: Engine;
  /** the model id of /v1/models; requests must name it */
  modelId: string;
  host: string;
  /** 0: any free port */
  port: number;
  maxBatch: number;
  maxQueue: number;
  /** tokens per sequence slot (prompt + generated) */
  contextTokens: number;
  maxPrefillTokens?: number;
  apiKey?: string;
  maxBodyBytes: number;
  /** routing replay: admitted request g replays trace sequence g mod this */
  traceSequences?: number;
  log(message: string): void;
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  metrics: ServeMetrics;
  /** idempotent; resolves when every request has ended and the batch is closed */
  stop(): Promise<void>;
}

function engineFigures(engine: Engine): EngineFigures {
  const stats = engine.cacheStats();
  const sum = (a: Float64Array | undefined) => (a ? a.reduce((x, y) => x + y, 0) : 0);
  const off = engine.offloadStats();
  return {
    expertRequests: stats ? sum(stats.requests) : null,
    expertHits: stats ? sum(stats.hits) : null,
    bytesH2D: off ? off.bytesH2D : null,
  };
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const { engine } = o;
  const tokenizer = engine.tokenizer;
  const batch = await engine.openBatch({ slots: o.maxBatch, capacity: o.contextTokens });
  const metrics = new ServeMetrics();
  const scheduler = new Scheduler(batch, { maxQueue: o.maxQueue, metrics, traceSequences: o.traceSequences, maxPrefillTokens: o.maxPrefillTokens });
  const model: ModelContext = {
    modelId: o.modelId,
    contextTokens: o.contextTokens,
    vocabSize: engine.config.vocabSize,
    encode: (text) => tokenizer.encode(text, { addBos: true }),
    applyChatTemplate: (messages) => {
      try {
        return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
      } catch (err) {
        throw new ApiError(400, `messages: ${(err as Error).message}`, 'invalid_request_error', 'messages');
      }
    },
  };
  const deps: GenerationDeps = { scheduler, model, decode: (ids) => tokenizer.decode(ids, { skipSpecialTokens: true }), maxBodyBytes: o.maxBodyBytes };
  const created = Math.floor(Date.now() / 1000);
  const modelObject = { id: o.modelId, object: 'model', created, owned_by: 'moe-offload' };

  const routes: Route[] = [
    { method: 'GET', path: '/health', handle: (_q, res) => sendJson(res, 200, { status: 'ok', running: scheduler.running, queued: scheduler.queued, maxBatch: o.maxBatch }) },
    {
      method: 'GET',
      path: '/metrics',
      handle: async (_q, res) => {
        const text = metrics.render(await scheduler.betweenSteps(() => engineFigures(engine)));
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(text);
      },
    },
    { method: 'GET', path: '/v1/models', handle: (_q, res) => sendJson(res, 200, { object: 'list', data: [modelObject] }) },
    {
      method: 'GET',
      path: '/v1/models/',
      prefix: true,
      label: '/v1/models/{id}',
      handle: (_q, res, id) => {
        if (id !== o.modelId) throw new ApiError(404, `The model '${id}' does not exist (this server serves '${o.modelId}')`, 'invalid_request_error', 'model', 'model_not_found');
        sendJson(res, 200, modelObject);
      },
    },
    { method: 'POST', path: '/v1/completions', handle: (q, res) => handleGeneration('completion', q, res, deps) },
    { method: 'POST', path: '/v1/chat/completions', handle: (q, res) => handleGeneration('chat', q, res, deps) },
  ];

  const server: Server = createServer(createRequestListener(routes, { apiKey: o.apiKey, maxBodyBytes: o.maxBodyBytes, metrics, log: o.log }));
  server.on('clientError', (_err, socket) => {
    // A malformed request line or headers: answer 400 if the socket still can, never throw.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await scheduler.shutdown();
    batch.close();
    throw new UserError(`cannot listen on ${o.host}:${o.port}: ${(err as Error).message}`);
  }
  server.on('error', (err) => o.log(`server error: ${err.message}`));
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      await scheduler.shutdown();
      server.closeIdleConnections();
      // Every response has ended by now; what is left are sockets of clients that keep them open.
      server.closeAllConnections();
      await closed;
      batch.close();
    })());

  return { url: `http://${shownHost}:${addr.port}`, host: addr.address, port: addr.port, metrics, stop };
}
