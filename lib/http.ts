import { findGuardError, RateLimitExceededError } from './errors';

/** An HTTP answer for a failed call: status, headers and a JSON body, for any web framework. */
export interface GuardHttpError {
  status: number;
  headers: Record<string, string>;
  body: { error: { type: string; message: string; retryAfterMs?: number } & Record<string, unknown> };
}

const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));

/** The status and headers of a provider error (the SDKs' APIError), when it has them. */
function providerError(err: unknown): { status: number; retryAfter?: string } | undefined {
  const e = err as { status?: unknown; headers?: { get?(name: string): string | null } };
  if (typeof e !== 'object' || e === null || typeof e.status !== 'number') return undefined;
  const retryAfter = typeof e.headers?.get === 'function' ? (e.headers.get('retry-after') ?? undefined) : undefined;
  return { status: e.status, ...(retryAfter ? { retryAfter } : {}) };
}

/**
 * Turns what a guarded call threw into the answer a web backend should give its own client:
 * 429 for a rate limit (with Retry-After, and X-RateLimit-Limit / -Remaining / -Reset where one
 * limit refused), 402 for a budget, 503 for an open breaker or unreachable shared state, 400 for
 * an unpriced model; a provider's 429 or overload stays 429 / 503 with its Retry-After; anything
 * else is a 502 (provider) or 500 whose body says nothing about internals.
 */
export function guardErrorToHttp(err: unknown): GuardHttpError {
  const guard = findGuardError(err);
  if (guard) {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (guard.retryAfterMs !== undefined) headers['retry-after'] = seconds(guard.retryAfterMs);
    if (guard instanceof RateLimitExceededError || guard.code === 'rate_limited') {
      const window = (guard as RateLimitExceededError).window;
      if (window) {
        headers['x-ratelimit-limit'] = String(window.limit);
        headers['x-ratelimit-remaining'] = String(Math.max(0, Math.floor(window.remaining)));
        headers['x-ratelimit-reset'] = seconds(window.resetMs);
      }
    }
    const { name: _n, httpStatus: _s, code, message, retryAfterMs, ...details } = guard.toJSON() as Record<string, unknown> & { code: string; message: string; retryAfterMs?: number };
    // Budget errors may carry the paid-for response: not a body for an error answer.
    delete details.response;
    return {
      status: guard.httpStatus,
      headers,
      body: { error: { type: code, message, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}), ...details } },
    };
  }
  const provider = providerError(err);
  if (provider) {
    const status = provider.status === 429 ? 429 : provider.status >= 500 ? 503 : 502;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (provider.retryAfter && (status === 429 || status === 503)) headers['retry-after'] = provider.retryAfter;
    const type = status === 429 ? 'provider_rate_limited' : status === 503 ? 'provider_unavailable' : 'provider_error';
    return { status, headers, body: { error: { type, message: `The model provider answered ${provider.status}.` } } };
  }
  return { status: 500, headers: { 'content-type': 'application/json' }, body: { error: { type: 'internal_error', message: 'Internal error.' } } };
}
