// Over 300 lines on purpose: acquire() is one ordered sequence of waits (shared rates, the pause,
// scope slots, the main slot, token buckets) with one abandon path, and reads best in one place.
import type { ResolvedConfig, ResolvedTier } from '../config/options';
import { RateLimitExceededError, SharedStateUnavailableError } from '../errors';
import type { GuardEmitter } from '../events';
import type { ProviderAdapter, RateLimitSnapshot } from '../providers/adapter';
import type { GuardScope } from '../scope-kinds';
import { BURST_JITTER_MS, Bucket, CONFIG_KEY, DIMENSIONS, TOKEN_DIMENSIONS, configuredPlan, type BucketPlan, type Dimension, type TokenDimension } from './bucket';
import { ScopeLimiters, type ScopeLimiter } from './scope-limiters';
import { holdSlot, takeSlotNow, type Grant } from './slots';
import { AdaptivePlan, type SyncedLease } from './adaptive';
import type { LearnedLimit } from '../status';
import { PauseGate } from './pause-gate';
import { FairQueue } from './fair-queue';
import type Bottleneck from 'bottleneck';
import type { Redis } from 'ioredis';
import { endClients } from '../internal/end-client';
import { SharedRates, type SharedTaken } from '../distributed/shared-rates';
import type { SharedStore } from '../distributed/shared-store';
import type { ScopeRate } from '../distributed/shared-scope-rates';
import { abortReason, isAborted, offAbort, onAbort } from '../internal/signals';

/** What a call weighs in tokens: its input estimate, and the output reserved for it. */
export interface CallWeights {
  input: number;
  output: number;
}

/** A call's hold on the limiter, from dispatch until its response is done. */
export interface Lease {
  readonly seq: number;
  readonly waitedMs: number;
  /** Frees the concurrency slot (idempotent). */
  releaseSlot(): void;
  /**
   * Ends the lease: frees every slot and trues up the token buckets to what the provider counted
   * (the output reserved against what was generated; the input estimate against the reported input).
   */
  settle(actualOutputTokens?: number, actualInputTokens?: number): void;
}

export interface LimiterDeps {
  /** The config at creation; later ones come through reconfigure(). */
  config: ResolvedConfig;
  emitter: GuardEmitter;
  provider: string;
  /** Distributed mode: rates shared through Redis (concurrency stays per process). */
  shared?: { store: SharedStore; connection: Bottleneck.IORedisConnection };
}

type LeaseState = Lease & SyncedLease;

/**
 * Longest a burst from idle buckets holds their refill, waiting for its first answer. The burst
 * reaches the provider later than it left here (its connections open first: ~130 ms measured for
 * 40 at once) and the provider's bucket starts refilling only then; refilling ours from the
 * moment they left would run ahead of it, and the calls after the burst would meet a 429.
 */
const START_HOLD_MAX_MS = 250;
/** No token bucket taken: one shared empty list instead of one per call. */
const NONE: readonly number[] = [];
const NO_SCOPE_RATES: readonly ScopeRate[] = [];
const NO_SHARED: Readonly<SharedTaken> = [];
/** No token bucket taken from (never written: a lean take with buckets makes its own list). */
const NO_TAKEN: Array<[Bucket, number]> = [];

/**
 * The traffic limiter of one guard. A call passes, in order: the shared rates (Distributed mode),
 * the pause gate (a provider 429), its per-scope slots, the main slot (concurrency and the
 * request rate, one Bottleneck limiter) and the token buckets; then it holds its slots until its
 * response is done. The adaptive plan learns the provider's limits from its headers.
 */
export class TrafficLimiter {
  private config: ResolvedConfig;
  private readonly main: Bucket;
  private readonly tokenBuckets: Partial<Record<TokenDimension, Bucket>> = {};
  private readonly scopes: ScopeLimiters;
  /** Per-scope limiters of tiers that set their own (`tiers.<name>.perScope`), by tier. */
  private tierScopes = new Map<string, ScopeLimiters>();
  private readonly gate: PauseGate;
  private readonly adaptive: AdaptivePlan;
  /** The order waiting calls get the main slot and token buckets in: priority, then fair share. */
  private readonly fair = new FairQueue();
  /**
   * The last pause cut short (performance clock): when it began, and when the provider's would
   * have ended. Its start, not its computed end: a pause timer may fire early by that clock (it
   * counts from the event loop's cached time, stale by a busy turn's length).
   */
  private shortPause = { startedAt: Infinity, askedUntil: -Infinity };
  /** Distributed mode: the rates every process of this guard name shares. */
  private readonly shared: SharedRates | undefined;
  private seq = 0;
  private inFlight = 0;
  private waiting = 0;
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  /** A burst from idle buckets: their refill waits for its first answer (see START_HOLD_MAX_MS). */
  private hold: { seq: number; timer: ReturnType<typeof setTimeout> } | undefined;

  constructor(private readonly deps: LimiterDeps) {
    const config = (this.config = deps.config);
    this.main = new Bucket('requests', undefined, { maxConcurrent: config.limits.maxConcurrent });
    this.scopes = new ScopeLimiters(config.limits.perScope);
    this.shared = deps.shared && new SharedRates(deps.shared.store, deps.shared.connection);
    this.gate = new PauseGate({
      onPause: () => {
        this.main.pause();
        for (const bucket of Object.values(this.tokenBuckets)) bucket.pause();
      },
      onResume: (pausedMs) => {
        this.adaptive.resumed();
        for (const bucket of Object.values(this.tokenBuckets)) {
          const plan = bucket.plan;
          bucket.resume(plan ? Math.max(1, (plan.perMinute / 60_000) * pausedMs) : 0);
        }
      },
      ...(deps.shared ? { publish: (until: number) => void deps.shared!.store.publishPause(until) } : {}),
      onPaused: (ms, fromPeer) => {
        if (this.deps.emitter.has('rate-limited')) {
          this.deps.emitter.emit('rate-limited', { source: 'provider', provider: this.deps.provider, waitMs: ms, reason: fromPeer ? 'provider 429 seen by another process' : 'provider 429' });
        }
      },
    });
    this.adaptive = new AdaptivePlan({ main: this.main, tokenBuckets: this.tokenBuckets, shared: this.shared, config: () => this.config, paused: () => this.gate.paused });
    this.reconfigure(config);
    // A 429 seen by another process pauses this one too.
    deps.shared?.store.onPause((until) => this.gate.pause(until - Date.now(), true));
    // While Redis is away each replica enforces its share of the limits, not all of them.
    deps.shared?.store.onDown(() => this.shareLocally(this.shared!.activeReplicas));
    deps.shared?.store.onUp(() => this.shareLocally(1));
  }

  /** Sets the in-process rate limits to 1/n of the configured (or learned) ones. */
  private shareLocally(n: number): void {
    const limits = this.config.limits;
    const planFor = (dim: Dimension): BucketPlan | undefined => {
      const perMinute = limits[CONFIG_KEY[dim]];
      const full = perMinute !== undefined ? configuredPlan(perMinute) : this.adaptive.learnedPlan(dim);
      return full && { perMinute: full.perMinute / n, capacity: Math.max(1, full.capacity / n) };
    };
    const requests = planFor('requests');
    if (requests && (this.adaptive.mode === 'configured' || this.adaptive.mode === 'learned')) this.main.replan(requests);
    for (const dim of TOKEN_DIMENSIONS) {
      const plan = planFor(dim);
      if (plan) this.tokenBuckets[dim]?.replan(plan);
    }
    if (n > 1 && this.deps.emitter.has('warning')) {
      this.deps.emitter.emit('warning', { code: 'redis_down_local_share', message: `Redis is unreachable: this process now enforces 1/${n} of the rate limits (${n} replicas were active)` });
    }
  }

  /** Applies a config (at creation, and each live change): concurrency, rates, per-scope limits. */
  reconfigure(config: ResolvedConfig, previous?: ResolvedConfig): void {
    this.config = config;
    const limits = config.limits;
    void this.main.limiter.updateSettings({ maxConcurrent: limits.maxConcurrent });
    this.adaptive.configure(config, previous);
    for (const dim of TOKEN_DIMENSIONS) {
      const perMinute = limits[CONFIG_KEY[dim]];
      const plan = perMinute !== undefined ? configuredPlan(perMinute) : this.adaptive.learnedPlan(dim);
      const bucket = this.tokenBuckets[dim];
      if (plan && !bucket) this.tokenBuckets[dim] = new Bucket(dim, plan);
      else if (bucket && plan !== bucket.plan) bucket.replan(plan);
      if (!plan && bucket) {
        delete this.tokenBuckets[dim];
        void bucket.close();
      }
    }
    if (previous && JSON.stringify(previous.limits.perScope) !== JSON.stringify(limits.perScope)) this.scopes.configure(limits.perScope);
    if (previous && JSON.stringify(previous.tiers) !== JSON.stringify(config.tiers)) {
      // Calls holding slots of the old tiers' limiters finish there; new calls use the new ones.
      const old = this.tierScopes;
      this.tierScopes = new Map();
      for (const scopes of old.values()) scopes.close();
    }
    if (this.shared) {
      for (const dim of DIMENSIONS) {
        const perMinute = limits[CONFIG_KEY[dim]];
        if (perMinute !== undefined) this.shared.share(dim, configuredPlan(perMinute));
        else if (!this.adaptive.learnedPlan(dim)) this.shared.unshare(dim);
      }
    }
  }

  /**
   * Waits for every limit that applies, in order. Refuses at once (RateLimitExceededError) when
   * the queue is full, the call could never fit a token limit, or the wait would pass maxWaitMs;
   * gives up at maxWaitMs or when the caller aborts, and then nothing of it reaches the provider.
   */
  /** The per-scope limiters for a call in `tier`: the tier's own when it sets them, else the top-level ones. */
  private scopeLimitersOf(tier: ResolvedTier | undefined): ScopeLimiters {
    if (!tier?.perScope) return this.scopes;
    let scopes = this.tierScopes.get(tier.name);
    if (!scopes) this.tierScopes.set(tier.name, (scopes = new ScopeLimiters(tier.perScope)));
    return scopes;
  }

  /** A lease at once when nothing has to wait (no promise, nothing queued), else the wait for one. */
  acquire(scope: Readonly<GuardScope>, weighIn: () => CallWeights, signal: AbortSignal | undefined, model: string | undefined, tier?: ResolvedTier): Lease | Promise<Lease> {
    const weights = weighIn();
    const scopeLimiters = this.scopeLimitersOf(tier).limitersFor(scope);
    if (this.shared === undefined) {
      const lease = this.takeLean(weights, scopeLimiters);
      if (lease) return lease;
    }
    const config = this.config;
    const { maxQueue, maxWaitMs } = config.limits;
    const tokenWeights: Record<TokenDimension, number> = { tokens: weights.input + weights.output, inputTokens: weights.input, outputTokens: weights.output };
    this.refuseAtOnce(tokenWeights, maxWaitMs);
    for (const scoped of scopeLimiters) {
      const wait = scoped.waitMs();
      if (wait > maxWaitMs) {
        throw new RateLimitExceededError(`Refused: ${scoped.key} is over its own rate limit for the next ${Math.ceil(wait)} ms (limits.perScope), longer than limits.maxWaitMs = ${maxWaitMs}; nothing was sent.`, {
          reason: 'max_wait',
          retryAfterMs: wait,
          limit: `perScope.${scoped.key.split(':')[0]}`,
          ...(scoped.perMs !== undefined ? { window: { limit: Math.round(scoped.perMs * 60_000), remaining: 0, resetMs: wait } } : {}),
        });
      }
    }

    const started = performance.now();
    const shared = this.shared;
    const scopeRates: readonly ScopeRate[] = shared ? scopeLimiters.filter((s) => s.perMs !== undefined).map((s) => ({ key: s.key, perMs: s.perMs!, capacity: s.capacity })) : NO_SCOPE_RATES;
    const sharing = shared !== undefined && (shared.active || scopeRates.length > 0);
    if (shared && shared.store.status === 'down' && config.redisFailure === 'reject') throw new SharedStateUnavailableError('the shared rate limits');
    const immediate = sharing ? undefined : this.tryNow(scopeLimiters, tokenWeights);
    if (immediate) {
      const lease = this.lease(immediate.grants, immediate.taken, weights, 0, scopeLimiters, NO_SHARED);
      if (immediate.fromIdle) this.holdRefill(lease.seq);
      return lease;
    }
    // This call would wait. (Shared rates are always waited on through Redis: there, one may.)
    if (this.waiting >= Math.max(maxQueue, sharing ? 1 : 0)) {
      throw new RateLimitExceededError(`Refused: ${this.waiting} calls are already waiting (limits.maxQueue = ${maxQueue}); nothing was sent.`, {
        reason: 'queue_full',
        retryAfterMs: this.estimatedWaitMs(),
        limit: 'maxQueue',
      });
    }
    return this.queued(scope, weighIn, weights, tokenWeights, signal, model, scopeLimiters, scopeRates, sharing, started);
  }

  /** The wait of a call that could not go at once: shared rates, per-scope limits, the fair queue, the pause. */
  private async queued(
    scope: Readonly<GuardScope>,
    weighIn: () => CallWeights,
    weighed: CallWeights,
    tokenWeights: Record<TokenDimension, number>,
    signal: AbortSignal | undefined,
    model: string | undefined,
    scopeLimiters: readonly ScopeLimiter[],
    scopeRates: readonly ScopeRate[],
    sharing: boolean,
    started: number,
  ): Promise<Lease> {
    const config = this.config;
    const { maxWaitMs } = config.limits;
    const shared = this.shared;
    let weights = weighed;
    // Weighed again when the call gets its slot: what was learned while it waited counts.
    const reweigh = () => {
      weights = weighIn();
      tokenWeights.tokens = weights.input + weights.output;
      tokenWeights.inputTokens = weights.input;
      tokenWeights.outputTokens = weights.output;
    };
    const grants: Grant[] = [];
    const taken: Array<[Bucket, number]> = [];
    const sharedTaken: SharedTaken = [];
    const scopeTaken: ScopeRate[] = [];
    const fairShare = config.limits.fairShare;
    const fairKey = fairShare === 'none' ? '' : (scope[fairShare] ?? '');
    let leaveQueue: (() => void) | undefined;
    let abandoned = false;
    const isAbandoned = () => abandoned;
    const steps = async (): Promise<void> => {
      if (sharing) {
        // Shared rates first, without holding a local slot: in Distributed mode they are the long wait.
        if (scopeRates.length) await shared!.takeScopes(scopeRates, scopeTaken, isAbandoned, () => maxWaitMs - (performance.now() - started), config.redisFailure, maxWaitMs);
        await this.gate.passed(isAbandoned);
        await shared!.take({ requests: 1, ...tokenWeights }, sharedTaken, isAbandoned, config.redisFailure);
        if (abandoned) return;
      }
      for (const scoped of scopeLimiters) {
        const grant = await scoped.take();
        if (abandoned) return grant.undo();
        grants.push(grant);
      }
      // The main slot and the token buckets, in the fair queue's order.
      const turn = this.fair.turn(fairKey, scope.priority ?? 'normal', async () => {
        if (abandoned) return;
        const slot = await holdSlot(this.main.limiter);
        if (abandoned) return slot.undo();
        grants.push(slot);
        this.main.countDispatch(1);
        reweigh();
        for (const dim of TOKEN_DIMENSIONS) {
          const bucket = this.tokenBuckets[dim];
          if (!bucket || tokenWeights[dim] <= 0) continue;
          await bucket.take(tokenWeights[dim]);
          if (abandoned) return bucket.refund(tokenWeights[dim]);
          taken.push([bucket, tokenWeights[dim]]);
        }
      });
      leaveQueue = turn.leave;
      await turn.done;
      // A 429 seen while this call waited on token buckets holds it too.
      await this.gate.passed(isAbandoned);
    };

    this.wait(+1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAborted: (() => void) | undefined;
    try {
      await Promise.race([
        steps(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new RateLimitExceededError(`Refused: no slot within limits.maxWaitMs = ${maxWaitMs} ms; nothing was sent.`, { reason: 'max_wait', retryAfterMs: this.estimatedWaitMs(), limit: 'maxWaitMs' }));
          }, maxWaitMs);
          timer.unref();
          if (signal) {
            onAborted = () => reject(abortReason(signal));
            if (isAborted(signal)) onAborted();
            else onAbort(signal, onAborted);
          }
        }),
      ]);
    } catch (error) {
      abandoned = true;
      leaveQueue?.();
      for (const grant of grants) grant.undo();
      for (const [bucket, weight] of taken) bucket.refund(weight);
      for (const [bucket, weight] of sharedTaken) bucket.refund(weight);
      for (const rate of scopeTaken) shared!.refundScope(rate);
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAborted && signal) offAbort(signal, onAborted);
      this.wait(-1);
    }

    const waitedMs = performance.now() - started;
    if (waitedMs >= 5 && this.deps.emitter.has('rate-limited')) {
      this.deps.emitter.emit('rate-limited', { source: 'local', provider: this.deps.provider, model, waitMs: waitedMs });
    }
    return this.lease(grants, taken, weights, waitedMs, scopeLimiters, sharedTaken);
  }

  /** Refusals that need no waiting: a call heavier than a token limit's minute, a pause longer than maxWaitMs. */
  private refuseAtOnce(tokenWeights: Record<TokenDimension, number>, maxWaitMs: number): void {
    for (const dim of TOKEN_DIMENSIONS) {
      const plan = this.tokenBuckets[dim]?.plan;
      if (plan && tokenWeights[dim] > plan.perMinute) {
        throw new RateLimitExceededError(
          `Refused: this call needs ${Math.ceil(tokenWeights[dim])} ${dim} but the limit allows ${Math.floor(plan.perMinute)} per minute; it could never be sent. Nothing was sent.`,
          { reason: 'too_heavy', limit: CONFIG_KEY[dim] },
        );
      }
    }
    const pausedFor = this.gate.remainingMs;
    if (pausedFor > maxWaitMs) {
      throw new RateLimitExceededError(`Refused: the provider asked for a ${Math.ceil(pausedFor)} ms pause, longer than limits.maxWaitMs = ${maxWaitMs}; nothing was sent.`, {
        reason: 'max_wait',
        retryAfterMs: pausedFor,
        limit: 'maxWaitMs',
      });
    }
  }

  /**
   * The uncontended case: every limit has room now and nothing waits, so the call goes without
   * queueing (Bottleneck's datastore still counts it). Undefined when anything would have to wait.
   */
  private tryNow(scopeLimiters: readonly ScopeLimiter[], tokenWeights: Record<TokenDimension, number>): { grants: Grant[]; taken: Array<[Bucket, number]>; fromIdle: boolean } | undefined {
    if (this.gate.paused || !this.fair.idle) return undefined;
    const fromIdle = this.main.full || this.tokenBucketFull();
    const grants = this.slotsNow(scopeLimiters);
    if (!grants) return undefined;
    const taken: Array<[Bucket, number]> = [];
    for (const dim of TOKEN_DIMENSIONS) {
      const bucket = this.tokenBuckets[dim];
      if (!bucket || tokenWeights[dim] <= 0) continue;
      if (!bucket.takeNow(tokenWeights[dim])) {
        for (const [b, w] of taken) b.refund(w);
        return undoAll(grants);
      }
      taken.push([bucket, tokenWeights[dim]]);
    }
    this.main.countDispatch(1);
    return { grants, taken, fromIdle };
  }

  /**
   * The common case in one short pass: no shared rates, nothing paused or waiting, every bucket
   * part-used with room for the call whole, and its per-scope limits with room now. Undefined
   * otherwise (then acquire's full path decides: a refusal, a burst from idle, a debt, a wait).
   * Its own pass because over HTTP the guard's cost is mostly how much code a call runs, cold.
   */
  private takeLean(weights: CallWeights, scopeLimiters: readonly ScopeLimiter[]): Lease | undefined {
    if (this.gate.paused || !this.fair.idle || this.main.full) return undefined;
    const buckets = this.tokenBuckets;
    const total = weights.input + weights.output;
    const tokens = total > 0 ? buckets.tokens : undefined;
    const input = weights.input > 0 ? buckets.inputTokens : undefined;
    const output = weights.output > 0 ? buckets.outputTokens : undefined;
    if ((tokens && !tokens.fitsNow(total)) || (input && !input.fitsNow(weights.input)) || (output && !output.fitsNow(weights.output))) return undefined;
    const grants = this.slotsNow(scopeLimiters);
    if (!grants) return undefined;
    const now = performance.now();
    this.main.countDispatch(1, now);
    let taken: Array<[Bucket, number]> = NO_TAKEN;
    if (tokens || input || output) {
      taken = [];
      if (tokens) taken.push([tokens, total]);
      if (input) taken.push([input, weights.input]);
      if (output) taken.push([output, weights.output]);
      for (const [bucket, weight] of taken) bucket.takeFitted(weight, now);
    }
    return this.lease(grants, taken, weights, 0, scopeLimiters, NO_SHARED, now);
  }

  /** The call's per-scope slots, then the main slot, all taken at once; undefined (none kept) when one has no room. */
  private slotsNow(scopeLimiters: readonly ScopeLimiter[]): Grant[] | undefined {
    const grants: Grant[] = [];
    for (const scoped of scopeLimiters) {
      const grant = scoped.takeNow();
      if (!grant) return undoAll(grants);
      grants.push(grant);
    }
    const slot = takeSlotNow(this.main.limiter);
    if (!slot) return undoAll(grants);
    grants.push(slot);
    return grants;
  }

  /** Whether a token bucket holds its whole burst (it has been idle). */
  private tokenBucketFull(): boolean {
    const buckets = this.tokenBuckets;
    return (buckets.tokens?.full ?? false) || (buckets.inputTokens?.full ?? false) || (buckets.outputTokens?.full ?? false);
  }

  /** A burst leaves idle buckets: hold their refill until its first answer (at most START_HOLD_MAX_MS). */
  private holdRefill(seq: number): void {
    if (this.hold) return;
    for (const bucket of [this.main, ...Object.values(this.tokenBuckets)]) bucket.holdRefill();
    const timer = setTimeout(() => this.releaseRefill(), START_HOLD_MAX_MS);
    timer.unref();
    this.hold = { seq, timer };
  }

  private releaseRefill(): void {
    if (!this.hold) return;
    clearTimeout(this.hold.timer);
    this.hold = undefined;
    for (const bucket of [this.main, ...Object.values(this.tokenBuckets)]) bucket.releaseRefill();
  }

  /** An answer (or a failure) of a call of the burst: it reached the provider, whose bucket now refills too. */
  private answeredBurst(seq: number): void {
    if (this.hold && seq >= this.hold.seq) this.releaseRefill();
  }

  private lease(grants: Grant[], taken: Array<[Bucket, number]>, weights: CallWeights, waitedMs: number, scopes: readonly ScopeLimiter[], sharedTaken: Readonly<SharedTaken>, now = performance.now()): Lease {
    const seq = ++this.seq;
    this.adaptive.dispatched(seq);
    this.inFlight++;
    return new LocalLease(this.leaseEnds, seq, waitedMs, now, this.main.dispatched, taken, grants, scopes, weights, sharedTaken);
  }

  /** What a lease tells its limiter (one object for all of them). */
  private readonly leaseEnds: LeaseEnds = {
    slotFreed: () => void this.inFlight--,
    ended: (seq) => this.adaptive.forget(seq),
  };

  /**
   * Learns from a response: its rate-limit headers re-sync what is left (adaptive mode), and a
   * 429 pauses all dispatch until its Retry-After (or the reset header).
   */
  observe(lease: Lease, response: Response, adapter: ProviderAdapter): void {
    this.answeredBurst(lease.seq);
    if (!this.config.limits.adaptive || (response.ok && this.adaptive.quiet(performance.now()))) return this.adaptive.forget(lease.seq);
    const snapshot = adapter.rateLimits(response.headers);
    this.adaptive.answered(lease as LeaseState, snapshot, response.status);
    if (response.status === 429) this.pauseFor429(adapter.retryAfterMs(response.headers) ?? AdaptivePlan.resetOfExhausted(snapshot) ?? 1000, snapshot, (lease as LeaseState).dispatchedTime);
  }

  /**
   * A 429 that only the request rate caused, with that rate known, pauses everyone for as long as
   * the bucket needs to refill one request (Anthropic's Retry-After is whole seconds), not the
   * whole Retry-After. Verified: a second 429 within the Retry-After the provider asked for means
   * its limit is not a refilling bucket, and that pause is the full one.
   */
  private pauseFor429(askedMs: number, snapshot: RateLimitSnapshot | undefined, dispatchedTime: number): void {
    const now = performance.now();
    const plan = this.main.plan;
    const onlyRequests = snapshot?.requests !== undefined && snapshot.requests.remaining <= 0 && TOKEN_DIMENSIONS.every((dim) => (snapshot[dim]?.remaining ?? 1) > 0);
    // A call sent after a short pause, inside the Retry-After it cut short, met a 429 again.
    const disproved = dispatchedTime > this.shortPause.startedAt && dispatchedTime < this.shortPause.askedUntil;
    const refillMs = onlyRequests && plan && !disproved ? 60_000 / plan.perMinute + BURST_JITTER_MS : Infinity;
    if (refillMs < askedMs) this.shortPause = { startedAt: now, askedUntil: now + askedMs };
    this.gate.pause(Math.min(askedMs, refillMs));
  }

  /** A call that got no response (connection error, timeout). */
  observeFailure(lease: Lease): void {
    this.answeredBurst(lease.seq);
    this.adaptive.failed(lease.seq);
  }

  /** Keeps the process alive while a call waits (the limiter's own timers never do). */
  private wait(delta: number): void {
    this.waiting += delta;
    if (this.waiting > 0 && !this.keepAlive) this.keepAlive = setInterval(() => {}, 1000);
    else if (this.waiting === 0 && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }

  /** A rough time until a new call could go: the pause, else the queue ahead at the request rate. */
  private estimatedWaitMs(): number {
    const plan = this.main.plan;
    const queueMs = plan ? ((this.waiting + 1) / plan.perMinute) * 60_000 : 1000;
    return Math.max(this.gate.remainingMs, queueMs);
  }

  status(): {
    running: number;
    queued: number;
    paused: boolean;
    pausedUntil?: string;
    mode: AdaptivePlan['mode'];
    learned?: Partial<Record<Dimension, LearnedLimit>>;
    scopes?: Record<string, number>;
    shared?: { redis: 'connecting' | 'up' | 'down'; rates: string[] };
  } {
    const paused = this.gate.paused;
    const out: ReturnType<TrafficLimiter['status']> = { running: this.inFlight, queued: this.waiting, paused, mode: this.adaptive.mode };
    if (paused) out.pausedUntil = new Date(this.gate.pausedUntil).toISOString();
    const learned = this.adaptive.status();
    if (learned) out.learned = learned;
    if (this.scopes.active || this.tierScopes.size) {
      const sizes = this.scopes.sizes();
      for (const scopes of this.tierScopes.values()) for (const [kind, n] of Object.entries(scopes.sizes())) sizes[kind] = (sizes[kind] ?? 0) + n;
      out.scopes = sizes;
    }
    if (this.deps.shared && this.shared) out.shared = { redis: this.deps.shared.store.status, rates: this.shared.rates };
    return out;
  }

  async close(): Promise<void> {
    this.gate.close();
    this.adaptive.close();
    if (this.hold) clearTimeout(this.hold.timer);
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    if (this.deps.shared) {
      // The shared connection ends first: Bottleneck then skips unsubscribing each limiter, an
      // un-awaited command of its own that would reject once the connection is gone.
      const connection = this.deps.shared.connection;
      const { client, subscriber } = connection as unknown as { client: Redis; subscriber: Redis };
      await endClients([client, subscriber], { disconnect: () => connection.disconnect(false) });
    }
    await Promise.all([this.main.close(), ...Object.values(this.tokenBuckets).map((b) => b.close()), this.shared?.close(), this.scopes.close(), ...[...this.tierScopes.values()].map((s) => s.close())]);
  }
}

/** Gives back every grant taken so far (a call that could not go at once after all). */
function undoAll(grants: readonly Grant[]): undefined {
  for (const grant of grants) grant.undo();
  return undefined;
}

/** What a lease tells its limiter: its slot was freed; it ended. */
interface LeaseEnds {
  slotFreed(): void;
  ended(seq: number): void;
}

/** A call's hold on the limiter (see Lease). A class, not closures: every call takes one. */
class LocalLease implements LeaseState {
  readonly takenDispatchedAt: readonly number[];
  private slotFreed = false;
  private settled = false;

  constructor(
    private readonly ends: LeaseEnds,
    readonly seq: number,
    readonly waitedMs: number,
    readonly dispatchedTime: number,
    readonly mainDispatchedAt: number,
    readonly taken: Array<[Bucket, number]>,
    private readonly grants: readonly Grant[],
    private readonly scopes: readonly ScopeLimiter[],
    private readonly weights: CallWeights,
    private readonly sharedTaken: Readonly<SharedTaken>,
  ) {
    this.takenDispatchedAt = taken.length ? taken.map(([b]) => b.dispatched) : NONE;
  }

  releaseSlot(): void {
    if (this.slotFreed) return;
    this.slotFreed = true;
    this.ends.slotFreed();
    for (const grant of this.grants) grant.release();
    for (const scoped of this.scopes) scoped.dropIfIdle();
  }

  settle(actualOutput?: number, actualInput?: number): void {
    this.releaseSlot();
    this.ends.ended(this.seq);
    if (this.settled) return;
    this.settled = true;
    if (actualOutput === undefined) return;
    // An estimate above the provider's count would otherwise hold the token rate below the
    // provider's for good (an estimate below it is taken now, as the provider did).
    const weights = this.weights;
    const unused: Record<TokenDimension, number> = { outputTokens: weights.output - actualOutput, inputTokens: actualInput === undefined ? 0 : weights.input - actualInput, tokens: 0 };
    unused.tokens = unused.outputTokens + unused.inputTokens;
    for (const [bucket] of this.taken) if (bucket.name !== 'requests') bucket.refund(unused[bucket.name as TokenDimension]);
    for (const [bucket] of this.sharedTaken) if (bucket.name !== 'requests') bucket.refund(unused[bucket.name as TokenDimension]);
  }
}
