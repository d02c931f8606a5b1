import type { CallContext, Next } from './pipeline';
import { ResponseTap } from './internal/response-tap';
import { textTokenWeight } from './money/estimate';
import { abortReason, isAborted, offAbort, onAbort } from './internal/signals';
import type { Usage } from './providers/adapter';

/**
 * Raised when an attempt got no response headers within `timeoutMs`. Its message says "timed out"
 * on purpose: when retries are exhausted, the SDK turns it into its own APIConnectionTimeoutError.
 */
export class AttemptTimeoutError extends Error {
  override readonly name = 'AttemptTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`Request timed out: no response headers within ${timeoutMs} ms (guard timeoutMs)`);
  }
}

export interface AttemptDeps {
  fetch: typeof fetch;
  /** Counts every attempt that reached the network, and each provider 429. */
  onAttempt: (ctx: CallContext) => void;
  onResponse: (ctx: CallContext, response: Response) => void;
  /** An attempt that got no response (connection error, timeout, abort). */
  onAttemptError?: (ctx: CallContext, error: unknown) => void;
}

/**
 * The innermost step: one HTTP attempt that the caller's abort, the per-attempt timeout and a
 * mid-stream budget abort all stop (through an AbortController of its own, unless the caller's
 * signal comes first: see callerEndsFirst), and a tap on a successful body (found again with
 * `tapOf(response)`).
 */
export function createAttempt(deps: AttemptDeps): Next {
  return async function attempt(ctx) {
    const callerSignal = ctx.signal;
    if (callerSignal && isAborted(callerSignal)) throw abortReason(callerSignal);
    const timeoutMs = ctx.config.timeoutMs;
    // A controller of the attempt's own only when the caller's signal cannot do its work: see callerEndsFirst.
    const own = callerSignal !== undefined && callerEndsFirst(ctx.init, callerSignal, timeoutMs, ctx.sdkTimeoutMs) ? undefined : new AbortController();
    const following = own !== undefined && callerSignal !== undefined;
    const onCallerAbort = () => own!.abort(abortReason(callerSignal!));
    if (following) onAbort(callerSignal, onCallerAbort);
    let timedOut = false;
    // One timer per attempt: without headers within timeoutMs the attempt is aborted (by the
    // caller's signal, when that comes first); once a body is tapped, the same timer (restarted)
    // lets it go when nobody reads it for as long.
    let tap: ResponseTap | undefined = undefined;
    const timer = setTimeout(() => {
      if (tap) return tap.letGo();
      if (!own) return;
      timedOut = true;
      own.abort(new AttemptTimeoutError(timeoutMs));
    }, timeoutMs);
    timer.unref();
    deps.onAttempt(ctx);
    let response: Response;
    try {
      response = await deps.fetch(ctx.url, own ? { ...ctx.init, signal: own.signal } : ctx.init);
    } catch (error) {
      clearTimeout(timer);
      if (following) offAbort(callerSignal, onCallerAbort);
      const failure = timedOut ? new AttemptTimeoutError(timeoutMs) : error;
      deps.onAttemptError?.(ctx, failure);
      throw failure;
    }
    const tapped = response.ok && ctx.request.billable && response.body !== null;
    if (tapped) timer.refresh();
    else clearTimeout(timer);
    deps.onResponse(ctx, response);
    if (!tapped) {
      if (following && (!response.ok || response.body === null)) offAbort(callerSignal, onCallerAbort);
      return response;
    }
    const streaming = ctx.request.stream && (response.headers.get('content-type') ?? '').includes('text/event-stream');
    tap = new ResponseTap(response, {
      usageFromJson: (json) => ctx.adapter.usageFromJson(ctx.request, json) ?? estimatedFromText(ctx, json),
      streamReader: streaming ? ctx.adapter.createStreamUsageReader(ctx.request, textTokenWeight) : undefined,
      inputTokensEstimate: ctx.inputTokens,
      // Without a controller of its own, the tap stops a stream by cancelling its body, which ends the request too.
      abortUpstream: own ? (reason) => own.abort(reason) : NO_ABORT,
      idleMs: timeoutMs,
      idleTimer: timer,
    });
    if (following) tap.onEnd(() => offAbort(callerSignal, onCallerAbort));
    return tap.response;
  };
}

const NO_ABORT = () => {};

/**
 * Whether the caller's signal ends this attempt no later than the attempt's own timeout would.
 * The official SDKs abort the signal they pass at their timeout (which runs until the response
 * headers, across every attempt): the client's (`sdkTimeoutMs`, the longest of the clients that
 * send through the guard), or one they announce in whole seconds as X-Stainless-Timeout (Anthropic
 * always; OpenAI for a per-request timeout), taken as the client's when it rounds to the same
 * second, else as the longest it may be. Then the caller's signal alone stops the request (fetch
 * follows it; a stream is stopped by cancelling its body) and the attempt needs no AbortController
 * and no listener of its own: on Node 20 they cost ~7 µs a call, a third of what the guard adds.
 */
export function callerEndsFirst(init: RequestInit, signal: AbortSignal, timeoutMs: number, sdkTimeoutMs: number | undefined): boolean {
  if (!(signal instanceof AbortSignal)) return false;
  const headers = init.headers;
  const announced = headers instanceof Headers ? headers.get('x-stainless-timeout') : null;
  const seconds = announced === null || announced === '' ? NaN : Number(announced);
  let callerMs = sdkTimeoutMs;
  if (seconds >= 0) callerMs = sdkTimeoutMs !== undefined && Math.trunc(sdkTimeoutMs / 1000) === seconds ? sdkTimeoutMs : seconds * 1000 + 999;
  return callerMs !== undefined && callerMs <= timeoutMs;
}

/**
 * A body that reports no usage (some OpenAI-compatible hosts and proxies): the input estimate
 * plus the output counted from the text it carried. Undefined when it carried nothing countable.
 */
function estimatedFromText(ctx: CallContext, json: unknown): Usage | undefined {
  const text = ctx.adapter.outputTextFromJson?.(ctx.request, json);
  if (text === undefined) return undefined;
  return { inputTokens: ctx.inputTokens, outputTokens: Math.ceil(textTokenWeight(text)), estimated: true };
}
