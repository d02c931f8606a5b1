/**
 * The rates every process of one guard name shares through Redis (Distributed mode): request and
 * token buckets on Bottleneck's Redis clustering, and per-scope rates, one key per busy scope
 * key. A call takes its weight here before it takes anything in process; while Redis is
 * unreachable (or fails mid-wait) it goes on under the in-process limits alone, or is refused
 * with redisFailure 'reject'.
 */
import type Bottleneck from 'bottleneck';
import { RateLimitExceededError, SharedStateUnavailableError } from '../errors';
import type { BucketPlan, Dimension } from '../limiter/bucket';
import { DIMENSIONS } from '../limiter/bucket';
import { SharedBucket, connectionReady } from './shared-bucket';
import { SharedScopeRates, type ScopeRate } from './shared-scope-rates';
import type { SharedStore } from './shared-store';

/** What a call took from the shared buckets, given back if it never goes. */
export type SharedTaken = Array<[SharedBucket, number]>;

/** How often the replica count is read (it sets each process's share of the limits during an outage). */
const REPLICAS_READ_MS = 5000;
/** A replica counts as active this long after it last used a shared bucket. */
const REPLICA_ACTIVE_MS = 10_000;

export class SharedRates {
  private readonly buckets: Partial<Record<Dimension, SharedBucket>> = {};
  private readonly scopes: SharedScopeRates;
  private replicas = 1;
  private replicasReadAt = 0;

  constructor(
    readonly store: SharedStore,
    private readonly connection: Bottleneck.IORedisConnection,
  ) {
    this.scopes = new SharedScopeRates(store.client, store.prefix);
  }

  /** Whether any request or token rate is shared. */
  get active(): boolean {
    return Object.keys(this.buckets).length > 0;
  }

  /** The dimensions shared now. */
  get rates(): string[] {
    return Object.keys(this.buckets);
  }

  /** Replicas of this guard name seen using the shared limits lately. */
  get activeReplicas(): number {
    return this.replicas;
  }

  /** This rate is enforced across processes from now on (a new plan is written for all of them). */
  share(dim: Dimension, plan: BucketPlan): void {
    const bucket = this.buckets[dim];
    if (bucket) bucket.replan(plan);
    else this.buckets[dim] = new SharedBucket(dim, plan, this.connection, `${this.store.prefix}${dim}`);
  }

  unshare(dim: Dimension): void {
    const bucket = this.buckets[dim];
    if (!bucket) return;
    delete this.buckets[dim];
    void bucket.close();
  }

  /** Whether the shared state can be used now: waits for a first connection, not for a lost one. */
  private async usable(): Promise<boolean> {
    return (await this.store.ready()) && (await connectionReady(this.connection, 2000));
  }

  /** Takes `weights` from the shared buckets, recording what was taken in `taken`. */
  async take(weights: Record<Dimension, number>, taken: SharedTaken, abandoned: () => boolean, failure: 'local' | 'reject'): Promise<void> {
    if (!(await this.usable())) {
      if (failure === 'reject') throw new SharedStateUnavailableError('the shared rate limits');
      return;
    }
    for (const dim of DIMENSIONS) {
      const bucket = this.buckets[dim];
      if (!bucket || weights[dim] <= 0) continue;
      let offDown: (() => void) | undefined;
      try {
        const down = new Promise<'down'>((resolve) => (offDown = this.store.onDown(() => resolve('down'))));
        const taking = bucket.take(weights[dim]);
        // If the connection goes first, the take may still fail later: nobody waits for it then.
        taking.catch(() => {});
        const got = await Promise.race([taking, down]);
        if (got === 'down') throw new Error('Redis connection lost');
        if (abandoned()) return bucket.refund(got);
        taken.push([bucket, got]);
        this.countReplicas();
      } catch (error) {
        this.store.commandFailed(error);
        if (failure === 'reject') throw new SharedStateUnavailableError('the shared rate limits', { cause: error });
        return;
      } finally {
        offDown?.();
      }
    }
  }

  /**
   * Takes one unit of each per-scope rate from the fleet's bucket for that key, waiting for its
   * turn when that is within `maxWaitMs()`; refuses (RateLimitExceededError) when not.
   */
  async takeScopes(rates: readonly ScopeRate[], taken: ScopeRate[], abandoned: () => boolean, maxWaitMs: () => number, failure: 'local' | 'reject', configuredMaxWaitMs: number): Promise<void> {
    if (!(await this.store.ready())) {
      if (failure === 'reject') throw new SharedStateUnavailableError('the shared per-scope limits');
      return;
    }
    let longest = 0;
    for (const rate of rates) {
      let result;
      try {
        result = await this.scopes.take(rate, 1, maxWaitMs());
      } catch (error) {
        this.store.commandFailed(error);
        if (failure === 'reject') throw new SharedStateUnavailableError('the shared per-scope limits', { cause: error });
        return;
      }
      if (abandoned()) return this.scopes.refund(rate, 1);
      if (!result.ok) {
        throw new RateLimitExceededError(
          `Refused: ${rate.key} is over its own rate limit for the next ${result.retryAfterMs} ms (limits.perScope, shared by every replica), longer than limits.maxWaitMs = ${configuredMaxWaitMs}; nothing was sent.`,
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

  refundScope(rate: ScopeRate): void {
    this.scopes.refund(rate, 1);
  }

  /** Reads how many replicas used the shared limits lately, now and then, in the background. */
  private countReplicas(): void {
    const bucket = Object.values(this.buckets)[0];
    if (!bucket || Date.now() - this.replicasReadAt < REPLICAS_READ_MS) return;
    this.replicasReadAt = Date.now();
    bucket
      .activeClients(this.store.client, Date.now() - REPLICA_ACTIVE_MS)
      .then((n) => (this.replicas = Math.max(1, n)))
      .catch(() => {});
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.buckets).map((b) => b.close()));
  }
}
