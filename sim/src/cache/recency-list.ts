/**
 * A doubly linked list of cached experts in access (or insertion) order, oldest first, over fixed arrays.
 * LRU and FIFO find their victim by walking from the oldest end past the protected experts (at most the
 * step's request set), instead of scanning every slot: same victim as the clock comparison, fewer steps.
 */
export class RecencyList {
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;

  constructor(numExperts: number) {
    this.prev = new Int32Array(numExperts).fill(-1);
    this.next = new Int32Array(numExperts).fill(-1);
  }

  /** Appends e as the newest (e must not be in the list). */
  append(e: number): void {
    this.prev[e] = this.tail;
    this.next[e] = -1;
    if (this.tail >= 0) this.next[this.tail] = e;
    else this.head = e;
    this.tail = e;
  }

  remove(e: number): void {
    const p = this.prev[e];
    const n = this.next[e];
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
    this.prev[e] = -1;
    this.next[e] = -1;
  }

  /** Makes e the newest (e must be in the list). */
  moveToNewest(e: number): void {
    if (this.tail === e) return;
    this.remove(e);
    this.append(e);
  }

  /** The oldest expert whose protectedAt is not `stamp`, or -1. */
  oldestUnprotected(protectedAt: Int32Array, stamp: number): number {
    let e = this.head;
    while (e >= 0 && protectedAt[e] === stamp) e = this.next[e];
    return e;
  }
}
