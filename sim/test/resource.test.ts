/** The discrete-event resource's waiting line: (priority, submission order), and promotion of a waiting job. */
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../src/des/event-queue.js';
import { Resource } from '../src/des/resource.js';

/** Runs the resource until idle; returns the job ids in the order they completed. */
function drain(q: EventQueue, r: Resource): number[] {
  const done: number[] = [];
  while (q.pop()) {
    done.push(q.a);
    r.finished(q.t);
  }
  return done;
}

describe('Resource', () => {
  const setup = () => {
    const q = new EventQueue();
    const r = new Resource('copy', 1, q, 0, 0);
    const running = r.submit(0, 1, 1);
    const a = r.submit(0, 1, 1);
    const b = r.submit(0, 1, 1);
    const c = r.submit(0, 1, 0);
    return { q, r, running, a, b, c };
  };

  it('serves waiting jobs by priority, then submission order', () => {
    const { q, r, running, a, b, c } = setup();
    expect(drain(q, r)).toEqual([running, c, a, b]);
  });

  it('promote moves a waiting job ahead, keeping submission order among equals', () => {
    const { q, r, running, a, b, c } = setup();
    expect(r.promote(b, 0)).toBe(true);
    expect(r.promote(running, 0)).toBe(false); // already started
    expect(r.promote(c, 0)).toBe(false); // already at that priority
    // b (submitted before c) now goes first; the backlog estimate counts it as priority-0 work.
    expect(r.estimateFinish(0, 0, 0)).toBeCloseTo(3, 12);
    expect(drain(q, r)).toEqual([running, b, c, a]);
  });
});
