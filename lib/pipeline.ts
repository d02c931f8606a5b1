import type { GuardScope } from './scope-kinds';
import type { ParsedRequest, ProviderAdapter } from './providers/adapter';
import type { CallEventBase } from './events';
import type { ResponseTap } from './internal/response-tap';

/** One guarded call (all its attempts), as every stage sees it. */
export class CallContext {
  /** Attempt number, 1-based; the retry stage moves it on. */
  attempt = 0;
  /** Milliseconds spent waiting for the rate limiter, summed over attempts. */
  queuedMs = 0;
  /** The tap on the last attempt's successful response: its usage and end. */
  tap: ResponseTap | undefined;
  /** What the call cost, once charged. */
  costUsd: number | undefined;
  /** Input tokens the guard counts for this call: an estimate, or exact when counted. */
  inputTokens: number;
  /** Re-reads the input count with what the guard has learned since (its estimate's calibration). */
  recount: () => number = () => this.inputTokens;
  /** Metrics or tracing follow this call (its attempts are reported to them). */
  observed = false;
  readonly startedAt = performance.now();

  constructor(
    readonly callId: number,
    readonly adapter: ProviderAdapter,
    readonly request: ParsedRequest,
    readonly scope: Readonly<GuardScope>,
    /** Aborted when the caller gives up (the user's signal or the SDK's own timeout). */
    readonly signal: AbortSignal | undefined,
    public url: string,
    /** The SDK's request; the cost guard may replace the body (clamped max tokens). */
    public init: RequestInit,
    inputTokens: number,
  ) {
    this.inputTokens = inputTokens;
  }

  /** The fields every per-call event carries. */
  eventBase(): CallEventBase {
    return {
      callId: this.callId,
      provider: this.adapter.name,
      model: this.request.model,
      endpoint: this.request.endpoint,
      scope: this.scope,
    };
  }
}

export type Next = (ctx: CallContext) => Promise<Response>;

/**
 * A pipeline stage: one `run(ctx, next)` method. A stage returns the Response that the SDK will
 * read (a non-2xx one too: the SDK turns it into its own error class), or throws a guard error.
 */
export interface Stage {
  readonly name: string;
  run(ctx: CallContext, next: Next): Promise<Response>;
  /** Stops timers and releases connections; called by guard.close(). */
  close?(): Promise<void> | void;
}

/** Composes stages so that the first is outermost: compose([a, b], send) runs a(b(send)). */
export function compose(stages: readonly Stage[], terminal: Next): Next {
  let next = terminal;
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i]!;
    const inner = next;
    next = (ctx) => stage.run(ctx, inner);
  }
  return next;
}
