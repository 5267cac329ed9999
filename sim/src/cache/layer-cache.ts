/**
 * One MoE layer's expert cache: C slots, a policy, and the bookkeeping of hits, misses and evictions.
 * Slots are allocated once; `request` and `prefetch` allocate nothing. The step protocol:
 *   beginStep(step, R)   R = the step's request set at this layer (ascending ids, no repeats)
 *   request(e)           for each e of R in ascending order
 * A victim is always a cached expert not in R; when there is none, the miss bypasses.
 */
import { BeladyPolicy } from './belady.js';
import { FifoPolicy } from './fifo.js';
import { LfruPolicy, LFRU_DEFAULT_DECAY } from './lfru.js';
import { LfuPolicy } from './lfu.js';
import { LruPolicy } from './lru.js';
import { StaticPolicy } from './static.js';
import {
  NO_VICTIM,
  OUTCOME_BYPASS,
  OUTCOME_EVICT,
  OUTCOME_HIT,
  OUTCOME_INSERT,
  type CacheState,
  type EvictionPolicy,
  type PolicyName,
} from './types.js';

export interface LayerCacheOptions {
  /** belady and opt: next request step of the expert of each request index (see BeladyPolicy). */
  nextStep?: Int32Array;
  /** static: the pinned experts (at most `capacity`). */
  pinned?: readonly number[];
  /** lfru: decay per step. */
  lfruDecay?: number;
}

// Policy codes: the hot paths switch on them so that every policy call site sees one class (V8 inlines it)
// even when one process replays several policies.
const K_LRU = 0;
const K_LFU = 1;
const K_FIFO = 2;
const K_LFRU = 3;
const K_BELADY = 4;
const K_STATIC = 5;
const K_OPT = 6;
const KIND: Record<PolicyName, number> = { lru: K_LRU, lfu: K_LFU, fifo: K_FIFO, lfru: K_LFRU, belady: K_BELADY, opt: K_OPT, static: K_STATIC };

export class LayerCache {
  readonly capacity: number;
  readonly policy: EvictionPolicy;
  private readonly kind: number;
  private readonly state: CacheState;
  /** slot -> expert; the first `used` slots are filled. */
  private readonly slots: Int32Array;
  /** expert -> slot, -1 when not cached. */
  private readonly slotOf: Int32Array;
  private used = 0;
  /** expert -> stamp of the step whose request set holds it (a stamp avoids clearing a set each step). */
  private readonly protectedAt: Int32Array;
  private stamp = 0;
  private step = -1;
  private clock = 0;
  /** Victim of the last request or prefetch that evicted, else NO_VICTIM. */
  lastVictim = NO_VICTIM;

  constructor(readonly numExperts: number, capacity: number, policy: PolicyName, opts: LayerCacheOptions = {}) {
    // capacity 0 is allowed: nothing is ever cached, every request bypasses (naive on-demand loading).
    if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`cache capacity must be a non-negative integer, got ${capacity}`);
    this.capacity = capacity;
    this.state = {
      numExperts,
      lastAccess: new Float64Array(numExperts).fill(-1),
      insertedAt: new Float64Array(numExperts).fill(-1),
    };
    this.slots = new Int32Array(capacity).fill(-1);
    this.slotOf = new Int32Array(numExperts).fill(-1);
    this.protectedAt = new Int32Array(numExperts);
    this.policy = makePolicy(policy, this.state, numExperts, opts);
    this.kind = KIND[policy];
    if (policy === 'static') {
      const pinned = opts.pinned ?? [];
      if (pinned.length > capacity) throw new Error(`static: ${pinned.length} pinned experts exceed capacity ${capacity}`);
      for (const e of pinned) this.insert(e);
    } else if (opts.pinned) {
      throw new Error('pinned experts are for the static policy only');
    }
  }

  /** Starts a step: `requests` (ascending, unique) are the experts no eviction may pick during it. */
  beginStep(step: number, requests: ArrayLike<number>, from = 0, to = requests.length): void {
    if (step < this.step) throw new Error(`steps must not go backwards (${step} after ${this.step})`);
    this.step = step;
    this.stamp++;
    for (let i = from; i < to; i++) this.protectedAt[requests[i]] = this.stamp;
  }

  /** Adds experts to the protected set of the current step (prefetch targets being brought in). */
  protect(experts: ArrayLike<number>, from = 0, to = experts.length): void {
    for (let i = from; i < to; i++) this.protectedAt[experts[i]] = this.stamp;
  }

  has(expert: number): boolean {
    return this.slotOf[expert] >= 0;
  }

  get size(): number {
    return this.used;
  }

  /** Processes one request of the current step; returns an OUTCOME_* code (lastVictim set on evict). */
  request(expert: number, requestIndex: number): number {
    this.lastVictim = NO_VICTIM;
    switch (this.kind) {
      case K_LFU:
        (this.policy as LfuPolicy).requested(expert);
        break;
      case K_LFRU:
        (this.policy as LfruPolicy).requested(expert, this.step);
        break;
      case K_BELADY:
      case K_OPT:
        (this.policy as BeladyPolicy).requested(expert, this.step, requestIndex);
        break;
      default:
        break; // lru, fifo and static keep nothing per request
    }
    if (this.slotOf[expert] >= 0) {
      this.state.lastAccess[expert] = this.clock++;
      if (this.kind === K_LRU) (this.policy as LruPolicy).accessed(expert);
      return OUTCOME_HIT;
    }
    return this.admit(expert);
  }

  /**
   * Brings `expert` in ahead of its request (a prefetch). It is not a request (no count, no CRF), but the
   * insertion is an access and takes a slot through the same rule as a miss: a free slot, else the policy's
   * victim among cached experts not protected this step; none -> not admitted (OUTCOME_BYPASS).
   * Returns OUTCOME_HIT when the expert is already cached (nothing to do).
   */
  prefetch(expert: number): number {
    this.lastVictim = NO_VICTIM;
    if (this.slotOf[expert] >= 0) return OUTCOME_HIT;
    return this.admit(expert);
  }

  private admit(expert: number): number {
    if (this.used < this.capacity && this.policy.evicts) {
      this.insert(expert);
      return OUTCOME_INSERT;
    }
    if (!this.policy.evicts) return OUTCOME_BYPASS;
    const victim = this.pickVictim();
    if (victim < 0) return OUTCOME_BYPASS;
    // opt declines to admit an expert that is needed no sooner than the victim would be again.
    if (this.kind === K_OPT && !(this.policy as BeladyPolicy).admitsOver(expert, victim)) return OUTCOME_BYPASS;
    const slot = this.slotOf[victim];
    this.slotOf[victim] = -1;
    this.state.insertedAt[victim] = -1;
    if (this.kind === K_LRU) (this.policy as LruPolicy).evicted(victim);
    else if (this.kind === K_FIFO) (this.policy as FifoPolicy).evicted(victim);
    this.slots[slot] = expert;
    this.slotOf[expert] = slot;
    this.noteInsertion(expert);
    this.lastVictim = victim;
    return OUTCOME_EVICT;
  }

  /** The policy's victim among cached experts not protected this step, or -1 (one call site per policy, see KIND). */
  private pickVictim(): number {
    const { slots, protectedAt, stamp, used, step } = this;
    switch (this.kind) {
      case K_LRU:
        return (this.policy as LruPolicy).pickVictim(slots, used, protectedAt, stamp);
      case K_LFU:
        return (this.policy as LfuPolicy).pickVictim(slots, used, protectedAt, stamp);
      case K_FIFO:
        return (this.policy as FifoPolicy).pickVictim(slots, used, protectedAt, stamp);
      case K_LFRU:
        return (this.policy as LfruPolicy).pickVictim(slots, used, protectedAt, stamp, step);
      case K_BELADY:
      case K_OPT:
        return (this.policy as BeladyPolicy).pickVictim(slots, used, protectedAt, stamp);
      default:
        return -1;
    }
  }

  private insert(expert: number): void {
    const slot = this.used++;
    this.slots[slot] = expert;
    this.slotOf[expert] = slot;
    this.noteInsertion(expert);
  }

  private noteInsertion(expert: number): void {
    this.state.insertedAt[expert] = this.clock;
    this.state.lastAccess[expert] = this.clock++;
    if (this.kind === K_LRU) (this.policy as LruPolicy).inserted(expert);
    else if (this.kind === K_FIFO) (this.policy as FifoPolicy).inserted(expert);
  }

  /** Cached experts, ascending (for tests and logs; allocates). */
  contents(): number[] {
    return Array.from(this.slots.subarray(0, this.used)).sort((a, b) => a - b);
  }
}

function makePolicy(name: PolicyName, state: CacheState, numExperts: number, opts: LayerCacheOptions): EvictionPolicy {
  switch (name) {
    case 'lru':
      return new LruPolicy(state);
    case 'lfu':
      return new LfuPolicy(state);
    case 'fifo':
      return new FifoPolicy(state);
    case 'lfru':
      return new LfruPolicy(numExperts, state.lastAccess, opts.lfruDecay ?? LFRU_DEFAULT_DECAY);
    case 'belady':
    case 'opt':
      if (!opts.nextStep) throw new Error(`${name} needs the next-request table (nextStep)`);
      return new BeladyPolicy(numExperts, opts.nextStep, name);
    case 'static':
      return new StaticPolicy();
    default:
      throw new Error(`unknown policy '${String(name)}'`);
  }
}
