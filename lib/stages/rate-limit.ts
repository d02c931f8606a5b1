import type { CallContext, Next, Stage } from '../pipeline';
import type { TrafficLimiter } from '../limiter/traffic-limiter';
import { tapOf } from '../internal/response-tap';

/** Output tokens reserved for a call that sets no cap, trued up to the actual after its response. */
export const DEFAULT_OUTPUT_RESERVATION = 1024;

/**
 * Innermost stage: every attempt takes a limiter slot (concurrency, request and token rates,
 * per-scope limits) and holds it while the provider works — for a stream, until its body ends.
 */
export class RateLimitStage implements Stage {
  readonly name = 'rateLimit';

  constructor(private readonly limiter: TrafficLimiter) {}

  async run(ctx: CallContext, next: Next): Promise<Response> {
    if (!ctx.request.billable) return next(ctx);
    const limiter = this.limiter;
    const output = ctx.request.endpoint === 'embeddings' ? 0 : (ctx.request.maxOutputTokens ?? DEFAULT_OUTPUT_RESERVATION);
    const acquired = limiter.acquire(ctx.scope, () => ({ input: ctx.input.current(), output }), ctx.signal, ctx.request.model, ctx.tier);
    const lease = acquired instanceof Promise ? await acquired : acquired;
    ctx.report.queuedMs += lease.waitedMs;
    let response: Response;
    try {
      response = await next(ctx);
    } catch (error) {
      limiter.observeFailure(lease);
      lease.settle();
      throw error;
    }
    limiter.observe(lease, response, ctx.adapter);
    const tap = tapOf(response);
    if (!tap) {
      // An error response: the provider generated nothing. After a 429 the reservation stays
      // spent: the provider's bucket is empty, and handing it back would send the next call
      // straight into another 429.
      lease.settle(response.status === 429 ? undefined : 0);
    } else {
      // A JSON body is complete when its headers arrive; a stream is in flight until it ends.
      if (!ctx.request.stream) lease.releaseSlot();
      // An estimated usage (the host reported none) trues up the output only.
      tap.onEnd((end) => lease.settle(end.usage?.outputTokens, end.usage && !end.usage.estimated ? end.usage.inputTokens : undefined));
    }
    return response;
  }
}
