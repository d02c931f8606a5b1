/**
 * Calls that a hard budget refused only because of what calls in flight have reserved wait here,
 * first come first served per budget key, for those reservations to settle (`cost.budgetWaitMs`).
 * A queue's head is woken each time a call of this process settles or releases, and on a short
 * poll while anyone waits (settles of other processes, in Redis, are seen that way: no extra
 * Redis command on any call's path, and waits are rare). The guarantee does not move: every
 * attempt is a full reservation against the ledger.
 */

interface Waiter {
  /** Resolves the waiter's current `turn()` (true: try again now; false: its deadline passed). */
  resolve: ((go: boolean) => void) | undefined;
  /** A wake came while the head was busy trying: its next turn starts at once. */
  woken: boolean;
}

export class BudgetQueue {
  private readonly queues = new Map<string, Waiter[]>();
  private poll: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(private readonly pollMs: number) {}

  /** Whether calls wait on any of these budget keys (a new call then queues behind them). */
  busy(lines: readonly { key: string }[]): string | undefined {
    if (this.queues.size === 0) return undefined;
    for (const { key } of lines) if (this.queues.get(key)?.length) return key;
    return undefined;
  }

  /**
   * Joins the queue of budget `key` and waits for this call's turn: the first turn comes at once
   * when it is first in line; later ones when room may have appeared. Returns a ticket whose
   * `turn()` resolves false when `deadline` passed, and rejects when `signal` aborts.
   */
  enter(key: string): { turn(deadline: number, signal: AbortSignal | undefined): Promise<boolean>; leave(): void } {
    let queue = this.queues.get(key);
    if (!queue) this.queues.set(key, (queue = []));
    const waiter: Waiter = { resolve: undefined, woken: queue.length === 0 };
    queue.push(waiter);
    this.startPolling();
    let left = false;
    return {
      turn: (deadline, signal) => {
        if (left || this.closed) return Promise.resolve(false);
        if (queue[0] === waiter && waiter.woken) {
          waiter.woken = false;
          return Promise.resolve(true);
        }
        return new Promise<boolean>((resolve, reject) => {
          const ms = deadline - Date.now();
          if (ms <= 0) return resolve(false);
          const finish = (go: boolean) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            waiter.resolve = undefined;
            resolve(go);
          };
          const onAbort = () => {
            finish(false);
            reject(signal!.reason);
          };
          const timer = setTimeout(() => finish(false), ms);
          timer.unref();
          if (signal?.aborted) return onAbort();
          signal?.addEventListener('abort', onAbort, { once: true });
          waiter.resolve = finish;
        });
      },
      leave: () => {
        if (left) return;
        left = true;
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        if (queue.length === 0) this.queues.delete(key);
        // The next in line may fit in what this one did not take.
        else if (i === 0) this.wakeHead(queue);
        this.stopPollingIfIdle();
      },
    };
  }

  /** Room may have appeared (a settle, a release, a poll tick): each queue's first call tries again. */
  wake(): void {
    for (const queue of this.queues.values()) this.wakeHead(queue);
  }

  private wakeHead(queue: Waiter[]): void {
    const head = queue[0];
    if (!head) return;
    if (head.resolve) head.resolve(true);
    else head.woken = true;
  }

  private startPolling(): void {
    // Ref'd on purpose while a call waits, as the limiter's queue is: the caller awaits it.
    this.poll ??= setInterval(() => this.wake(), this.pollMs);
  }

  private stopPollingIfIdle(): void {
    if (this.queues.size === 0 && this.poll) {
      clearInterval(this.poll);
      this.poll = undefined;
    }
  }

  /** Ends every wait (guard.close()): each waiting call gets its refusal. */
  close(): void {
    this.closed = true;
    for (const queue of this.queues.values()) for (const waiter of queue) waiter.resolve?.(false);
    this.queues.clear();
    this.stopPollingIfIdle();
  }
}
