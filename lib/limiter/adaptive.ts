/**
 * Adaptive mode: how the request rate is set (configured, probing, learned from the provider's
 * headers, or unlimited), and how each response's rate-limit headers re-sync what the buckets
 * think is left. With nothing learned yet one request goes alone (a probe) until its headers
 * arrive, like TCP's slow start.
 */
import type { ResolvedConfig } from '../config/options';
import type { LimitWindow, RateLimitSnapshot } from '../providers/adapter';
import type { LearnedLimit } from '../status';
import type { SharedRates } from '../distributed/shared-rates';
import { BURST_JITTER_MS, Bucket, CONFIG_KEY, DIMENSIONS, NETWORK_JITTER_MS, SAFETY_MARGIN, configuredPlan, type BucketPlan, type Dimension, type TokenDimension } from './bucket';

/**
 * Far from the limits, how often the headers are read at least (see AdaptivePlan.quiet): a change
 * of limit, or another client of the same key draining it, is seen within this long.
 */
export const QUIET_SYNC_MS = 100;

/**
 * How long waiting calls give the probe to answer before one more goes (then two, four, … each
 * such period): a non-streaming probe answers only once its whole generation is done, which may
 * take minutes, and every other call would wait for it. The first answer of any of them ends it.
 */
export const PROBE_PATIENCE_MS = 1000;

export type RequestsMode = 'configured' | 'probing' | 'learned' | 'unlimited';

/** What the plan needs to know of a call to sync on its answer. */
export interface SyncedLease {
  readonly seq: number;
  readonly dispatchedTime: number;
  /** The request bucket's dispatch count when the call left (it weighed 1 there). */
  readonly mainDispatchedAt: number;
  /** The token buckets it took from: what it weighed there, and their dispatch counts when it left. */
  readonly taken: ReadonlyArray<readonly [Bucket, number]>;
  readonly takenDispatchedAt: readonly number[];
}

export interface AdaptiveDeps {
  main: Bucket;
  /** The limiter's token buckets; learning a token limit adds one. */
  tokenBuckets: Partial<Record<TokenDimension, Bucket>>;
  shared: SharedRates | undefined;
  /** The limiter's current config. */
  config: () => ResolvedConfig;
  paused: () => boolean;
}

export class AdaptivePlan {
  private requestsMode: RequestsMode = 'unlimited';
  private readonly learned: Partial<Record<Dimension, LimitWindow & { plan: BucketPlan }>> = {};
  private probeSeq = 0;
  /** Dispatched calls whose response headers have not come back yet, by dispatch number. */
  private readonly unanswered = new Set<number>();
  /** When a response's headers were last read (performance.now()), whether they held limits or not. */
  private readAt = -Infinity;
  /** While a probe is unanswered: lets more calls go, a growing number each PROBE_PATIENCE_MS. */
  private patience: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly deps: AdaptiveDeps) {}

  get mode(): RequestsMode {
    return this.requestsMode;
  }

  /** The plan learned for `dim`, while adaptive mode is on. */
  learnedPlan(dim: Dimension): BucketPlan | undefined {
    return this.deps.config().limits.adaptive ? this.learned[dim]?.plan : undefined;
  }

  /** Sets the request rate's mode from the config (live changes too). */
  configure(config: ResolvedConfig, previous: ResolvedConfig | undefined): void {
    const { main } = this.deps;
    const limits = config.limits;
    const rpm = limits.requestsPerMinute;
    if (rpm !== undefined) {
      this.requestsMode = 'configured';
      main.replan(configuredPlan(rpm), previous?.limits.requestsPerMinute === rpm ? undefined : configuredPlan(rpm).capacity);
    } else if (this.requestsMode === 'configured' || !previous) {
      this.requestsMode = limits.adaptive ? 'probing' : 'unlimited';
      if (this.requestsMode === 'probing') this.probe();
      else main.replan(undefined);
    }
    if (!limits.adaptive && (this.requestsMode === 'probing' || this.requestsMode === 'learned')) {
      this.requestsMode = 'unlimited';
      main.replan(undefined);
    }
  }

  /** Nothing learned yet: one request goes alone until its response's headers arrive. */
  private probe(): void {
    this.deps.main.replan(undefined);
    void this.deps.main.limiter.updateSettings({ reservoir: 1 });
  }

  /** A call left: it is unanswered until its headers come back (the first one may be the probe). */
  dispatched(seq: number): void {
    this.unanswered.add(seq);
    if (this.requestsMode === 'probing' && this.probeSeq === 0) {
      this.probeSeq = seq;
      this.waitForProbe();
    }
  }

  /** While the probe is unanswered and calls wait: one more after PROBE_PATIENCE_MS, then two, four, …. */
  private waitForProbe(): void {
    clearTimeout(this.patience);
    let more = 1;
    const tick = () => {
      this.patience = undefined;
      if (this.requestsMode !== 'probing' || this.deps.paused()) return;
      const main = this.deps.main;
      if (main.waiting) {
        main.allow(more);
        more *= 2;
      }
      this.patience = setTimeout(tick, PROBE_PATIENCE_MS);
      this.patience.unref();
    };
    this.patience = setTimeout(tick, PROBE_PATIENCE_MS);
    this.patience.unref();
  }

  /** Stops the probe's patience timer (guard.close()). */
  close(): void {
    clearTimeout(this.patience);
    this.patience = undefined;
  }

  /** A call ended without being answered (its lease settled). */
  forget(seq: number): void {
    this.unanswered.delete(seq);
  }

  /** A response arrived: its headers re-sync the buckets; a probing limiter learns or gives up on a request rate. */
  answered(lease: SyncedLease, snapshot: RateLimitSnapshot | undefined, status: number): void {
    this.readAt = performance.now();
    this.unanswered.delete(lease.seq);
    if (snapshot) this.sync(lease, snapshot);
    if (this.requestsMode === 'probing' && !snapshot?.requests && status !== 429) {
      // The provider sends no request limit (maybe token limits only): no request rate to follow.
      this.requestsMode = 'unlimited';
      this.deps.main.replan(undefined);
    }
  }

  /**
   * Whether a successful answer's headers may go unread: nothing is left to learn, they were read
   * less than QUIET_SYNC_MS ago, and every bucket holds at least half its burst. There a sync
   * changes nothing unless another client of the key drained it since (seen at the next read);
   * near a limit every answer syncs. A host that sends no limits is looked at as often, in case it
   * starts to. Reading and applying them was ~15 µs of what the guard added to a call over HTTP.
   */
  quiet(now: number): boolean {
    if (this.requestsMode === 'probing' || now - this.readAt >= QUIET_SYNC_MS || !this.deps.main.halfFull) return false;
    const tokenBuckets = this.deps.tokenBuckets;
    // Named, not a loop over TOKEN_DIMENSIONS: this runs on every answer.
    return (tokenBuckets.tokens?.halfFull ?? true) && (tokenBuckets.inputTokens?.halfFull ?? true) && (tokenBuckets.outputTokens?.halfFull ?? true);
  }

  /** A call that got no response (connection error, timeout): a failed probe lets the next one go. */
  failed(seq: number): void {
    this.unanswered.delete(seq);
    if (seq === this.probeSeq && this.requestsMode === 'probing') {
      this.probeSeq = 0;
      this.probe();
    }
  }

  /** After a 429 pause: one request first, its headers tell how much the provider has refilled. */
  resumed(): void {
    const { main } = this.deps;
    if (this.requestsMode === 'configured' || this.requestsMode === 'learned') return main.resume(1);
    this.requestsMode = this.deps.config().limits.adaptive ? 'probing' : 'unlimited';
    this.probeSeq = 0;
    main.resume(1);
    if (this.requestsMode === 'unlimited') main.replan(undefined);
  }

  private sync(lease: SyncedLease, snapshot: RateLimitSnapshot): void {
    const limits = this.deps.config().limits;
    for (const dim of DIMENSIONS) {
      const window = snapshot[dim];
      if (!window || window.limit <= 0) continue;
      const configured = limits[CONFIG_KEY[dim]] !== undefined;
      // At most one second of the advertised rate at once: providers enforce per-minute limits
      // over short intervals even when their bucket reports more.
      const perMinute = window.limit * SAFETY_MARGIN;
      const refillMs = window.resetMs ?? 0;
      // Less room for arrival jitter, as for a configured limit (BURST_JITTER_MS).
      const capacity = Math.max(1, Math.min(window.remaining + (window.limit / 60_000) * refillMs, window.limit / 60) * SAFETY_MARGIN - (window.limit / 60_000) * BURST_JITTER_MS);
      let bucket = dim === 'requests' ? this.deps.main : this.deps.tokenBuckets[dim];
      if (!configured) {
        const plan: BucketPlan = { perMinute, capacity };
        // A literal, not a spread of the window: spreading objects of the adapters' shapes took ~5 µs a response.
        this.learned[dim] = { limit: window.limit, remaining: window.remaining, resetMs: window.resetMs, plan };
        // Every process learns the same limit; the shared bucket enforces it for all of them.
        this.deps.shared?.share(dim, { perMinute, capacity: Math.max(1, (window.limit / 60) * SAFETY_MARGIN) });
        if (!bucket) bucket = this.deps.tokenBuckets[dim as TokenDimension] = new Bucket(dim, plan, {});
        if (dim === 'requests' && this.requestsMode !== 'learned') {
          this.requestsMode = 'learned';
          bucket.replan(plan, 0);
        } else if (!bucket.plan || Math.abs(bucket.plan.perMinute - perMinute) > perMinute * 0.01 || Math.abs(bucket.plan.capacity - capacity) > capacity * 0.2) {
          bucket.replan(plan);
        }
      }
      if (!bucket || lease.seq <= bucket.syncedSeq || this.deps.paused()) continue;
      bucket.syncedSeq = lease.seq;
      // Not yet in the provider's count: what went out after this call.
      const index = lease.taken.findIndex(([b]) => b === bucket);
      const dispatchedAt = bucket === this.deps.main ? lease.mainDispatchedAt : index >= 0 ? lease.takenDispatchedAt[index]! : bucket.dispatched;
      const weight = bucket === this.deps.main ? 1 : index >= 0 ? lease.taken[index]![1] : 0;
      const after = bucket.dispatched - dispatchedAt;
      const left = window.remaining - after;
      // Calls that left just before this one may reach the provider after it (network jitter):
      // its count then misses them, so it may lower our estimate but not raise it.
      const justBefore = bucket.dispatchedSince(lease.dispatchedTime - NETWORK_JITTER_MS) - weight - after;
      // A call sent before this one and not answered yet may not have reached the provider
      // (a busy process sends late): its count may miss it, so it may lower, not raise.
      let olderInFlight = false;
      for (const s of this.unanswered) if (s < lease.seq) olderInFlight = true;
      // A configured limit follows what is left too (its plan still caps it): after a burst slow
      // to reach the provider, its bucket holds more than ours would have refilled.
      bucket.syncRemaining(left, performance.now() - lease.dispatchedTime, justBefore <= 0 && !olderInFlight);
    }
  }

  /** How long until the exhausted limits of a 429's headers are full again. */
  static resetOfExhausted(snapshot: RateLimitSnapshot | undefined): number | undefined {
    if (!snapshot) return undefined;
    const resets = Object.values(snapshot)
      .filter((w): w is LimitWindow => w !== undefined && w.remaining <= 0 && w.resetMs !== undefined)
      .map((w) => w.resetMs!);
    return resets.length ? Math.max(...resets) : undefined;
  }

  status(): Partial<Record<Dimension, LearnedLimit>> | undefined {
    const learned: Partial<Record<Dimension, LearnedLimit>> = {};
    for (const dim of DIMENSIONS) {
      const l = this.learned[dim];
      if (l) learned[dim] = { limitPerMinute: l.limit, remaining: l.remaining, resetMs: l.resetMs };
    }
    return Object.keys(learned).length ? learned : undefined;
  }
}
