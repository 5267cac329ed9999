import { UserError } from '../../../core/src/errors.js';
import type { NativeEngineHandle } from './native-binding.js';
import { checkPromptIds, resolveSampling, type Sampling } from './options.js';

export type SlotFinish = 'eos' | 'length';

/** One sequence joining a continuous batch. */
export interface SequenceOptions {
  /** token ids */
  prompt: number[];
  maxNewTokens: number;
  /** 'greedy' (default) or seeded sampling; the sequence's random stream depends on its seed only */
  sampling?: Sampling;
  /** stop at the end-of-sequence token (default true) */
  stopOnEos?: boolean;
  /** routing replay / recording: the trace sequence this one is (default: arrival order) */
  traceSequence?: number;
}

/** A token one slot produced in a step. */
export interface SlotToken {
  slot: number;
  token: number;
  /** 0 for the sequence's first generated token */
  index: number;
  finished: SlotFinish | null;
}

/** What the batch needs from its Engine: exclusive use of the native handle while a step runs. */
export interface BatchLease {
  handle: NativeEngineHandle;
  vocabSize: number;
  acquire(what: string): void;
  release(): void;
  /** the batch was closed: the engine may run generate()/score() again */
  ended(): void;
  /** a native error, rethrown with a JS stack */
  wrap(what: string, err: unknown): Error;
}

interface SlotState {
  running: boolean;
  generated: number;
}

const FINISH: Record<number, SlotFinish | null> = { 0: null, 1: 'eos', 2: 'length' };

/**
 * Continuous batching over the native engine (Engine::open_slots / add_sequence / remove_sequence):
 * `slots` KV-cache slots of `capacity` tokens; sequences join between steps (their prompt is prefilled
 * in the next step, beside the others' decode rows) and leave when removed. A finished sequence keeps
 * its slot until remove(). Made by Engine.openBatch; one step at a time.
 */
export class ContinuousBatch {
  private readonly state: (SlotState | null)[];
  private closed = false;
  private stepping = false;

  constructor(
    private readonly lease: BatchLease,
    readonly slots: number,
    readonly capacity: number,
  ) {
    this.state = Array.from({ length: slots }, () => null);
  }

  /** sequences that will produce a token in the next step */
  get running(): number {
    return this.state.filter((s) => s?.running).length;
  }

  get free(): number {
    return this.state.filter((s) => s === null).length;
  }

  /** Puts a sequence in a free slot and returns the slot. Errors name what is wrong. */
  add(o: SequenceOptions): number {
    this.assertUsable('add');
    if (!Array.isArray(o.prompt) || o.prompt.length === 0) throw new UserError('sequence prompt: must be a non-empty array of token ids');
    const [prompt] = checkPromptIds([o.prompt], this.lease.vocabSize);
    if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) throw new UserError(`sequence maxNewTokens: must be an integer >= 1, got ${String(o.maxNewTokens)}`);
    // The last generated token is never fed back: a slot holds prompt + maxNewTokens - 1 tokens.
    if (prompt.length + o.maxNewTokens - 1 > this.capacity) {
      throw new UserError(`sequence: prompt of ${prompt.length} tokens plus ${o.maxNewTokens} new tokens exceeds the slot capacity of ${this.capacity} tokens`);
    }
    if (o.stopOnEos !== undefined && typeof o.stopOnEos !== 'boolean') throw new UserError('sequence stopOnEos: must be a boolean');
    if (o.traceSequence !== undefined && (!Number.isInteger(o.traceSequence) || o.traceSequence < 0 || o.traceSequence > 0x7fffffff)) {
      throw new UserError(`sequence traceSequence: must be a non-negative integer, got ${String(o.traceSequence)}`);
    }
    if (this.free === 0) throw new UserError(`continuous batch: all ${this.slots} slots are in use`);
    const sampling = resolveSampling(o.sampling);
    let slot: number;
    try {
      slot = this.lease.handle.addSequence({ prompt, maxNewTokens: o.maxNewTokens, ...sampling, stopOnEos: o.stopOnEos ?? true, traceSequence: o.traceSequence });
    } catch (err) {
      throw this.lease.wrap('adding a sequence', err);
    }
    this.state[slot] = { running: true, generated: 0 };
    return slot;
  }

  /** Frees a slot (its sequence running or finished); the other slots are untouched. */
  remove(slot: number): void {
    this.assertUsable('remove');
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots || this.state[slot] === null) throw new UserError(`continuous batch: slot ${String(slot)} holds no sequence`);
    try {
      this.lease.handle.removeSequence(slot);
    } catch (err) {
      throw this.lease.wrap('removing a sequence', err);
    }
    this.state[slot] = null;
  }

  /** One forward over every running slot (prefills of new sequences included): the tokens it produced. */
  async step(): Promise<SlotToken[]> {
    this.assertUsable('step');
    if (this.running === 0) throw new UserError('continuous batch: no sequence is running (add one first)');
    this.lease.acquire('step');
    this.stepping = true;
    let result;
    try {
      result = await this.lease.handle.step();
    } catch (err) {
      throw this.lease.wrap('batch step', err);
    } finally {
      this.stepping = false;
      this.lease.release();
    }
    const out: SlotToken[] = [];
    for (let slot = 0; slot < this.slots; slot++) {
      const s = this.state[slot];
      const token = result.tokens[slot];
      if (!s || token < 0) continue;
      const finished = FINISH[result.finish[slot]] ?? null;
      out.push({ slot, token, index: s.generated++, finished });
      if (finished) s.running = false;
    }
    return out;
  }

  /** Ends continuous batching on this engine (the engine may generate() again). */
  close(): void {
    if (this.closed) return;
    if (this.stepping) throw new UserError('continuous batch: close it after the pending step settles');
    this.closed = true;
    this.lease.ended();
  }

  private assertUsable(what: string): void {
    if (this.closed) throw new UserError(`continuous batch ${what}: the batch is closed`);
    if (this.stepping) throw new UserError(`continuous batch ${what}: a step is in progress (add and remove between steps)`);
  }
}
