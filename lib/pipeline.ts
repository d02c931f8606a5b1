import type { GuardScope } from './scope-kinds';
import type { ParsedRequest, ProviderAdapter } from './providers/adapter';
import type { CallEventBase } from './events';
import type { ResolvedConfig, ResolvedTier } from './config/options';
import type { PriceBook } from './money/prices';
import type { InputWeight } from './money/input-tokens';

/** Everything a call starts with: the request as sent by the SDK, and the settings it runs under. */
export interface CallInit {
  callId: number;
  adapter: ProviderAdapter;
  request: ParsedRequest;
  scope: Readonly<GuardScope>;
  /** Aborted when the caller gives up (the user's signal or the SDK's own timeout). */
  signal: AbortSignal | undefined;
  /** When the caller's signal aborts at the latest: its SDK client's timeout, if known (see callerEndsFirst). */
  sdkTimeoutMs?: number | undefined;
  url: string;
  /** The SDK's request (method, headers, body). */
  init: RequestInit;
  /** The settings in force when the call was made: one call never sees two configs. */
  config: ResolvedConfig;
  prices: PriceBook;
  /** Its input tokens, as weighed before it was sent. */
  input: InputWeight;
  /** The tier it runs in (its per-scope limits and scope budgets), if any. */
  tier?: ResolvedTier | undefined;
}

/**
 * What a call produced, for events, metrics and traces; each field has one writer: `attempts`
 * the attempt step, `queuedMs` the rate-limit stage, `costUsd` the cost guard.
 */
export class CallReport {
  /** HTTP attempts that reached the network. */
  attempts = 0;
  /** Milliseconds spent waiting for the rate limiter, summed over attempts. */
  queuedMs = 0;
  /** What the call was charged, once known. */
  costUsd: number | undefined;
  /** Metrics or tracing follow this call (its attempts are reported to them). */
  observed = false;
  readonly startedAt = performance.now();
}

/** One guarded call (all its attempts), as every stage sees it. Read-only: a stage that changes the request passes a new one inward. */
export class CallContext implements Readonly<CallInit> {
  readonly callId: number;
  readonly adapter: ProviderAdapter;
  readonly request: ParsedRequest;
  readonly scope: Readonly<GuardScope>;
  readonly signal: AbortSignal | undefined;
  readonly sdkTimeoutMs: number | undefined;
  readonly url: string;
  readonly init: RequestInit;
  readonly config: ResolvedConfig;
  readonly prices: PriceBook;
  readonly input: InputWeight;
  readonly tier: ResolvedTier | undefined;

  constructor(
    init: CallInit,
    readonly report: CallReport = new CallReport(),
  ) {
    this.callId = init.callId;
    this.adapter = init.adapter;
    this.request = init.request;
    this.scope = init.scope;
    this.signal = init.signal;
    this.sdkTimeoutMs = init.sdkTimeoutMs;
    this.url = init.url;
    this.init = init.init;
    this.config = init.config;
    this.prices = init.prices;
    this.input = init.input;
    this.tier = init.tier;
  }

  /** Input tokens the guard counts for this call now (see InputWeight). */
  get inputTokens(): number {
    return this.input.current();
  }

  get startedAt(): number {
    return this.report.startedAt;
  }

  /** The same call with its output cap lowered on the wire (a clamp): the context inner stages get. */
  withMaxOutputTokens(tokens: number): CallContext {
    const body = this.adapter.withMaxOutputTokens(this.request, tokens);
    return new CallContext({ ...this, request: { ...this.request, body, maxOutputTokens: tokens }, init: { ...this.init, body: JSON.stringify(body) } }, this.report);
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
 * A successful body's usage is watched by its tap: `tapOf(response)`.
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
