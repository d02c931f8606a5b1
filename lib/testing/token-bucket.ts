/**
 * A continuously refilled token bucket, the way providers enforce per-minute limits over short
 * intervals: `limit` per minute, refilled at limit/60 per second, holding `burstSeconds` of it.
 */
export class TokenBucket {
  readonly capacity: number;
  private readonly perMs: number;
  private level: number;
  private updatedAt: number;

  constructor(
    readonly limitPerMinute: number,
    burstSeconds: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.perMs = limitPerMinute / 60_000;
    this.capacity = Math.max(1, (limitPerMinute / 60) * burstSeconds);
    this.level = this.capacity;
    this.updatedAt = this.now();
  }

  private refill(): void {
    const t = this.now();
    this.level = Math.min(this.capacity, this.level + (t - this.updatedAt) * this.perMs);
    this.updatedAt = t;
  }

  /** Milliseconds until `amount` is available (0 = now). A full bucket lets any single amount through. */
  waitFor(amount: number): number {
    this.refill();
    if (this.level >= amount || this.level >= this.capacity) return 0;
    return (Math.min(amount, this.capacity) - this.level) / this.perMs;
  }

  take(amount: number): void {
    this.refill();
    this.level -= amount;
  }

  refund(amount: number): void {
    this.refill();
    this.level = Math.min(this.capacity, this.level + amount);
  }

  remaining(): number {
    this.refill();
    return Math.max(0, Math.floor(this.level));
  }

  /** Milliseconds until the bucket is full again. */
  msUntilFull(): number {
    this.refill();
    return Math.max(0, (this.capacity - this.level) / this.perMs);
  }
}
