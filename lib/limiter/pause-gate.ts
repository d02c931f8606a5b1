/**
 * The pause after a provider 429: all dispatch stops until its Retry-After (one 429 must not
 * become N retries at once), shared with the other processes of the guard name in Distributed
 * mode. Calls that would go meanwhile wait at the gate.
 */
export interface PauseGateDeps {
  /** Stops the buckets (nothing left, no refill). */
  onPause: () => void;
  /** Lets the buckets go again after `pausedMs`. */
  onResume: (pausedMs: number) => void;
  /** Tells the other processes (Distributed mode). */
  publish?: (untilMs: number) => void;
  /** Reports a pause (the `rate-limited` event). */
  onPaused?: (ms: number, fromPeer: boolean) => void;
}

export class PauseGate {
  private until = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly deps: PauseGateDeps) {}

  /** Whether dispatch is paused now. */
  get paused(): boolean {
    return this.until > Date.now();
  }

  /** Milliseconds the pause has left (0 when not paused). */
  get remainingMs(): number {
    return Math.max(0, this.until - Date.now());
  }

  /** When the pause ends (epoch ms), or 0. */
  get pausedUntil(): number {
    return this.until;
  }

  /** Stops all dispatch for `ms`; a pause that ends sooner than the current one changes nothing. */
  pause(ms: number, fromPeer = false): void {
    const until = Date.now() + ms;
    // A zero pause still runs: its resume lets a probe that met a 429 be retried.
    if (until <= this.until || (fromPeer && ms <= 0)) return;
    if (!fromPeer) this.deps.publish?.(until);
    this.until = until;
    this.deps.onPause();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.resume(ms), ms);
    this.timer.unref();
    this.deps.onPaused?.(ms, fromPeer);
  }

  private resume(pausedMs: number): void {
    if (this.closed) return;
    this.until = 0;
    this.deps.onResume(pausedMs);
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** Resolves when the pause is over (at once when there is none). */
  async passed(abandoned: () => boolean = () => false): Promise<void> {
    while (this.paused && !abandoned() && !this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
