import Bottleneck from 'bottleneck';
import type { Redis } from 'ioredis';
import { fixRedisErrors, makeFast } from '../internal/bottleneck';
import type { BucketPlan } from '../limiter/bucket';
import { duplicateClient, resubscribeOnReady } from './shared-store';

/** Shared limiter keys expire after an hour without use (a guard name that is gone). */
const KEY_TIMEOUT_MS = 3_600_000;

/**
 * Refill settings for a bucket kept in Redis. Bottleneck's Redis scripts store the reservoir with
 * HINCRBY, so every amount must be a whole number: the refill adds `amount` units every `period`
 * ms, with the pair chosen so the rate is as close to the plan as possible and never above it.
 * A refill can land just after the bucket was emptied, so the bucket holds one refill less than
 * the burst: full bucket + one refill never passes it. Waiting processes are woken by a
 * heartbeat of about half a period (50–250 ms).
 */
export function sharedRefillSettings(plan: BucketPlan): {
  reservoirIncreaseAmount: number;
  reservoirIncreaseInterval: number;
  reservoirIncreaseMaximum: number;
  heartbeatInterval: number;
} {
  const perMs = plan.perMinute / 60_000;
  let best = { amount: 1, period: Math.max(1, Math.ceil(1 / perMs)) };
  let bestRatio = 1 / best.period / perMs;
  for (let amount = 2; amount < 100_000; amount++) {
    const period = Math.ceil(amount / perMs);
    if (period > 100) break;
    const ratio = amount / period / perMs;
    if (ratio > bestRatio) {
      best = { amount, period };
      bestRatio = ratio;
      if (ratio > 0.998 && period >= 20) break;
    }
  }
  return {
    reservoirIncreaseAmount: best.amount,
    reservoirIncreaseInterval: best.period,
    reservoirIncreaseMaximum: Math.max(1, Math.floor(plan.capacity) - best.amount),
    heartbeatInterval: Math.min(250, Math.max(50, Math.round(best.period / 2))),
  };
}

/** One Bottleneck connection per guard, on its own duplicate of the guard's Redis client. */
export function sharedConnection(client: Redis): Bottleneck.IORedisConnection {
  // Bottleneck subscribes on a duplicate of this client (the guard races every wait against the connection).
  const connection = fixRedisErrors(new Bottleneck.IORedisConnection({ client: duplicateClient(client) }));
  // Bottleneck subscribes each limiter once; after a reconnect its channels are subscribed again here.
  const internals = connection as unknown as { subscriber: Redis; limiters: Record<string, unknown> };
  resubscribeOnReady(internals.subscriber, () => Object.keys(internals.limiters));
  // Errors also reach the guard through its own client; without a listener Bottleneck logs nothing, but be explicit.
  connection.on('error', () => {});
  return connection;
}

/**
 * Whether Bottleneck's own connections are up, waiting up to `ms` for them: after an outage
 * they reconnect on their own schedule, a little after the guard's client.
 */
export async function connectionReady(connection: Bottleneck.IORedisConnection, ms: number): Promise<boolean> {
  const { client, subscriber } = connection as unknown as { client: Redis; subscriber: Redis };
  const deadline = Date.now() + ms;
  while (client.status !== 'ready' || subscriber.status !== 'ready') {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25).unref());
  }
  return true;
}

/**
 * A rate limit shared by every process of one guard name: a Bottleneck limiter on Redis
 * (datastore 'ioredis'), refilled gradually like the provider's bucket. Weights are whole units
 * (Redis keeps them as integers): a call heavier than the burst goes when the bucket is full and
 * leaves it in debt, as the in-process bucket does.
 */
export class SharedBucket {
  readonly limiter: Bottleneck;
  plan: BucketPlan;
  private settings: ReturnType<typeof sharedRefillSettings>;

  constructor(
    readonly name: string,
    plan: BucketPlan,
    connection: Bottleneck.IORedisConnection,
    private readonly id: string,
  ) {
    this.plan = plan;
    this.settings = sharedRefillSettings(plan);
    const { heartbeatInterval, ...refill } = this.settings;
    this.limiter = makeFast(
      new Bottleneck({
        datastore: 'ioredis',
        connection,
        id,
        clearDatastore: false,
        timeout: KEY_TIMEOUT_MS,
        heartbeatInterval,
        // Empty at first, also when Bottleneck recreates lost keys: a bucket whose history is
        // gone must not hand out a full burst to a provider that may have none left.
        reservoir: 0,
        ...refill,
      }),
    );
    this.limiter.on('error', () => {});
    // The keys may predate this process (another config, an older run): this config wins.
    void this.limiter
      .ready()
      .then(() => this.limiter.updateSettings(refill))
      .catch(() => {});
  }

  get capacity(): number {
    return this.settings.reservoirIncreaseMaximum;
  }

  /** How many processes used this bucket since `sinceMs` (epoch ms), read from Bottleneck's own client registry. */
  activeClients(client: Redis, sinceMs: number): Promise<number> {
    return client.zcount(`b_${this.id}_client_last_seen`, sinceMs, '+inf');
  }

  /** Waits until `weight` (rounded up) can go, cluster-wide. */
  async take(weight: number): Promise<number> {
    const units = Math.ceil(weight);
    if (units <= 0) return 0;
    const now = Math.min(units, this.capacity);
    await this.limiter.schedule({ weight: now }, () => Promise.resolve());
    if (units > now) await this.limiter.incrementReservoir(-(units - now));
    return units;
  }

  /** Gives back unused weight, never above the burst (best effort: Redis may be gone). */
  refund(weight: number): void {
    const units = Math.floor(weight);
    if (units <= 0) return;
    void this.limiter
      .currentReservoir()
      .then((current) => {
        const room = this.capacity - (current ?? this.capacity);
        const give = Math.min(units, room);
        return give > 0 ? this.limiter.incrementReservoir(give) : undefined;
      })
      .catch(() => {});
  }

  /** A new plan (live config change, a newly learned limit), written for every process. */
  replan(plan: BucketPlan): void {
    const next = sharedRefillSettings(plan);
    this.plan = plan;
    if (JSON.stringify(next) === JSON.stringify(this.settings)) return;
    this.settings = next;
    const { heartbeatInterval: _h, ...refill } = next;
    void Promise.resolve(this.limiter.updateSettings(refill)).catch(() => {});
  }

  async close(): Promise<void> {
    await Promise.resolve(this.limiter.disconnect(false)).catch(() => {});
  }
}
