/**
 * The server's Prometheus metrics (text exposition format 0.0.4): counters, gauges and histograms
 * kept in memory by the server instance (no globals: two servers in one process count apart).
 */

type Labels = Record<string, string>;

function labelText(l: Labels): string {
  const keys = Object.keys(l);
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${l[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function num(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
}

class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const e = this.values.get(key) ?? { labels, value: 0 };
    e.value += by;
    this.values.set(key, e);
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) out.push(`${this.name} 0`);
    for (const e of this.values.values()) out.push(`${this.name}${labelText(e.labels)} ${num(e.value)}`);
    return out;
  }
}

class Gauge {
  value = 0;
  constructor(readonly name: string, readonly help: string) {}
  render(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${num(this.value)}`];
  }
}

class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    this.buckets.forEach((b, i) => {
      if (v <= b) this.counts[i]++;
    });
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${num(this.sum)}`, `${this.name}_count ${this.count}`);
    return out;
  }
}

/** Seconds: 1 ms .. 60 s, roughly x2.5 apart. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Engine-side figures read between steps (the native engine answers nothing while a step runs). */
export interface EngineFigures {
  /** expert-cache requests and hits over every MoE layer since load; null without a cache */
  expertRequests: number | null;
  expertHits: number | null;
  /** host-to-device bytes of offloaded experts since load; null when nothing is offloaded */
  bytesH2D: number | null;
}

export class ServeMetrics {
  readonly requests = new Counter('moe_serve_requests_total', 'HTTP requests answered, by endpoint and status code.');
  readonly promptTokens = new Counter('moe_serve_prompt_tokens_total', 'Prompt tokens of admitted requests.');
  readonly completionTokens = new Counter('moe_serve_completion_tokens_total', 'Tokens generated.');
  readonly rejected = new Counter('moe_serve_rejected_total', 'Requests refused with 429 because the queue was full.');
  readonly cancelled = new Counter('moe_serve_cancelled_total', 'Sequences that left before finishing (client gone, stop string, shutdown).');
  readonly steps = new Counter('moe_serve_engine_steps_total', 'Engine forwards (batched steps).');
  readonly queueDepth = new Gauge('moe_serve_queue_depth', 'Requests waiting for a sequence slot.');
  readonly batchSize = new Gauge('moe_serve_batch_size', 'Sequences in the running batch.');
  readonly maxBatch = new Gauge('moe_serve_max_batch', 'Sequence slots (--max-batch).');
  readonly ttft = new Histogram('moe_serve_time_to_first_token_seconds', 'From request arrival to its first generated token.', LATENCY_BUCKETS);
  readonly tpot = new Histogram('moe_serve_time_per_output_token_seconds', 'Between consecutive generated tokens of one request.', LATENCY_BUCKETS);
  readonly stepSeconds = new Histogram('moe_serve_step_seconds', 'Wall time of one engine step.', LATENCY_BUCKETS);

  render(engine: EngineFigures): string {
    const lines: string[] = [];
    for (const m of [this.requests, this.promptTokens, this.completionTokens, this.rejected, this.cancelled, this.steps, this.queueDepth, this.batchSize, this.maxBatch, this.ttft, this.tpot, this.stepSeconds]) {
      lines.push(...m.render());
    }
    if (engine.expertRequests !== null && engine.expertHits !== null) {
      lines.push('# HELP moe_serve_expert_requests_total Routed-expert requests seen by the expert cache since load.', '# TYPE moe_serve_expert_requests_total counter', `moe_serve_expert_requests_total ${engine.expertRequests}`);
      lines.push('# HELP moe_serve_expert_hits_total Routed-expert requests the expert cache held.', '# TYPE moe_serve_expert_hits_total counter', `moe_serve_expert_hits_total ${engine.expertHits}`);
      const rate = engine.expertRequests > 0 ? engine.expertHits / engine.expertRequests : 0;
      lines.push('# HELP moe_serve_expert_hit_rate Expert-cache hit rate since load.', '# TYPE moe_serve_expert_hit_rate gauge', `moe_serve_expert_hit_rate ${num(rate)}`);
    }
    if (engine.bytesH2D !== null) {
      lines.push('# HELP moe_serve_expert_bytes_h2d_total Bytes of offloaded experts copied host to device since load.', '# TYPE moe_serve_expert_bytes_h2d_total counter', `moe_serve_expert_bytes_h2d_total ${engine.bytesH2D}`);
    }
    return lines.join('\n') + '\n';
  }
}
