/**
 * The order in which waiting calls get the guard's capacity (its main slot and token buckets):
 * higher priority first; within a priority, round-robin among the keys of the fair-share scope
 * kind (tenants, by default) that have calls waiting, so one key that floods the queue cannot
 * starve the others; within a key, arrival order. One call is served at a time: it waits for its
 * slot inside the limiter while the rest wait here, in order.
 */
export type Priority = 'high' | 'normal' | 'low';
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

interface Waiter {
  serve: () => Promise<void>;
  done: (error?: unknown) => void;
  left: boolean;
}

export class FairQueue {
  /** Per priority (high first): key → its waiters in arrival order; Map order is the round-robin. */
  private readonly classes: Array<Map<string, Waiter[]>> = PRIORITIES.map(() => new Map());
  private waiting = 0;
  private serving = false;

  /** Calls waiting for their turn (not counting the one being served). */
  get size(): number {
    return this.waiting;
  }

  /** Whether a call could go now without passing anyone. */
  get idle(): boolean {
    return this.waiting === 0 && !this.serving;
  }

  /**
   * Waits for this call's turn, then runs `serve` (taking the slot) and resolves with it. `leave()`
   * takes a call that has not been served yet out of the queue.
   */
  turn(key: string, priority: Priority, serve: () => Promise<void>): { done: Promise<void>; leave(): void } {
    let waiter!: Waiter;
    const done = new Promise<void>((resolve, reject) => {
      waiter = { serve, done: (error) => (error === undefined ? resolve() : reject(error)), left: false };
    });
    const cls = this.classes[PRIORITIES.indexOf(priority)]!;
    const list = cls.get(key);
    if (list) list.push(waiter);
    else cls.set(key, [waiter]);
    this.waiting++;
    void this.pump();
    return {
      done,
      leave: () => {
        if (waiter.left) return;
        waiter.left = true;
        const at = cls.get(key)?.indexOf(waiter) ?? -1;
        if (at < 0) return; // being served, or served already
        cls.get(key)!.splice(at, 1);
        if (cls.get(key)!.length === 0) cls.delete(key);
        this.waiting--;
      },
    };
  }

  /** The next call: the highest priority present, the key whose turn it is, its oldest call. */
  private next(): Waiter | undefined {
    for (const cls of this.classes) {
      const first = cls.entries().next();
      if (first.done) continue;
      const [key, list] = first.value;
      const waiter = list.shift()!;
      // Its key goes to the back of the round if it has more waiting.
      cls.delete(key);
      if (list.length) cls.set(key, list);
      this.waiting--;
      return waiter;
    }
    return undefined;
  }

  private async pump(): Promise<void> {
    if (this.serving) return;
    this.serving = true;
    try {
      for (let waiter = this.next(); waiter; waiter = this.next()) {
        if (waiter.left) continue;
        try {
          await waiter.serve();
          waiter.done();
        } catch (error) {
          waiter.done(error ?? new Error('served with an error'));
        }
      }
    } finally {
      this.serving = false;
    }
  }
}
