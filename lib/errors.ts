import type { GuardScope } from './scope-kinds';
import type { Usage } from './providers/adapter';

// A brand survives the dual ESM/CJS package hazard, where `instanceof` does not.
const BRAND = Symbol.for('guarded-llm.GuardError');

export type GuardErrorCode =
  | 'rate_limited'
  | 'budget_exceeded'
  | 'circuit_open'
  | 'invalid_config'
  | 'unpriced_model'
  | 'shared_state_unavailable'
  | 'duration_exceeded';

export interface GuardErrorOptions {
  cause?: unknown;
  retryAfterMs?: number;
}

/**
 * Base of every error the guard itself raises. Messages never say "timed out" and the name is
 * never `AbortError`: the SDKs would turn such an error into their own timeout/abort class.
 */
export abstract class GuardError extends Error {
  abstract readonly code: GuardErrorCode;
  abstract readonly httpStatus: number;
  readonly retryAfterMs?: number;

  constructor(message: string, options: GuardErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.retryAfterMs !== undefined) this.retryAfterMs = Math.max(0, Math.ceil(options.retryAfterMs));
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** A plain object for logs and HTTP bodies. */
  toJSON(): Record<string, unknown> {
    const { stack: _stack, cause: _cause, ...rest } = this as unknown as Record<string, unknown>;
    return { name: this.name, message: this.message, code: this.code, httpStatus: this.httpStatus, ...rest };
  }
}

export type RateLimitReason = 'queue_full' | 'max_wait' | 'too_heavy' | 'retry_after_too_long' | 'max_sessions';

/** The numbers behind a refusal, where one limit is known (for X-RateLimit-* headers). */
export interface RateLimitWindow {
  /** Requests allowed per minute. */
  limit: number;
  remaining: number;
  /** Until the next request would be allowed. */
  resetMs: number;
}

export class RateLimitExceededError extends GuardError {
  override readonly name = 'RateLimitExceededError' as const;
  readonly code = 'rate_limited' as const;
  readonly httpStatus = 429;
  readonly reason: RateLimitReason;
  /** Which setting refused: 'maxQueue', 'maxWaitMs', 'perScope.user', a token limit… */
  readonly limit?: string;
  readonly window?: RateLimitWindow;

  constructor(message: string, options: GuardErrorOptions & { reason: RateLimitReason; limit?: string; window?: RateLimitWindow }) {
    super(message, options);
    this.reason = options.reason;
    if (options.limit !== undefined) this.limit = options.limit;
    if (options.window !== undefined) this.window = options.window;
  }

  static is(err: unknown): err is RateLimitExceededError {
    return findGuardError(err)?.code === 'rate_limited';
  }
}

/** 'realtime': a Realtime session stopped at its cap or a budget (guard.realtime). */
export type BudgetStage = 'pre-call' | 'stream' | 'post-call' | 'realtime';

export interface BudgetExceededDetails {
  stage: BudgetStage;
  /** Which budget refused: 'call' for the per-call cap, 'realtime' for a Realtime session's cap, else the rule's scope. */
  scope: 'call' | 'realtime' | keyof GuardScope | 'global';
  /** The budget's key, e.g. 'user:alice' or 'global'. */
  key: string;
  /** What refused: a budget in US dollars (and the per-call cap), or a token quota. Default 'usd'. */
  unit?: 'usd' | 'tokens';
  /** A budget's limit and spend; NaN for a token quota (see limitTokens). */
  limitUsd: number;
  spentUsd: number;
  /** The call's worst case (or, cut mid-stream, its cost so far) in US dollars. */
  estimatedUsd: number;
  /** A token quota's limit, its spend, and the call's worst case in tokens. */
  limitTokens?: number;
  spentTokens?: number;
  estimatedTokens?: number;
  /** Usage consumed before a stream was cut (stage 'stream'). */
  partial?: Usage;
  /** What the call cost and was charged (stages 'stream' and 'post-call'). */
  costUsd?: number;
  /** The paid-for result (stage 'post-call'): nothing is thrown away. */
  response?: unknown;
}

export class BudgetExceededError extends GuardError {
  override readonly name = 'BudgetExceededError' as const;
  readonly code = 'budget_exceeded' as const;
  readonly httpStatus = 402;
  readonly stage: BudgetStage;
  readonly scope: BudgetExceededDetails['scope'];
  readonly key: string;
  readonly unit: 'usd' | 'tokens';
  /** A budget's limit and spend in US dollars; NaN when a token quota refused (see `unit`). */
  readonly limitUsd: number;
  readonly spentUsd: number;
  readonly estimatedUsd: number;
  readonly limitTokens?: number;
  readonly spentTokens?: number;
  readonly estimatedTokens?: number;
  readonly partial?: Usage;
  readonly costUsd?: number;
  response?: unknown;

  constructor(message: string, details: BudgetExceededDetails, options: GuardErrorOptions = {}) {
    super(message, options);
    this.stage = details.stage;
    this.scope = details.scope;
    this.key = details.key;
    this.unit = details.unit ?? 'usd';
    this.limitUsd = details.limitUsd;
    this.spentUsd = details.spentUsd;
    this.estimatedUsd = details.estimatedUsd;
    if (details.limitTokens !== undefined) this.limitTokens = details.limitTokens;
    if (details.spentTokens !== undefined) this.spentTokens = details.spentTokens;
    if (details.estimatedTokens !== undefined) this.estimatedTokens = details.estimatedTokens;
    if (details.partial) this.partial = details.partial;
    if (details.costUsd !== undefined) this.costUsd = details.costUsd;
    if (details.response !== undefined) {
      // Kept off JSON output: a response body is not a log field.
      Object.defineProperty(this, 'response', { value: details.response, enumerable: false, writable: true });
    }
  }

  static is(err: unknown): err is BudgetExceededError {
    return findGuardError(err)?.code === 'budget_exceeded';
  }
}

/** A Realtime session reached `realtime.maxDurationMs`: the guard cancelled its response and closed it. */
export class RealtimeDurationExceededError extends GuardError {
  override readonly name = 'RealtimeDurationExceededError' as const;
  readonly code = 'duration_exceeded' as const;
  readonly httpStatus = 408;

  constructor(
    readonly maxDurationMs: number,
    readonly sessionId: string,
  ) {
    super(`Realtime session ${sessionId} stopped: it reached its longest duration of ${maxDurationMs} ms (realtime.maxDurationMs).`);
  }

  static is(err: unknown): err is RealtimeDurationExceededError {
    return findGuardError(err)?.code === 'duration_exceeded';
  }
}

export class CircuitOpenError extends GuardError {
  override readonly name = 'CircuitOpenError' as const;
  readonly code = 'circuit_open' as const;
  readonly httpStatus = 503;
  /** The breaker's key: the guard name, or `name:model` with per-model breakers. */
  readonly breaker: string;

  constructor(message: string, options: GuardErrorOptions & { breaker: string }) {
    super(message, options);
    this.breaker = options.breaker;
  }

  static is(err: unknown): err is CircuitOpenError {
    return findGuardError(err)?.code === 'circuit_open';
  }
}

export class GuardConfigError extends GuardError {
  override readonly name = 'GuardConfigError' as const;
  readonly code = 'invalid_config' as const;
  /** 500: the configuration is wrong; 400 for a call's own value (its scope, such as an unknown tier). */
  readonly httpStatus: 400 | 500;
  /** The option path (`limits.maxConcurrent`) or env var (`LLM_GUARD_MAX_CONCURRENT`) at fault. */
  readonly setting: string;
  /** What would have been accepted. */
  readonly allowed: string;

  /** `given` is already described for humans, e.g. `"abc"` or `-3 (number)`. */
  constructor(setting: string, given: string, allowed: string, kind: 'option' | 'env var' | 'argument' = 'option') {
    super(`Invalid ${kind} ${setting}: expected ${allowed}, got ${given}`);
    this.httpStatus = setting === 'scope' || setting.startsWith('scope.') ? 400 : 500;
    this.setting = setting;
    this.allowed = allowed;
  }

  static is(err: unknown): err is GuardConfigError {
    return findGuardError(err)?.code === 'invalid_config';
  }
}

export class UnpricedModelError extends GuardError {
  override readonly name = 'UnpricedModelError' as const;
  readonly code = 'unpriced_model' as const;
  readonly httpStatus = 400;
  readonly model: string;
  readonly provider: string;

  constructor(model: string, provider: string) {
    super(
      `No price is known for model "${model}" (${provider}); nothing was sent. ` +
        'Add it to cost.prices / LLM_GUARD_PRICES_FILE, or set cost.unpricedModel to "conservative" or "allow".',
    );
    this.model = model;
    this.provider = provider;
  }

  static is(err: unknown): err is UnpricedModelError {
    return findGuardError(err)?.code === 'unpriced_model';
  }
}

/** Distributed mode with `redisFailure: 'reject'`: Redis is unreachable, so the call is refused unsent. */
export class SharedStateUnavailableError extends GuardError {
  override readonly name = 'SharedStateUnavailableError' as const;
  readonly code = 'shared_state_unavailable' as const;
  readonly httpStatus = 503;

  constructor(what: string, options: GuardErrorOptions = {}) {
    super(
      `Refused: Redis is unreachable, so ${what} cannot be checked across processes (redisFailure = "reject"); nothing was sent. ` +
        'Set redisFailure to "local" to carry on with in-process limits and budgets while Redis is down.',
      { retryAfterMs: 1000, ...options },
    );
  }

  static is(err: unknown): err is SharedStateUnavailableError {
    return findGuardError(err)?.code === 'shared_state_unavailable';
  }
}

function hasBrand(err: unknown): err is GuardError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true;
}

/** The guard error itself, or the one an SDK wrapped (APIConnectionError, AnthropicError) in `cause`. */
export function findGuardError(err: unknown): GuardError | undefined {
  let current = err;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    if (hasBrand(current)) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True when `err` is a guard error, or wraps one in its `cause` chain. */
export function isGuardError(err: unknown): err is GuardError {
  return findGuardError(err) !== undefined;
}

/** Describes a value for an error message: `"abc" (string)`, `-3 (number)`. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array`;
  if (typeof value === 'object') return 'an object';
  return `${String(value)} (${typeof value})`;
}
