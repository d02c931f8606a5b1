/** The fake provider's rate limits: continuously refilled buckets per API key, as the providers enforce them. */
import { TokenBucket } from './token-bucket';
import { rateLimitHeaders, type Buckets, type Dialect } from './wire';
import type { FakeLimits } from './fake-types';

/** What one request needs from each limit: one request, its input, and its max tokens as output (refunded after). */
export interface LimitNeeds {
  inputTokens: number;
  reserveOutput: number;
}

export class FakeRateLimits {
  private readonly buckets = new Map<string, Buckets>();

  constructor(private limits: FakeLimits = {}) {}

  /** New limits (and fresh buckets for every key). */
  set(limits: FakeLimits): void {
    this.limits = limits;
    this.buckets.clear();
  }

  clear(): void {
    this.buckets.clear();
  }

  bucketsFor(key: string): Buckets {
    let b = this.buckets.get(key);
    if (!b) {
      const burst = this.limits.burstSeconds ?? 1;
      const make = (limit: number | undefined) => (limit ? new TokenBucket(limit, burst) : undefined);
      b = {
        requests: make(this.limits.requestsPerMinute),
        tokens: make(this.limits.tokensPerMinute),
        inputTokens: make(this.limits.inputTokensPerMinute),
        outputTokens: make(this.limits.outputTokensPerMinute),
      };
      this.buckets.set(key, b);
    }
    return b;
  }

  /**
   * Admits a request of `key` (taking what it needs from every bucket) and returns the limit
   * headers to send; or refuses it with the 429 headers (Retry-After) when a bucket lacks room.
   */
  admit(key: string, dialect: Dialect, needs: LimitNeeds): { ok: true; headers: Record<string, string> } | { ok: false; headers: Record<string, string> } {
    const buckets = this.bucketsFor(key);
    const takes: Array<[TokenBucket | undefined, number]> = [
      [buckets.requests, 1],
      [buckets.tokens, needs.inputTokens + needs.reserveOutput],
      [buckets.inputTokens, needs.inputTokens],
      [buckets.outputTokens, needs.reserveOutput],
    ];
    const waitMs = Math.max(0, ...takes.map(([bucket, n]) => (bucket && n > 0 ? bucket.waitFor(n) : 0)));
    if (waitMs > 0) {
      const retry: Record<string, string> = { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) };
      if (dialect === 'openai') retry['retry-after-ms'] = String(Math.ceil(waitMs));
      return { ok: false, headers: { ...rateLimitHeaders(dialect, buckets), ...retry } };
    }
    for (const [bucket, n] of takes) bucket?.take(n);
    return { ok: true, headers: rateLimitHeaders(dialect, buckets) };
  }

  /** The limit headers of `key` as they stand (for a request that takes nothing, like count_tokens). */
  headers(key: string, dialect: Dialect): Record<string, string> {
    return rateLimitHeaders(dialect, this.bucketsFor(key));
  }

  /** Gives back output reserved as max tokens but not generated. */
  refundOutput(key: string, tokens: number): void {
    if (tokens <= 0) return;
    const buckets = this.bucketsFor(key);
    buckets.outputTokens?.refund(tokens);
    buckets.tokens?.refund(tokens);
  }
}
