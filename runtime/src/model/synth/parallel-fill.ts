import { Worker } from 'node:worker_threads';
import { fillBlock } from './random-weights.js';

/** One block of one tensor, placed at `byteOffset` of a staging buffer. */
export interface FillItem {
  seed: number;
  block: number;
  elems: number;
  byteOffset: number;
  /** id of a table registered with addTable */
  table: number;
}

/**
 * Worker threads that fill staging buffers (SharedArrayBuffer) with random blocks, so that generating
 * the 31 GB lite checkpoint uses all cores while the main thread writes. The workers run fillBlock's
 * own source text (eval), so the bytes are the same as inline generation and the CLI bundle needs no
 * separate worker file.
 */
export class FillPool {
  private readonly workers: Worker[];
  private readonly idle: Worker[];
  private readonly waiting: (() => void)[] = [];
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly tables = new Map<Uint16Array, number>();

  constructor(count: number) {
    const source = `
      const { parentPort } = require('node:worker_threads');
      const fillBlock = ${fillBlock.toString()};
      const tables = new Map();
      parentPort.on('message', (m) => {
        if (m.type === 'table') { tables.set(m.id, m.table); return; }
        try {
          for (const it of m.items) fillBlock(new Uint16Array(m.buffer, it.byteOffset, it.elems), it.seed, it.block, tables.get(it.table));
          parentPort.postMessage({ id: m.id });
        } catch (err) {
          parentPort.postMessage({ id: m.id, error: String(err && err.stack || err) });
        }
      });`;
    this.workers = Array.from({ length: count }, () => {
      const w = new Worker(source, { eval: true });
      w.on('message', (msg: { id: number; error?: string }) => {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        this.release(w);
        if (msg.error) p?.reject(new Error(`synth-model worker: ${msg.error}`));
        else p?.resolve();
      });
      w.on('error', (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      });
      return w;
    });
    this.idle = [...this.workers];
  }

  tableId(table: Uint16Array): number {
    let id = this.tables.get(table);
    if (id === undefined) {
      id = this.tables.size;
      this.tables.set(table, id);
      for (const w of this.workers) w.postMessage({ type: 'table', id, table });
    }
    return id;
  }

  /** Fills `buffer` with the items on the next free worker. */
  async fill(buffer: SharedArrayBuffer, items: FillItem[]): Promise<void> {
    const worker = await this.acquire();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ type: 'fill', id, buffer, items });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private acquire(): Promise<Worker> {
    const w = this.idle.pop();
    if (w) return Promise.resolve(w);
    return new Promise((resolve) => this.waiting.push(() => resolve(this.idle.pop()!)));
  }

  private release(w: Worker): void {
    this.idle.push(w);
    this.waiting.shift()?.();
  }
}
