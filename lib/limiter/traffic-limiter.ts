import type { ResolvedConfig } from '../config/options';
import { RateLimitExceededError } from '../errors';
import type { GuardEmitter } from '../events';
import type { LimitWindow, ProviderAdapter, RateLimitSnapshot } from '../providers/adapter';
import type { GuardScope } from '../scope-kinds';
import { Bucket, NETWORK_JITTER_MS, SAFETY_MARGIN, configuredPlan, type BucketPlan } from './bucket';
import { ScopeLimiters, holdSlot, takeSlotNow, type Grant, type ScopeLimiter } from './scope-limiters';
import type Bottleneck from 'bottleneck';
import type { Redis } from 'ioredis';
import { endClients } from '../internal/end-client';
import { SharedBucket, connectionReady } from '../distributed/shared-bucket';
import type { SharedStore } from '../distributed/shared-store';
import { SharedStateUnavailableError } from '../errors';
import { SharedScopeRates, type ScopeRate } from '../distributed/shared-scope-rates';

export type Dimension = 'requests' | 'tokens' | 'inputTokens' | 'outputTokens';
type TokenDimension = Exclude<Dimension, 'requests'>;
const TOKEN_DIMENSIONS: readonly TokenDimension[] = ['tokens', 'inputTokens', 'outputTokens'];
const CONFIG_KEY: Record<Dimension, 'requestsPerMinute' | 'tokensPerMinute' | 'inputTokensPerMinute' | 'outputTokensPerMinute'> = {
  requests: 'requestsPerMinute',
  tokens: 'tokensPerMinute',
  inputTokens: 'inputTokensPerMinute',
  outputTokens: 'outputTokensPerMinute',
};

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
  /** Ends the lease: frees every slot and trues up the output reservation to what was used. */
  settle(actualOutputTokens?: number): void;
}

export interface LimiterDeps {
  config: () => ResolvedConfig;
  emitter: GuardEmitter;
  provider: string;
  /** Distributed mode: rates shared through Redis (concurrency stays per process). */
  shared?: { store: SharedStore; connection: Bottleneck.IORedisConnection };
}

type Mode = 'configured' | 'probing' | 'learned' | 'unlimited';


/** What a call took from the shared (Redis) buckets, given back if it never goes. */
type SharedTaken = Array<[SharedBucket, number]>;

interface LeaseState extends Lease {
  dispatchedAt: Map<Bucket, number>;
  dispatchedTime: number;
  weights: Map<Bucket, number>;
}

/**
 * The traffic limiter of one guard, on Bottleneck: per-scope limiters, then concurrency and the
 * request rate (one limiter, weight 1), then token buckets. Adaptive mode learns the provider's
 * limits from its headers (starting with one probe request), re-syncs what is left after every
 * response, and pauses all dispatch on a 429 until its Retry-After.
 */
export class TrafficLimiter {
  private readonly main: Bucket;
  private readonly tokenBuckets: Partial<Record<TokenDimension, Bucket>> = {};
  private readonly scopes: ScopeLimiters;
  private requestsMode: Mode = 'unlimited';
  private readonly learned: Partial<Record<Dimension, LimitWindow & { plan: BucketPlan }>> = {};
  private seq = 0;
  private inFlight = 0;
  private waiting = 0;
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  private pausedUntil = 0;
  private pauseTimer: ReturnType<typeof setTimeout> | undefined;
  private probeSeq = 0;
  private closed = false;
  /** Dispatched calls whose response headers have not come back yet, by dispatch number. */
  private readonly unanswered = new Set<number>();
  /** Distributed mode: the rates every process of this guard name shares, by dimension. */
  private readonly sharedBuckets: Partial<Record<Dimension, SharedBucket>> = {};
  /** Distributed mode: per-scope rates, one bucket per scope key for the whole fleet. */
  private readonly sharedScopes: SharedScopeRates | undefined;

  constructor(private readonly deps: LimiterDeps) {
    const config = deps.config();
    this.main = new Bucket('requests', undefined, { maxConcurrent: config.limits.maxConcurrent });
    this.scopes = new ScopeLimiters(config.limits.perScope);
    this.sharedScopes = deps.shared && new SharedScopeRates(deps.shared.store.client, deps.shared.store.prefix);
    this.configure(config);
    // A 429 seen by another process pauses this one too.
    deps.shared?.store.onPause((until) => this.pause(until - Date.now(), true));
    // While Redis is away each replica enforces its share of the limits, not all of them.
    deps.shared?.store.onDown(() => this.shareLocally(this.replicas));
    deps.shared?.store.onUp(() => this.shareLocally(1));
  }

  /** Replicas of this guard name seen using the shared limits lately (read from Redis now and then). */
  private replicas = 1;
  private replicasReadAt = 0;

  private countReplicas(): void {
    const shared = this.deps.shared;
    const bucket = Object.values(this.sharedBuckets)[0];
    if (!shared || !bucket || Date.now() - this.replicasReadAt < 5000) return;
    this.replicasReadAt = Date.now();
    shared.store.client
      .zcount(`b_${shared.store.prefix}${bucket.name}_client_last_seen`, Date.now() - 10_000, '+inf')
      .then((n) => (this.replicas = Math.max(1, n)))
      .catch(() => {});
  }

  /** Sets the in-process rate limits to 1/n of the configured (or learned) ones. */
  private shareLocally(n: number): void {
    const limits = this.deps.config().limits;
    const planFor = (dim: Dimension): BucketPlan | undefined => {
      const perMinute = limits[CONFIG_KEY[dim]];
      const full = perMinute !== undefined ? configuredPlan(perMinute) : limits.adaptive ? this.learned[dim]?.plan : undefined;
      return full && { perMinute: full.perMinute / n, capacity: Math.max(1, full.capacity / n) };
    };
    const requests = planFor('requests');
    if (requests && (this.requestsMode === 'configured' || this.requestsMode === 'learned')) this.main.replan(requests);
    for (const dim of TOKEN_DIMENSIONS) {
      const plan = planFor(dim);
      if (plan) this.tokenBuckets[dim]?.replan(plan);
    }
    if (n > 1 && this.deps.emitter.has('warning')) {
      this.deps.emitter.emit('warning', { code: 'redis_down_local_share', message: `Redis is unreachable: this process now enforces 1/${n} of the rate limits (${n} replicas were active)` });
    }
  }

  /** Applies (live) configuration: concurrency, configured rates, per-scope limits. */
  configure(config: ResolvedConfig, previous?: ResolvedConfig): void {
    const limits = config.limits;
    void this.main.limiter.updateSettings({ maxConcurrent: limits.maxConcurrent });
    const rpm = limits.requestsPerMinute;
    if (rpm !== undefined) {
      this.requestsMode = 'configured';
      this.main.replan(configuredPlan(rpm), previous?.limits.requestsPerMinute === rpm ? undefined : configuredPlan(rpm).capacity);
    } else if (this.requestsMode === 'configured' || !previous) {
      this.requestsMode = limits.adaptive ? 'probing' : 'unlimited';
      if (this.requestsMode === 'probing') this.probe();
      else this.main.replan(undefined);
    }
    if (!limits.adaptive && (this.requestsMode === 'probing' || this.requestsMode === 'learned')) {
      this.requestsMode = 'unlimited';
      this.main.replan(undefined);
    }
    for (const dim of TOKEN_DIMENSIONS) {
      const perMinute = limits[CONFIG_KEY[dim]];
      const learned = limits.adaptive ? this.learned[dim]?.plan : undefined;
      const plan = perMinute !== undefined ? configuredPlan(perMinute) : learned;
      const bucket = this.tokenBuckets[dim];
      if (plan && !bucket) this.tokenBuckets[dim] = new Bucket(dim, plan);
      else if (bucket && plan !== bucket.plan) bucket.replan(plan);
      if (!plan && bucket) {
        delete this.tokenBuckets[dim];
        void bucket.close();
      }
    }
    if (previous && JSON.stringify(previous.limits.perScope) !== JSON.stringify(limits.perScope)) this.scopes.configure(limits.perScope);
    if (this.deps.shared) {
      for (const dim of ['requests', ...TOKEN_DIMENSIONS] as const) {
        const perMinute = limits[CONFIG_KEY[dim]];
        if (perMinute !== undefined) this.shareRate(dim, configuredPlan(perMinute));
        else if (!limits.adaptive || !this.learned[dim]) this.unshareRate(dim);
      }
    }
  }

  /** Distributed mode: this rate is enforced across processes through Redis. */
  private shareRate(dim: Dimension, plan: BucketPlan): void {
    const shared = this.deps.shared;
    if (!shared) return;
    const bucket = this.sharedBuckets[dim];
    if (bucket) bucket.replan(plan);
    else this.sharedBuckets[dim] = new SharedBucket(dim, plan, shared.connection, `${shared.store.prefix}${dim}`);
  }

  private unshareRate(dim: Dimension): void {
    const bucket = this.sharedBuckets[dim];
    if (!bucket) return;
    delete this.sharedBuckets[dim];
    void bucket.close();
  }

  /**
   * Takes a call's weight from the shared buckets. While Redis is unreachable (or when it fails
   * mid-wait) the call goes on under the in-process limits alone, or is refused with
   * redisFailure 'reject'. Whatever was taken is in `taken`, to give back if the call never goes.
   */
  private async takeShared(weights: Record<Dimension, number>, taken: SharedTaken, abandoned: () => boolean): Promise<void> {
    const shared = this.deps.shared!;
    // Before the first connection has answered, calls wait for it (start is not an outage).
    if (!(await shared.store.ready()) || !(await connectionReady(shared.connection, 2000))) {
      if (this.deps.config().redisFailure === 'reject') throw new SharedStateUnavailableError('the shared rate limits');
      return;
    }
    for (const dim of ['requests', ...TOKEN_DIMENSIONS] as const) {
      const bucket = this.sharedBuckets[dim];
      if (!bucket || weights[dim] <= 0) continue;
      let offDown: (() => void) | undefined;
      try {
        const down = new Promise<'down'>((resolve) => (offDown = shared.store.onDown(() => resolve('down'))));
        const taking = bucket.take(weights[dim]);
        // If the connection goes first, the take may still fail later: nobody waits for it then.
        taking.catch(() => {});
        const got = await Promise.race([taking, down]);
        if (got === 'down') throw new Error('Redis connection lost');
        if (abandoned()) return bucket.refund(got);
        taken.push([bucket, got]);
        this.countReplicas();
      } catch (error) {
        shared.store.commandFailed(error);
        if (this.deps.config().redisFailure === 'reject') throw new SharedStateUnavailableError('the shared rate limits', { cause: error });
        return;
      } finally {
        offDown?.();
      }
    }
  }

  /**
   * Takes one unit of each per-scope rate from the fleet's bucket for that key (Distributed
   * mode), waiting for its turn when that is within `maxWaitMs`; refuses, giving back what it
   * took, when not. While Redis is unreachable the in-process per-scope limits stand alone.
   */
  private async takeSharedScopes(rates: ScopeRate[], taken: ScopeRate[], abandoned: () => boolean, maxWaitMs: () => number): Promise<void> {
    const shared = this.deps.shared!;
    if (!(await shared.store.ready())) {
      if (this.deps.config().redisFailure === 'reject') throw new SharedStateUnavailableError('the shared per-scope limits');
      return;
    }
    let longest = 0;
    for (const rate of rates) {
      let result;
      try {
        result = await this.sharedScopes!.take(rate, 1, maxWaitMs());
      } catch (error) {
        shared.store.commandFailed(error);
        if (this.deps.config().redisFailure === 'reject') throw new SharedStateUnavailableError('the shared per-scope limits', { cause: error });
        return;
      }
      if (abandoned()) return this.sharedScopes!.refund(rate, 1);
      if (!result.ok) {
        throw new RateLimitExceededError(
          `Refused: ${rate.key} is over its own rate limit for the next ${result.retryAfterMs} ms (limits.perScope, shared by every replica), longer than limits.maxWaitMs = ${this.deps.config().limits.maxWaitMs}; nothing was sent.`,
          {
            reason: 'max_wait',
            retryAfterMs: result.retryAfterMs,
            limit: `perScope.${rate.key.split(':')[0]}`,
            window: { limit: Math.round(rate.perMs * 60_000), remaining: 0, resetMs: result.retryAfterMs },
          },
        );
      }
      taken.push(rate);
      longest = Math.max(longest, result.waitMs);
    }
    // Each take holds this call's place in line; it goes when the last of them comes due.
    if (longest > 0 && !abandoned()) await new Promise((resolve) => setTimeout(resolve, longest).unref());
  }

  /** Nothing learned yet: one request goes alone until its response's headers arrive. */
  private probe(): void {
    this.main.replan(undefined);
    void this.main.limiter.updateSettings({ reservoir: 1 });
  }

  /**
   * Waits for every limit that applies, in order. Refuses at once (RateLimitExceededError) when
   * the queue is full, the call could never fit a token limit, or the wait would pass maxWaitMs;
   * gives up at maxWaitMs or when the caller aborts, and then nothing of it reaches the provider.
   */
  async acquire(scope: Readonly<GuardScope>, weighIn: () => CallWeights, signal: AbortSignal | undefined, model: string | undefined): Promise<Lease> {
    let weights = weighIn();
    const config = this.deps.config();
    const { maxQueue, maxWaitMs } = config.limits;
    const tokenWeights: Record<TokenDimension, number> = {
      tokens: weights.input + weights.output,
      inputTokens: weights.input,
      outputTokens: weights.output,
    };
    // Weighed again when the call gets its slot: what was learned while it waited counts.
    const reweigh = () => {
      weights = weighIn();
      tokenWeights.tokens = weights.input + weights.output;
      tokenWeights.inputTokens = weights.input;
      tokenWeights.outputTokens = weights.output;
    };
    for (const dim of TOKEN_DIMENSIONS) {
      const plan = this.tokenBuckets[dim]?.plan;
      if (plan && tokenWeights[dim] > plan.perMinute) {
        throw new RateLimitExceededError(
          `Refused: this call needs ${Math.ceil(tokenWeights[dim])} ${dim} but the limit allows ${Math.floor(plan.perMinute)} per minute; it could never be sent. Nothing was sent.`,
          { reason: 'too_heavy', limit: CONFIG_KEY[dim] },
        );
      }
    }
    const pausedFor = this.pausedUntil - Date.now();
    if (pausedFor > maxWaitMs) {
      throw new RateLimitExceededError(`Refused: the provider asked for a ${Math.ceil(pausedFor)} ms pause, longer than limits.maxWaitMs = ${maxWaitMs}; nothing was sent.`, {
        reason: 'max_wait',
        retryAfterMs: pausedFor,
        limit: 'maxWaitMs',
      });
    }

    const scopeLimiters = this.scopes.limitersFor(scope);
    for (const scoped of scopeLimiters) {
      const wait = ScopeLimiters.waitMs(scoped);
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
    const scopeRates: ScopeRate[] = this.sharedScopes ? scopeLimiters.filter((s) => s.perMs !== undefined).map((s) => ({ key: s.key, perMs: s.perMs!, capacity: s.capacity })) : [];
    const sharing = this.deps.shared !== undefined && (Object.keys(this.sharedBuckets).length > 0 || scopeRates.length > 0);
    if (this.deps.shared && this.deps.shared.store.status === 'down' && config.redisFailure === 'reject') {
      throw new SharedStateUnavailableError('the shared rate limits');
    }
    const immediate = sharing ? undefined : this.tryNow(scopeLimiters, tokenWeights);
    if (immediate) return this.lease(immediate.grants, immediate.taken, weights, 0, scopeLimiters, []);
    // This call would wait. (Shared rates are always waited on through Redis: there, one may.)
    if (this.waiting >= Math.max(maxQueue, sharing ? 1 : 0)) {
      throw new RateLimitExceededError(`Refused: ${this.waiting} calls are already waiting (limits.maxQueue = ${maxQueue}); nothing was sent.`, {
        reason: 'queue_full',
        retryAfterMs: this.estimatedWaitMs(),
        limit: 'maxQueue',
      });
    }

    const grants: Grant[] = [];
    const taken: Array<[Bucket, number]> = [];
    const sharedTaken: SharedTaken = [];
    const scopeTaken: ScopeRate[] = [];
    let abandoned = false;
    const steps = async (): Promise<void> => {
      if (sharing) {
        // Shared rates first, without holding a local slot: in Distributed mode they are the long wait.
        if (scopeRates.length) await this.takeSharedScopes(scopeRates, scopeTaken, () => abandoned, () => maxWaitMs - (performance.now() - started));
        while (this.pausedUntil > Date.now() && !abandoned) await this.untilResumed();
        await this.takeShared({ requests: 1, ...tokenWeights }, sharedTaken, () => abandoned);
        if (abandoned) return;
      }
      for (const scoped of scopeLimiters) {
        const held = holdSlot(scoped.limiter);
        if (held instanceof Promise) this.scopes.wake(scoped);
        const grant = await held;
        if (abandoned) return grant.undo();
        grants.push(grant);
      }
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
      // A 429 seen while this call waited on token buckets holds it too.
      while (this.pausedUntil > Date.now() && !abandoned) await this.untilResumed();
    };

    this.wait(+1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        steps(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(
              new RateLimitExceededError(`Refused: no slot within limits.maxWaitMs = ${maxWaitMs} ms; nothing was sent.`, {
                reason: 'max_wait',
                retryAfterMs: this.estimatedWaitMs(),
                limit: 'maxWaitMs',
              }),
            );
          }, maxWaitMs);
          timer.unref();
          if (signal) {
            onAbort = () => reject(signal.reason);
            if (signal.aborted) onAbort();
            else signal.addEventListener('abort', onAbort, { once: true });
          }
        }),
      ]);
    } catch (error) {
      abandoned = true;
      for (const grant of grants) grant.undo();
      for (const [bucket, weight] of taken) bucket.refund(weight);
      for (const [bucket, weight] of sharedTaken) bucket.refund(weight);
      for (const rate of scopeTaken) this.sharedScopes!.refund(rate, 1);
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      this.wait(-1);
    }

    const waitedMs = performance.now() - started;
    if (waitedMs >= 5 && this.deps.emitter.has('rate-limited')) {
      this.deps.emitter.emit('rate-limited', { source: 'local', provider: this.deps.provider, model, waitMs: waitedMs });
    }
    return this.lease(grants, taken, weights, waitedMs, scopeLimiters, sharedTaken);
  }


  /**
   * The uncontended case: every limit has room now and nothing waits, so the call goes without
   * queueing (Bottleneck's datastore still counts it). Undefined when anything would have to wait.
   */
  private tryNow(scopeLimiters: ScopeLimiter[], tokenWeights: Record<TokenDimension, number>): { grants: Grant[]; taken: Array<[Bucket, number]> } | undefined {
    if (this.pausedUntil > Date.now()) return undefined;
    const grants: Grant[] = [];
    const giveBack = () => {
      for (const grant of grants) grant.undo();
      return undefined;
    };
    for (const { limiter } of scopeLimiters) {
      const grant = takeSlotNow(limiter);
      if (!grant) return giveBack();
      grants.push(grant);
    }
    const slot = takeSlotNow(this.main.limiter);
    if (!slot) return giveBack();
    grants.push(slot);
    const taken: Array<[Bucket, number]> = [];
    for (const dim of TOKEN_DIMENSIONS) {
      const bucket = this.tokenBuckets[dim];
      if (!bucket || tokenWeights[dim] <= 0) continue;
      if (!bucket.takeNow(tokenWeights[dim])) {
        for (const [b, w] of taken) b.refund(w);
        return giveBack();
      }
      taken.push([bucket, tokenWeights[dim]]);
    }
    this.main.countDispatch(1);
    return { grants, taken };
  }

  private lease(grants: Grant[], taken: Array<[Bucket, number]>, weights: CallWeights, waitedMs: number, scopes: ScopeLimiter[], sharedTaken: SharedTaken): Lease {
    const seq = ++this.seq;
    this.unanswered.add(seq);
    if (this.requestsMode === 'probing' && this.probeSeq === 0) this.probeSeq = seq;
    const dispatchedAt = new Map<Bucket, number>([[this.main, this.main.dispatched], ...taken.map(([b]) => [b, b.dispatched] as [Bucket, number])]);
    const dispatchedTime = performance.now();
    this.inFlight++;
    let slotFreed = false;
    let settled = false;
    const releaseSlot = () => {
      if (slotFreed) return;
      slotFreed = true;
      this.inFlight--;
      for (const grant of grants) grant.release();
      for (const scoped of scopes) scoped.dropIfIdle();
    };
    const lease: LeaseState = {
      seq,
      waitedMs,
      dispatchedAt,
      dispatchedTime,
      weights: new Map<Bucket, number>([[this.main, 1], ...taken]),
      releaseSlot,
      settle: (actualOutput) => {
        releaseSlot();
        this.unanswered.delete(seq);
        if (settled) return;
        settled = true;
        if (actualOutput === undefined) return;
        const unused = weights.output - actualOutput;
        for (const [bucket] of taken) if (bucket.name === 'outputTokens' || bucket.name === 'tokens') bucket.refund(unused);
        for (const [bucket] of sharedTaken) if (bucket.name === 'outputTokens' || bucket.name === 'tokens') bucket.refund(unused);
      },
    };
    return lease;
  }

  /**
   * Learns from a response: its rate-limit headers re-sync what is left (adaptive mode), and a
   * 429 pauses all dispatch until its Retry-After (or the reset header).
   */
  observe(lease: Lease, response: Response, adapter: ProviderAdapter): void {
    this.unanswered.delete(lease.seq);
    const config = this.deps.config();
    if (!config.limits.adaptive) return;
    const snapshot = adapter.rateLimits(response.headers);
    if (snapshot) this.sync(lease as LeaseState, snapshot);
    if (this.requestsMode === 'probing' && !snapshot?.requests && response.status !== 429) {
      // The provider sends no request limit (maybe token limits only): no request rate to follow.
      this.requestsMode = 'unlimited';
      this.main.replan(undefined);
    }
    if (response.status === 429) {
      const waitMs = adapter.retryAfterMs(response.headers) ?? this.resetOfExhausted(snapshot) ?? 1000;
      this.pause(waitMs);
    }
  }

  /** A call that got no response (connection error, timeout): a failed probe lets the next one go. */
  observeFailure(lease: Lease): void {
    this.unanswered.delete(lease.seq);
    if (lease.seq === this.probeSeq && this.requestsMode === 'probing') {
      this.probeSeq = 0;
      this.probe();
    }
  }

  private sync(lease: LeaseState, snapshot: RateLimitSnapshot): void {
    const dims: Dimension[] = ['requests', ...TOKEN_DIMENSIONS];
    for (const dim of dims) {
      const window = snapshot[dim];
      if (!window || window.limit <= 0) continue;
      const configured = this.deps.config().limits[CONFIG_KEY[dim]] !== undefined;
      // At most one second of the advertised rate at once: providers enforce per-minute limits
      // over short intervals even when their bucket reports more.
      const perMinute = window.limit * SAFETY_MARGIN;
      const refillMs = window.resetMs ?? 0;
      const capacity = Math.max(1, Math.min(window.remaining + (window.limit / 60_000) * refillMs, window.limit / 60) * SAFETY_MARGIN);
      let bucket = dim === 'requests' ? this.main : this.tokenBuckets[dim];
      if (!configured) {
        const plan: BucketPlan = { perMinute, capacity };
        this.learned[dim] = { ...window, plan };
        // Every process learns the same limit; the shared bucket enforces it for all of them.
        if (this.deps.shared) this.shareRate(dim, { perMinute, capacity: Math.max(1, (window.limit / 60) * SAFETY_MARGIN) });
        if (!bucket) bucket = this.tokenBuckets[dim as TokenDimension] = new Bucket(dim, plan, {});
        if (dim === 'requests' && this.requestsMode !== 'learned') {
          this.requestsMode = 'learned';
          bucket.replan(plan, 0);
        } else if (!bucket.plan || Math.abs(bucket.plan.perMinute - perMinute) > perMinute * 0.01 || Math.abs(bucket.plan.capacity - capacity) > capacity * 0.2) {
          bucket.replan(plan);
        }
      }
      if (!bucket || lease.seq <= bucket.syncedSeq || this.pausedUntil > Date.now()) continue;
      bucket.syncedSeq = lease.seq;
      // Not yet in the provider's count: what went out after this call.
      const after = bucket.dispatched - (lease.dispatchedAt.get(bucket) ?? bucket.dispatched);
      const left = window.remaining - after;
      // Calls that left just before this one may reach the provider after it (network jitter):
      // its count then misses them, so it may lower our estimate but not raise it.
      const justBefore = bucket.dispatchedSince(lease.dispatchedTime - NETWORK_JITTER_MS) - (lease.weights.get(bucket) ?? 0) - after;
      // A call sent before this one and not answered yet may not have reached the provider
      // (a busy process sends late): its count may miss it, so it may lower, not raise.
      let olderInFlight = false;
      for (const s of this.unanswered) if (s < lease.seq) olderInFlight = true;
      if (configured) bucket.lowerTo(left);
      else bucket.syncRemaining(left, justBefore <= 0 && !olderInFlight);
    }
  }

  private resetOfExhausted(snapshot: RateLimitSnapshot | undefined): number | undefined {
    if (!snapshot) return undefined;
    const resets = Object.values(snapshot)
      .filter((w): w is LimitWindow => w !== undefined && w.remaining <= 0 && w.resetMs !== undefined)
      .map((w) => w.resetMs!);
    return resets.length ? Math.max(...resets) : undefined;
  }

  /** Stops all dispatch for `ms` (a provider 429): one 429 must not become N retries at once. */
  private pause(ms: number, fromPeer = false): void {
    const until = Date.now() + ms;
    // A zero pause still runs: its resume lets a probe that met a 429 be retried.
    if (until <= this.pausedUntil || (fromPeer && ms <= 0)) return;
    if (!fromPeer) void this.deps.shared?.store.publishPause(until);
    this.pausedUntil = until;
    this.main.pause();
    for (const bucket of Object.values(this.tokenBuckets)) bucket.pause();
    clearTimeout(this.pauseTimer);
    this.pauseTimer = setTimeout(() => this.resume(ms), ms);
    this.pauseTimer.unref();
    if (this.deps.emitter.has('rate-limited')) {
      this.deps.emitter.emit('rate-limited', { source: 'provider', provider: this.deps.provider, waitMs: ms, reason: fromPeer ? 'provider 429 seen by another process' : 'provider 429' });
    }
  }

  private resume(pausedMs: number): void {
    if (this.closed) return;
    this.pausedUntil = 0;
    // One request first: its headers tell how much the provider has refilled.
    if (this.requestsMode === 'configured' || this.requestsMode === 'learned') this.main.resume(1);
    else {
      this.requestsMode = this.deps.config().limits.adaptive ? 'probing' : 'unlimited';
      this.probeSeq = 0;
      this.main.resume(1);
      if (this.requestsMode === 'unlimited') this.main.replan(undefined);
    }
    for (const bucket of Object.values(this.tokenBuckets)) {
      const plan = bucket.plan;
      bucket.resume(plan ? Math.max(1, (plan.perMinute / 60_000) * pausedMs) : 0);
    }
    for (const resolve of this.resumeWaiters.splice(0)) resolve();
  }

  private resumeWaiters: Array<() => void> = [];
  private untilResumed(): Promise<void> {
    return new Promise((resolve) => this.resumeWaiters.push(resolve));
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
    const paused = Math.max(0, this.pausedUntil - Date.now());
    const plan = this.main.plan;
    const queueMs = plan ? ((this.waiting + 1) / plan.perMinute) * 60_000 : 1000;
    return Math.max(paused, queueMs);
  }

  status(): {
    running: number;
    queued: number;
    paused: boolean;
    pausedUntil?: string;
    mode: Mode;
    learned?: Record<string, unknown>;
    scopes?: Record<string, number>;
    shared?: { redis: 'connecting' | 'up' | 'down'; rates: string[] };
  } {
    const paused = this.pausedUntil > Date.now();
    const out: ReturnType<TrafficLimiter['status']> = { running: this.inFlight, queued: this.waiting, paused, mode: this.requestsMode };
    if (paused) out.pausedUntil = new Date(this.pausedUntil).toISOString();
    const learned = Object.fromEntries(
      Object.entries(this.learned).map(([dim, l]) => [dim, { limitPerMinute: l.limit, remaining: l.remaining, resetMs: l.resetMs }]),
    );
    if (Object.keys(learned).length) out.learned = learned;
    if (this.scopes.active) out.scopes = this.scopes.sizes();
    if (this.deps.shared) out.shared = { redis: this.deps.shared.store.status, rates: Object.keys(this.sharedBuckets) };
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pauseTimer);
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.keepAlive = undefined;
    for (const resolve of this.resumeWaiters.splice(0)) resolve();
    // The shared connection ends first: Bottleneck then skips unsubscribing each limiter, an
    // un-awaited command of its own that would reject once the connection is gone.
    if (this.deps.shared) {
      const { client, subscriber } = this.deps.shared.connection as unknown as { client: Redis; subscriber: Redis };
      const connection = this.deps.shared.connection;
      await endClients([client, subscriber], { disconnect: () => connection.disconnect(false) });
    }
    await Promise.all([
      this.main.close(),
      ...Object.values(this.tokenBuckets).map((b) => b.close()),
      ...Object.values(this.sharedBuckets).map((b) => b.close()),
      this.scopes.close(),
    ]);
  }
}
