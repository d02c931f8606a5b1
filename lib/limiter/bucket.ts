import type Bottleneck from 'bottleneck';
import { fastLimiter, localReservoir, setHeartbeat } from '../internal/bottleneck';

/**
 * Limits are enforced ~2% under the provider's: its clock and ours differ by milliseconds, and
 * one 429 costs a whole Retry-After for everyone.
 */
export const SAFETY_MARGIN = 0.98;

/** A per-minute rate as a token bucket: refilled at rate/60 per second, holding `capacity`. */
export interface BucketPlan {
  perMinute: number;
  capacity: number;
}

/** Bottleneck settings for a bucket that refills gradually (never in fixed windows). */
export function refillSettings(plan: BucketPlan, reservoir: number): Bottleneck.ConstructorOptions & { heartbeatInterval: number } {
  const perMs = plan.perMinute / 60_000;
  // Refill in steps of about one unit (at most every 50 ms, at least every 250 ms). Bottleneck
  // adds on a heartbeat tick only once `increaseInterval` has passed; ticks come a hair under
  // the period by its clock, so the check uses a shorter interval and each tick adds one period's
  // worth (ticks never come early, so the rate never runs over).
  const period = Math.round(Math.min(250, Math.max(50, 1 / perMs)));
  return {
    reservoir,
    reservoirIncreaseAmount: perMs * period,
    reservoirIncreaseInterval: period - 10,
    reservoirIncreaseMaximum: plan.capacity,
    heartbeatInterval: period,
  };
}

/** The plan for a limit the user configured: one second's worth of burst, the 2% margin applied. */
export function configuredPlan(perMinute: number): BucketPlan {
  const rate = perMinute * SAFETY_MARGIN;
  return { perMinute: rate, capacity: Math.max(1, rate / 60) };
}

/**
 * One weighted limit (request count, tokens, input or output tokens) on a Bottleneck reservoir.
 * A call heavier than the bucket's burst goes when the bucket is full and leaves it in debt, so
 * over time it never exceeds the rate; the bucket counts what it let through, for adaptive sync.
 */
export class Bucket {
  readonly limiter: Bottleneck;
  plan: BucketPlan | undefined;
  /** Sum of weights let through since creation: how much went out after a given call. */
  dispatched = 0;
  /** Dispatch number of the newest call whose response headers synced this bucket. */
  syncedSeq = 0;
  private paused = false;

  constructor(
    readonly name: string,
    plan: BucketPlan | undefined,
    extra: Bottleneck.ConstructorOptions = {},
  ) {
    this.plan = plan;
    this.limiter = fastLimiter({ ...extra, ...(plan ? refillSettings(plan, plan.capacity) : { reservoir: null }) });
  }

  /** Waits until `weight` can go; resolves with the weight actually taken. */
  async take(weight: number): Promise<number> {
    const burst = this.plan?.capacity;
    const now = burst === undefined ? weight : Math.min(weight, burst);
    if (weight > 0) await this.limiter.schedule({ weight: now }, () => Promise.resolve());
    const debt = weight - now;
    if (debt > 0) await this.limiter.incrementReservoir(-debt);
    this.dispatched += weight;
    return weight;
  }

  /** Gives back weight that was taken but not used (or a call that never went); never above capacity. */
  refund(weight: number): void {
    if (weight === 0) return;
    const current = localReservoir(this.limiter);
    if (current === null) return;
    const room = this.plan ? this.plan.capacity - current : weight;
    const amount = weight > 0 ? Math.min(weight, room) : weight;
    if (amount !== 0) void this.limiter.incrementReservoir(amount);
    if (weight < 0) this.dispatched -= weight;
  }

  /** Replaces the plan (live config change or newly learned limits), keeping what is left in it. */
  replan(plan: BucketPlan | undefined, reservoir?: number): void {
    this.plan = plan;
    const current = localReservoir(this.limiter);
    const next = plan === undefined ? null : Math.min(plan.capacity, reservoir ?? current ?? plan.capacity);
    const settings = plan ? refillSettings(plan, next!) : { reservoir: null, reservoirIncreaseAmount: null, reservoirIncreaseInterval: null, reservoirIncreaseMaximum: null };
    if (this.paused && plan) Object.assign(settings, { reservoir: 0, reservoirIncreaseAmount: 0 });
    this.apply(settings);
  }

  /** Lowers what is left to `at most` (never raises it): the provider knows better. */
  lowerTo(atMost: number): void {
    const current = localReservoir(this.limiter);
    if (current !== null && atMost < current) void this.limiter.updateSettings({ reservoir: Math.max(0, atMost) });
  }

  /** Sets what is left (adaptive sync of a learned limit). */
  setRemaining(remaining: number): void {
    if (!this.plan) return;
    void this.limiter.updateSettings({ reservoir: Math.min(this.plan.capacity, remaining) });
  }

  /** Stops all dispatch (a provider 429): nothing left, no refill, until resume(). */
  pause(): void {
    this.paused = true;
    void this.limiter.updateSettings({ reservoir: 0, reservoirIncreaseAmount: 0 });
  }

  /** Resumes after a pause with `reservoir` units (one probe), refilling as planned. */
  resume(reservoir: number): void {
    this.paused = false;
    const settings = this.plan ? refillSettings(this.plan, Math.min(reservoir, this.plan.capacity)) : { reservoir };
    this.apply(settings);
  }

  private apply(settings: Bottleneck.ConstructorOptions & { heartbeatInterval?: number }): void {
    const { heartbeatInterval, ...rest } = settings;
    if (heartbeatInterval !== undefined) setHeartbeat(this.limiter, heartbeatInterval);
    void this.limiter.updateSettings(rest);
  }

  reservoir(): number | null {
    return localReservoir(this.limiter);
  }

  async close(): Promise<void> {
    await this.limiter.disconnect(false);
  }
}
