import type { ProviderAdapter } from '../providers/adapter';
import type { Logger } from '../logger';

import type { BudgetScope, ScopeKind } from '../scope-kinds';
import type { CalendarKind } from '../money/calendar';

export type { BudgetScope } from '../scope-kinds';
export type BudgetWindow = '30s' | '1m' | '1h' | '1d' | '30d' | 'none' | 'calendar-day' | 'calendar-week' | 'calendar-month' | (string & {}) | number;

/** A budget (`limitUsd`) or a token quota (`limitTokens`): one of the two. */
export interface BudgetRule {
  scope: BudgetScope;
  /** US dollars. */
  limitUsd?: number;
  /** Tokens: every billed input and output token counts. */
  limitTokens?: number;
  /**
   * Sliding ('1h': never more than the limit in any hour) or calendar ('calendar-day', UTC:
   * everything resets at midnight). Default '1h' for a budget, 'calendar-day' for a quota.
   */
  window?: BudgetWindow;
  /** hard = refuse; soft = warn and let through. Default: cost.budgetEnforcement. */
  enforcement?: 'hard' | 'soft';
  /** Emit `budget:warning` when spent + reserved crosses this fraction of the limit. */
  warnAt?: number;
}

/** Fairness limits for one user, tenant, session or workflow. */
export interface ScopeLimits {
  maxConcurrent?: number;
  /** A bucket of this many, refilled over the minute: "10 per minute" lets 10 go at once. */
  requestsPerMinute?: number;
}

/** Per-model price overrides in USD per million tokens. */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
  cacheReadPerMTok?: number;
  cacheWritePerMTok?: number;
  cacheWrite1hPerMTok?: number;
  /** The model's largest output, used as max tokens when a request sets none. */
  maxOutputTokens?: number;
}

export interface LimitsOptions {
  maxConcurrent?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  inputTokensPerMinute?: number;
  outputTokensPerMinute?: number;
  maxQueue?: number;
  maxWaitMs?: number;
  adaptive?: boolean;
  /**
   * When calls queue, the capacity is dealt round-robin among the keys of this scope kind that
   * have calls waiting (one tenant's flood cannot starve the others). Default 'tenant'.
   */
  fairShare?: ScopeKind | 'none';
  perScope?: Partial<Record<ScopeKind, ScopeLimits>>;
}

export interface RetryOptions {
  retries?: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
  jitter?: 'full' | 'equal' | 'none';
  maxRetryAfterMs?: number;
  maxRetryTimeMs?: number;
}

export interface BreakerOptions {
  enabled?: boolean;
  errorThresholdPercentage?: number;
  volumeThreshold?: number;
  rollingWindowMs?: number;
  resetTimeoutMs?: number;
  perModel?: boolean;
}

export interface CostOptions {
  maxCostPerCallUsd?: number;
  onOverBudget?: 'reject' | 'clamp';
  budgets?: BudgetRule[];
  budgetEnforcement?: 'hard' | 'soft';
  prices?: Record<string, ModelPrice>;
  pricesFile?: string;
  unpricedModel?: 'reject' | 'conservative' | 'allow';
  postCallOverrun?: 'throw' | 'warn';
  minOutputTokens?: number;
  exactInputTokens?: boolean;
  /**
   * How long a call that a hard budget would refuse only because of what calls in flight have
   * reserved waits for them to settle (first come, first served). 0 = refuse at once.
   */
  budgetWaitMs?: number;
}

/** Realtime sessions (guard.realtime): caps per session and on how many are open at once. */
export interface RealtimeOptions {
  /** A session is stopped before it costs more than this (US dollars). */
  maxSessionUsd?: number;
  /** A session is stopped after this long. */
  maxDurationMs?: number;
  /** Sessions open at once per guard; one more is refused with RateLimitExceededError. */
  maxSessions?: number;
}

/** A tier (free, pro…): its per-scope limits and scope budgets replace the top-level ones for calls in it. */
export interface TierOptions {
  perScope?: LimitsOptions['perScope'];
  /** Budgets and quotas of user, tenant, session or workflow scopes (the global budget always applies). */
  budgets?: BudgetRule[];
}

/** Everything is optional: unset values come from `LLM_GUARD_*` env vars, then defaults. */
export interface GuardOptions {
  /** Wire format of the client; recognised from the client when omitted. */
  provider?: 'anthropic' | 'openai' | ProviderAdapter;
  enabled?: boolean;
  name?: string;
  limits?: LimitsOptions;
  /** A number is shorthand for `{ retries: n }`. */
  retry?: number | RetryOptions;
  /** false disables the breaker. */
  breaker?: false | BreakerOptions;
  /** Per attempt, until the response headers arrive. */
  timeoutMs?: number;
  cost?: CostOptions;
  /** Realtime sessions opened through guard.realtime(). */
  realtime?: RealtimeOptions;
  /** A redis:// URL or an ioredis client: share limits and budgets across processes. */
  redis?: string | object;
  /** How long a call made before Redis has first answered waits for it (process start is not an outage). */
  redisConnectTimeoutMs?: number;
  redisFailure?: 'local' | 'reject';
  logger?: Logger;
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /**
   * Where a call goes when this client is rate-limited or down: another model on this client,
   * another guarded client of the same wire format (its own key, region or host, limiter,
   * breaker and prices), or such a client with a model of its own.
   */
  fallback?: FallbackTarget[];
  /** How a call picks among this client and its fallbacks: in order, cheapest, or fastest. */
  routing?: 'primary' | 'cost' | 'latency';
  /** How long a target that failed is tried last. */
  cooldownMs?: number;
  /** Tiers by name; a call's is `scope.tier`, else `defaultTier`. */
  tiers?: Record<string, TierOptions>;
  defaultTier?: string;
}

/** A fallback target: `{ model }`, a guarded client, or `{ client, model }`. */
export type FallbackTarget = { model: string } | { readonly guard: object } | { client: { readonly guard: object }; model?: string };

/** Options after defaults, env and validation: every leaf has its final value. */
export interface ResolvedConfig {
  enabled: boolean;
  name: string;
  limits: Required<Omit<LimitsOptions, 'requestsPerMinute' | 'tokensPerMinute' | 'inputTokensPerMinute' | 'outputTokensPerMinute' | 'perScope'>> &
    Pick<LimitsOptions, 'requestsPerMinute' | 'tokensPerMinute' | 'inputTokensPerMinute' | 'outputTokensPerMinute'> & {
      perScope: NonNullable<LimitsOptions['perScope']>;
    };
  retry: Required<Omit<RetryOptions, 'maxRetryTimeMs'>> & { maxRetryTimeMs: number | undefined };
  breaker: Required<BreakerOptions>;
  timeoutMs: number;
  cost: Required<Omit<CostOptions, 'budgets' | 'prices' | 'pricesFile'>> & {
    budgets: ResolvedBudgetRule[];
    prices: Record<string, ModelPrice>;
    pricesFile: string | undefined;
  };
  realtime: Required<RealtimeOptions>;
  redis: string | object | undefined;
  redisConnectTimeoutMs: number;
  redisFailure: 'local' | 'reject';
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  fallback: FallbackTarget[];
  routing: 'primary' | 'cost' | 'latency';
  cooldownMs: number;
  tiers: Record<string, ResolvedTier>;
  defaultTier: string | undefined;
}

/** A budget or quota rule after validation: exactly one of limitUsd (a budget) and limitTokens (a quota) is set. */
export interface ResolvedBudgetRule {
  scope: BudgetScope;
  limitUsd?: number;
  limitTokens?: number;
  /** A sliding window's length; a calendar window's nominal length. */
  window: number;
  calendar?: CalendarKind;
  windowText: string;
  enforcement: 'hard' | 'soft';
  warnAt: number | undefined;
}

export interface ResolvedTier {
  name: string;
  perScope: NonNullable<LimitsOptions['perScope']> | undefined;
  budgets: ResolvedBudgetRule[] | undefined;
}
