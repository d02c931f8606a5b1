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
 * The innermost step: one HTTP attempt with its own AbortController (the caller's abort, the
 * per-attempt timeout and a mid-stream budget abort all stop it), and a tap on a successful body
 * (found again with `tapOf(response)`).
 */
export function createAttempt(deps: AttemptDeps): Next {
  return async function attempt(ctx) {
    const controller = new AbortController();
    const callerSignal = ctx.signal;
    const onCallerAbort = () => controller.abort(abortReason(callerSignal!));
    if (callerSignal) {
      if (isAborted(callerSignal)) throw abortReason(callerSignal);
      onAbort(callerSignal, onCallerAbort);
    }
    const timeoutMs = ctx.config.timeoutMs;
    let timedOut = false;
    // One timer per attempt: without headers within timeoutMs the attempt is aborted; once a body
    // is tapped, the same timer (restarted) lets it go when nobody reads it for as long.
    let tap: ResponseTap | undefined = undefined;
    const timer = setTimeout(() => {
      if (tap) return tap.letGo();
      timedOut = true;
      controller.abort(new AttemptTimeoutError(timeoutMs));
    }, timeoutMs);
    timer.unref();
    deps.onAttempt(ctx);
    let response: Response;
    try {
      response = await deps.fetch(ctx.url, { ...ctx.init, signal: controller.signal });
    } catch (error) {
      clearTimeout(timer);
      if (callerSignal) offAbort(callerSignal, onCallerAbort);
      const failure = timedOut ? new AttemptTimeoutError(timeoutMs) : error;
      deps.onAttemptError?.(ctx, failure);
      throw failure;
    }
    const tapped = response.ok && ctx.request.billable && response.body !== null;
    if (tapped) timer.refresh();
    else clearTimeout(timer);
    deps.onResponse(ctx, response);
    if (!tapped) {
      if (callerSignal && (!response.ok || response.body === null)) offAbort(callerSignal, onCallerAbort);
      return response;
    }
    const streaming = ctx.request.stream && (response.headers.get('content-type') ?? '').includes('text/event-stream');
    tap = new ResponseTap(response, {
      usageFromJson: (json) => ctx.adapter.usageFromJson(ctx.request, json) ?? estimatedFromText(ctx, json),
      streamReader: streaming ? ctx.adapter.createStreamUsageReader(ctx.request, textTokenWeight) : undefined,
      inputTokensEstimate: ctx.inputTokens,
      abortUpstream: (reason) => controller.abort(reason),
      idleMs: timeoutMs,
      idleTimer: timer,
    });
    if (callerSignal) tap.onEnd(() => offAbort(callerSignal, onCallerAbort));
    return tap.response;
  };
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
