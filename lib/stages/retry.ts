import pRetry, { AbortError } from 'p-retry';
import type { CallContext, Next, Stage } from '../pipeline';
import type { ResolvedConfig } from '../config/options';
import type { GuardEmitter } from '../events';
import type { ErrorClassification } from '../providers/adapter';
import { isGuardError } from '../errors';
import { AttemptTimeoutError } from '../attempt';
import { sleep } from '../internal/time';
import { nativeSignal } from '../internal/signals';

/** A retryable error response, carried through p-retry; the last one goes back to the SDK. */
class RetryableResponse extends Error {
  constructor(
    readonly response: Response,
    readonly classification: ErrorClassification,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${response.status} (${classification.reason})`);
  }
}

/**
 * An attempt that threw, wrapped in an Error of this realm: p-retry tests `instanceof Error`,
 * which fetch's own errors fail under test runners that use another realm (jest).
 */
class AttemptFailed extends Error {
  constructor(readonly original: unknown) {
    super('attempt failed');
  }
}

export interface RetryDeps {
  emitter: GuardEmitter;
  onRetry: () => void;
}

/** The capped exponential backoff for retry `n` (1-based), with the configured jitter. */
export function backoffMs(n: number, retry: ResolvedConfig['retry'], random: () => number = Math.random): number {
  const cap = Math.min(retry.maxDelayMs, retry.minDelayMs * retry.factor ** (n - 1));
  switch (retry.jitter) {
    case 'full':
      return random() * cap;
    case 'equal':
      return cap / 2 + (random() * cap) / 2;
    case 'none':
      return cap;
  }
}

/** An error response rebuilt from its text (read once to classify it), told never to be retried by the SDK. */
async function readErrorResponse(response: Response): Promise<{ text: string; response: Response }> {
  const text = await response.text().catch(() => '');
  const headers = new Headers(response.headers);
  // The guard is the one retry authority: not even a per-request `maxRetries` may stack on it.
  headers.set('x-should-retry', 'false');
  return { text, response: new Response(text, { status: response.status, statusText: response.statusText, headers }) };
}

/** An error answer: handed back when final, thrown as a RetryableResponse when it may be retried. */
async function errorAnswer(ctx: CallContext, response: Response): Promise<Response> {
  const read = await readErrorResponse(response);
  // Classified on the provider's own headers (the rebuilt ones forbid SDK retries).
  const classification = ctx.adapter.classifyError(response.status, response.headers, read.text);
  if (!classification.retryable) return read.response;
  throw new RetryableResponse(read.response, classification, ctx.adapter.retryAfterMs(response.headers));
}

function isReplayable(body: RequestInit['body']): boolean {
  return !(typeof body === 'object' && body !== null && (body instanceof ReadableStream || Symbol.asyncIterator in body));
}

/**
 * Retries with p-retry: exponential backoff with full jitter, or the provider's Retry-After when it
 * is at most maxRetryAfterMs (else the call fails at once). Retried: 408, 409, 429 (not
 * insufficient_quota), 5xx, 529, connection errors and per-attempt timeouts, as `x-should-retry`
 * allows. Never retried: other 4xx, guard refusals, an open breaker, a caller's abort, a body that
 * cannot be sent twice. Every wait is abortable and maxRetryTimeMs bounds the whole call.
 */
export class RetryStage implements Stage {
  readonly name = 'retry';

  constructor(private readonly deps: RetryDeps) {}

  async run(ctx: CallContext, next: Next): Promise<Response> {
    const started = performance.now();
    // The first attempt runs on its own; p-retry takes over only when it failed in a retryable
    // way (it then sees that failure as its own first attempt), sparing the common path its cost.
    try {
      const response = await next(ctx);
      return response.ok ? response : await errorAnswer(ctx, response);
    } catch (error) {
      return this.retried(ctx, next, error instanceof RetryableResponse ? error : new AttemptFailed(error), started);
    }
  }

  /** The retries after a first attempt that failed (apart from `run`, whose common path then allocates none of this). */
  private async retried(ctx: CallContext, next: Next, first: RetryableResponse | AttemptFailed, started: number): Promise<Response> {
    const retry = ctx.config.retry;
    const retries = isReplayable(ctx.init.body) ? retry.retries : 0;
    const attempt = async (): Promise<Response> => {
      let response: Response;
      try {
        response = await next(ctx);
      } catch (error) {
        throw new AttemptFailed(error);
      }
      return response.ok ? response : errorAnswer(ctx, response);
    };
    const native = ctx.signal && nativeSignal(ctx.signal);
    try {
      return await pRetry(
        (n) => {
          if (n === 1) throw first;
          return attempt();
        },
        {
          retries,
          minTimeout: 0,
          factor: 1,
          randomize: false,
          maxRetryTime: retry.maxRetryTimeMs ?? Number.POSITIVE_INFINITY,
          ...(native ? { signal: native.signal } : {}),
          shouldRetry: async ({ error, attemptNumber }) => {
            if (native?.signal.aborted) return false;
            let delay: number;
            let reason: string;
            let status: number | undefined;
            if (error instanceof RetryableResponse) {
              status = error.response.status;
              reason = error.classification.reason;
              if (error.retryAfterMs !== undefined) {
                // A Retry-After beyond our bound fails now, with the provider's own error.
                if (error.retryAfterMs > retry.maxRetryAfterMs) return false;
                delay = error.retryAfterMs;
              } else delay = backoffMs(attemptNumber, retry);
            } else {
              const original = error instanceof AttemptFailed ? error.original : error;
              if (isGuardError(original)) return false; // refusals and an open breaker are final
              reason = original instanceof AttemptTimeoutError ? 'attempt_timeout' : 'connection_error';
              delay = backoffMs(attemptNumber, retry);
            }
            const remaining = (retry.maxRetryTimeMs ?? Infinity) - (performance.now() - started);
            if (delay >= remaining) return false;
            this.deps.onRetry();
            if (this.deps.emitter.has('retry')) {
              this.deps.emitter.emit('retry', { ...ctx.eventBase(), attempt: attemptNumber + 1, delayMs: Math.round(delay), reason, ...(status !== undefined ? { status } : {}) });
            }
            await sleep(delay, native?.signal);
            return true;
          },
        },
      );
    } catch (error) {
      // Retries exhausted on an error response: the SDK turns it into its own error class.
      if (error instanceof RetryableResponse) return error.response;
      if (error instanceof AttemptFailed) throw error.original;
      if (error instanceof AbortError) throw error.originalError;
      throw error;
    } finally {
      native?.release();
    }
  }
}
