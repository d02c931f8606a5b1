import type Bottleneck from 'bottleneck';
import { adjustReservoir, fastLimiter, freeNow, jobsWaiting, localReservoir, refillFromNow, setHeartbeat, setLocalSettings, takeNow } from '../internal/bottleneck';

/** What a limit counts: requests, or tokens (input + output, input, output). */
export type Dimension = 'requests' | 'tokens' | 'inputTokens' | 'outputTokens';
export type TokenDimension = Exclude<Dimension, 'requests'>;
export const TOKEN_DIMENSIONS: readonly TokenDimension[] = ['tokens', 'inputTokens', 'outputTokens'];
export const DIMENSIONS: readonly Dimension[] = ['requests', ...TOKEN_DIMENSIONS];
/** The `limits` setting of each dimension. */
export const CONFIG_KEY: Record<Dimension, 'requestsPerMinute' | 'tokensPerMinute' | 'inputTokensPerMinute' | 'outputTokensPerMinute'> = {
  requests: 'requestsPerMinute',
  tokens: 'tokensPerMinute',
  inputTokens: 'inputTokensPerMinute',
  outputTokens: 'outputTokensPerMinute',
};

/**
 * Limits are enforced ~2% under the provider's: its clock and ours differ by milliseconds, and
 * one 429 costs a whole Retry-After for everyone.
 */
export const SAFETY_MARGIN = 0.98;

/**
 * How far apart two calls may leave here and still reach the provider in the other order, or
 * one call's trip may outlast another's (a new connection, a GC pause).
 */
export const NETWORK_JITTER_MS = 25;

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

/**
 * How much arrival jitter a configured limit's burst leaves room for: calls that leave on time
 * can reach the provider bunched (a late timer, a GC pause, a busy host delaying one and not the
 * next), and the provider's bucket holds only its burst. 50 ms of the rate is kept back from it.
 */
export const BURST_JITTER_MS = 50;

/** Dispatches a bucket remembers: far more than go out within NETWORK_JITTER_MS at any real rate. */
const HISTORY = 1024;

/** The plan for a limit the user configured: one second's worth of burst less the jitter room, the 2% margin applied. */
export function configuredPlan(perMinute: number): BucketPlan {
  const rate = perMinute * SAFETY_MARGIN;
  return { perMinute: rate, capacity: Math.max(1, rate / 60 - (perMinute / 60_000) * BURST_JITTER_MS) };
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
  /**
   * Recent dispatches, to tell what went out around a given moment: when (performance clock) and
   * the running total before each, in a ring of HISTORY entries (written on every call: no
   * allocation, no shifting).
   */
  private readonly historyAt = new Float64Array(HISTORY);
  private readonly historyBefore = new Float64Array(HISTORY);
  /** Dispatches recorded since creation; the newest is at (historyEnd - 1) % HISTORY. */
  private historyEnd = 0;
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

  /** Waits until `weight` can go (at once when nothing waits and there is room). */
  async take(weight: number): Promise<void> {
    const now = this.burstPart(weight);
    if (weight > 0) {
      // A reservoir-only limiter: the taken weight is not held, so it is freed at once.
      if (takeNow(this.limiter, now)) freeNow(this.limiter, now);
      else await this.limiter.schedule({ weight: now }, () => Promise.resolve());
    }
    this.afterTake(weight, now);
  }

  /** Takes `weight` at once if nothing waits and there is room (with debt as in take()). */
  takeNow(weight: number): boolean {
    const now = this.burstPart(weight);
    if (!takeNow(this.limiter, now)) return false;
    freeNow(this.limiter, now);
    this.afterTake(weight, now);
    return true;
  }

  /**
   * Whether `weight` goes at once on the uncontended path (see TrafficLimiter's takeLean): nothing
   * waits, the bucket holds all of it (no debt), and it is not full (a take from a full bucket
   * starts a burst, whose refill the limiter holds).
   */
  fitsNow(weight: number): boolean {
    const reservoir = localReservoir(this.limiter);
    const plan = this.plan;
    return plan !== undefined && reservoir !== null && reservoir >= weight && reservoir < plan.capacity - 1e-9 && !jobsWaiting(this.limiter);
  }

  /** Takes `weight` that fitsNow() said fits, sent at `now` (performance clock). */
  takeFitted(weight: number, now: number): void {
    adjustReservoir(this.limiter, -weight);
    this.countDispatch(weight, now);
  }

  /** What must be in the bucket for `weight` to go: all of it, or a full bucket for a heavier call. */
  private burstPart(weight: number): number {
    const burst = this.plan?.capacity;
    return burst === undefined ? weight : Math.min(weight, burst);
  }

  /**
   * The part of a heavy call beyond the burst is left as debt. Such a call also needed the
   * provider's bucket brim-full, where 2% of margin is only a few ms after a refund: the debt
   * also covers a network jitter's worth of refill, so the next call cannot beat the provider's.
   */
  private afterTake(weight: number, now: number): void {
    const plan = this.plan;
    const debt = weight - now + (plan && weight >= plan.capacity ? (plan.perMinute / 60_000) * NETWORK_JITTER_MS : 0);
    if (debt > 0) adjustReservoir(this.limiter, -debt);
    this.countDispatch(weight);
  }

  /** Records weight let through at `now` (performance clock). */
  countDispatch(weight: number, now = performance.now()): void {
    const i = this.historyEnd++ % HISTORY;
    this.historyAt[i] = now;
    this.historyBefore[i] = this.dispatched;
    this.dispatched += weight;
  }

  /** Weight let through since `time` (performance clock), as far as the history reaches. */
  dispatchedSince(time: number): number {
    const end = this.historyEnd;
    // Binary search over the entries still in the ring, oldest first: the first at or after `time`.
    let lo = Math.max(0, end - HISTORY);
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.historyAt[mid % HISTORY]! < time) lo = mid + 1;
      else hi = mid;
    }
    return lo === end ? 0 : this.dispatched - this.historyBefore[lo % HISTORY]!;
  }

  /** Whether calls wait in this bucket's limiter. */
  get waiting(): boolean {
    return jobsWaiting(this.limiter);
  }

  /** Lets `units` more go now, beyond any plan (a probe that is slow to answer: see AdaptivePlan). */
  allow(units: number): void {
    adjustReservoir(this.limiter, units);
  }

  /** Gives back weight that was taken but not used (or a call that never went); never above capacity. */
  refund(weight: number): void {
    if (weight === 0) return;
    const current = localReservoir(this.limiter);
    if (current === null) return;
    const room = this.plan ? this.plan.capacity - current : weight;
    adjustReservoir(this.limiter, weight > 0 ? Math.min(weight, room) : weight);
    if (weight < 0) this.dispatched -= weight;
  }

  /** Replaces the plan (live config change or newly learned limits), keeping what is left in it. */
  replan(plan: BucketPlan | undefined, reservoir?: number): void {
    this.plan = plan;
    const current = localReservoir(this.limiter);
    const next = plan === undefined ? null : Math.min(plan.capacity, reservoir ?? current ?? plan.capacity);
    const settings = plan ? refillSettings(plan, next!) : { reservoir: null, reservoirIncreaseAmount: null, reservoirIncreaseInterval: null, reservoirIncreaseMaximum: null };
    if (this.paused && plan) Object.assign(settings, { reservoir: 0, reservoirIncreaseAmount: 0 });
    else if (this.held && plan) Object.assign(settings, { reservoirIncreaseAmount: 0 });
    this.apply(settings);
  }

  /**
   * Adaptive sync of a learned limit to what the provider says is left: `left` is its count when
   * the call reached it, less what went out since; it has refilled since, for at most `sinceMs`
   * (since the call left here: a long generation answers seconds after it was counted). Lowered
   * only when ours is above even that refilled count; raised only to a unit short of the count
   * itself. Raising all the way would spend the margin the 2% slower refill builds at the
   * provider, and the next few ms of network jitter would meet an empty bucket.
   */
  syncRemaining(left: number, sinceMs: number, mayRaise: boolean): void {
    if (!this.plan || this.paused) return;
    const current = localReservoir(this.limiter);
    if (current === null) return;
    const headroom = Math.max(1, this.plan.capacity * 0.05);
    const leftNow = Math.min(this.plan.capacity, left + (this.plan.perMinute / 60_000) * Math.max(0, sinceMs));
    const next = leftNow < current ? leftNow : mayRaise && left - headroom > current ? Math.min(this.plan.capacity, left - headroom) : undefined;
    if (next === undefined) return;
    this.set({ reservoir: next });
    // The provider's count includes its refill so far: ours restarts from here.
    refillFromNow(this.limiter);
  }

  /** Stops all dispatch (a provider 429): nothing left, no refill, until resume(). */
  pause(): void {
    this.paused = true;
    this.set({ reservoir: 0, reservoirIncreaseAmount: 0 });
  }

  /** Whether the bucket holds at least half its burst (or has no plan): far from its limit. */
  get halfFull(): boolean {
    const current = localReservoir(this.limiter);
    return this.plan === undefined || current === null || current >= this.plan.capacity / 2;
  }

  /** Whether the bucket holds (about) its whole burst: it has been idle. */
  get full(): boolean {
    const current = localReservoir(this.limiter);
    return this.plan !== undefined && current !== null && current >= this.plan.capacity - 1e-9;
  }

  private held = false;

  /**
   * Stops the refill, keeping what is left (see TrafficLimiter's start-up hold): a refill may not
   * run ahead of the provider's, whose bucket starts refilling only when the burst reaches it.
   */
  holdRefill(): void {
    if (!this.plan || this.paused || this.held) return;
    this.held = true;
    this.set({ reservoirIncreaseAmount: 0 });
  }

  /** Refills as planned again (a no-op while paused: resume() restores the refill then). */
  releaseRefill(): void {
    if (!this.held) return;
    this.held = false;
    if (this.paused || !this.plan) return;
    this.set({ reservoirIncreaseAmount: refillSettings(this.plan, 0).reservoirIncreaseAmount! });
  }

  /** Applies at once on a local limiter; through updateSettings() otherwise. */
  private set(settings: { reservoir?: number; reservoirIncreaseAmount?: number }): void {
    if (!setLocalSettings(this.limiter, settings)) void this.limiter.updateSettings(settings);
  }

  /** Resumes after a pause with `reservoir` units (one probe), refilling as planned. */
  resume(reservoir: number): void {
    this.paused = false;
    this.held = false;
    const settings = this.plan ? refillSettings(this.plan, Math.min(reservoir, this.plan.capacity)) : { reservoir };
    this.apply(settings);
  }

  private apply(settings: Bottleneck.ConstructorOptions & { heartbeatInterval?: number }): void {
    const { heartbeatInterval, ...rest } = settings;
    if (heartbeatInterval !== undefined) setHeartbeat(this.limiter, heartbeatInterval);
    // At once on a local limiter, so a later synchronous change is never overwritten by this one.
    if (!setLocalSettings(this.limiter, rest as Parameters<typeof setLocalSettings>[1])) void this.limiter.updateSettings(rest);
    else void this.limiter.updateSettings({});
  }

  async close(): Promise<void> {
    await this.limiter.disconnect(false);
  }
}
