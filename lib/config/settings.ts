/**
 * Every setting, declared once: option path, env var, type, default, range, description.
 * Validation, env parsing, `guard.status().config` and the README env table all derive from it.
 */
import { BUDGET_SCOPES } from '../scope-kinds';

export type SettingType =
  | { kind: 'boolean' }
  | { kind: 'integer'; min: number; max: number; unit?: 'ms' }
  | { kind: 'number'; min: number; max: number; exclusiveMin?: boolean; unit?: 'usd' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'string'; pattern?: RegExp; patternText?: string }
  /** A budget: a positive USD amount, or 'none' to have no budget at that scope. */
  | { kind: 'budget' }
  /** A window: sliding ('30s', '1m', '1h', '1d', '30d', a number of ms, 'none'), or 'calendar-day' | '-week' | '-month' (UTC). */
  | { kind: 'window' }
  /** A positive number of tokens, or 'none' to have no quota at that scope. */
  | { kind: 'quota' };

export interface Setting {
  /** Where the resolved value lives; also the option path unless `envOnly`. */
  readonly path: string;
  /** The env var without its `LLM_GUARD_` prefix; `LLM_GUARD_<PROVIDER>_<env>` overrides it. */
  readonly env: string;
  readonly type: SettingType;
  /** undefined = unset. */
  readonly default: unknown;
  readonly description: string;
  /** Set in code through another option (named here), not at `path`. */
  readonly envOnly?: string;
}

const ms = (min: number, max = 86_400_000) => ({ kind: 'integer', min, max, unit: 'ms' }) as const;
const perMinute = { kind: 'number', min: 0, max: 1e12, exclusiveMin: true } as const;
const bool = { kind: 'boolean' } as const;


export const SETTINGS = [
  { path: 'enabled', env: 'ENABLED', type: bool, default: true, description: 'false = plain pass-through: no limits, retries by the SDK, no cost guard' },
  { path: 'name', env: 'NAME', type: { kind: 'string', pattern: /^[A-Za-z0-9_.:-]{1,64}$/, patternText: '1–64 letters, digits or _ . : -' }, default: 'default', description: 'guard name: labels events and metrics, prefixes shared Redis keys' },
  { path: 'limits.maxConcurrent', env: 'MAX_CONCURRENT', type: { kind: 'integer', min: 1, max: 100_000 }, default: 10, description: 'calls in flight at once' },
  { path: 'limits.requestsPerMinute', env: 'REQUESTS_PER_MINUTE', type: perMinute, default: undefined, description: 'request ceiling; unset = learn from provider headers' },
  { path: 'limits.tokensPerMinute', env: 'TOKENS_PER_MINUTE', type: perMinute, default: undefined, description: 'input + output token ceiling' },
  { path: 'limits.inputTokensPerMinute', env: 'INPUT_TOKENS_PER_MINUTE', type: perMinute, default: undefined, description: 'input token ceiling' },
  { path: 'limits.outputTokensPerMinute', env: 'OUTPUT_TOKENS_PER_MINUTE', type: perMinute, default: undefined, description: 'output token ceiling (max tokens reserved at dispatch, refunded after)' },
  { path: 'limits.maxQueue', env: 'MAX_QUEUE', type: { kind: 'integer', min: 0, max: 10_000_000 }, default: 1000, description: 'calls waiting for a slot; beyond: RateLimitExceededError' },
  { path: 'limits.maxWaitMs', env: 'MAX_WAIT_MS', type: ms(0), default: 120_000, description: 'longest wait for a slot; beyond: RateLimitExceededError' },
  { path: 'limits.fairShare', env: 'FAIR_SHARE', type: { kind: 'enum', values: ['tenant', 'user', 'session', 'workflow', 'none'] }, default: 'tenant', description: 'when calls queue, capacity is dealt round-robin among the keys of this scope kind' },
  { path: 'limits.adaptive', env: 'ADAPTIVE', type: bool, default: true, description: 'follow provider rate-limit headers and 429s' },
  { path: 'retry.retries', env: 'MAX_RETRIES', type: { kind: 'integer', min: 0, max: 100 }, default: 3, description: 'retries after the first attempt' },
  { path: 'retry.minDelayMs', env: 'RETRY_MIN_DELAY_MS', type: ms(0, 3_600_000), default: 1000, description: 'backoff base delay' },
  { path: 'retry.maxDelayMs', env: 'RETRY_MAX_DELAY_MS', type: ms(0, 3_600_000), default: 30_000, description: 'backoff cap' },
  { path: 'retry.factor', env: 'RETRY_FACTOR', type: { kind: 'number', min: 1, max: 100 }, default: 2, description: 'backoff growth per attempt' },
  { path: 'retry.jitter', env: 'RETRY_JITTER', type: { kind: 'enum', values: ['full', 'equal', 'none'] }, default: 'full', description: 'full = random in [0, backoff]; equal = [backoff/2, backoff]' },
  { path: 'retry.maxRetryAfterMs', env: 'MAX_RETRY_AFTER_MS', type: ms(0), default: 60_000, description: 'a longer Retry-After fails at once, with `retryAfterMs`' },
  { path: 'retry.maxRetryTimeMs', env: 'MAX_RETRY_TIME_MS', type: ms(1), default: undefined, description: 'bound on a whole call, retries included; unset = no bound' },
  { path: 'timeoutMs', env: 'TIMEOUT_MS', type: ms(1), default: 600_000, description: 'per attempt, until the response headers arrive' },
  { path: 'breaker.enabled', env: 'BREAKER_ENABLED', type: bool, default: true, description: 'circuit breaker on provider faults (5xx, overload, timeouts, connection errors)' },
  { path: 'breaker.errorThresholdPercentage', env: 'BREAKER_ERROR_PERCENT', type: { kind: 'number', min: 0, max: 100, exclusiveMin: true }, default: 50, description: 'fault rate that opens the breaker' },
  { path: 'breaker.volumeThreshold', env: 'BREAKER_VOLUME', type: { kind: 'integer', min: 1, max: 1_000_000 }, default: 5, description: 'calls in the window before it may open' },
  { path: 'breaker.rollingWindowMs', env: 'BREAKER_WINDOW_MS', type: ms(100), default: 60_000, description: 'window the fault rate is measured over' },
  { path: 'breaker.resetTimeoutMs', env: 'BREAKER_RESET_MS', type: ms(1), default: 60_000, description: 'open time before one probe call (half-open)' },
  { path: 'breaker.perModel', env: 'BREAKER_PER_MODEL', type: bool, default: false, description: 'one breaker per model instead of one per guard' },
  { path: 'cost.maxCostPerCallUsd', env: 'MAX_COST_PER_CALL_USD', type: { kind: 'number', min: 0, max: 1e6, exclusiveMin: true, unit: 'usd' }, default: 5, description: 'worst-case cost of one call' },
  { path: 'cost.onOverBudget', env: 'ON_OVER_BUDGET', type: { kind: 'enum', values: ['reject', 'clamp'] }, default: 'reject', description: 'or clamp (lower max tokens to fit)' },
  ...BUDGET_SCOPES.flatMap((scope) => [
    { path: `budgetEnv.${scope}.limitUsd`, env: `BUDGET_${scope.toUpperCase()}_USD`, type: { kind: 'budget' }, default: scope === 'global' ? 50 : undefined, envOnly: 'cost.budgets', description: scope === 'global' ? 'budget of the whole guard; none = no global budget' : `budget per ${scope} scope` },
    { path: `budgetEnv.${scope}.window`, env: `BUDGET_${scope.toUpperCase()}_WINDOW`, type: { kind: 'window' }, default: '1h', envOnly: 'cost.budgets', description: `window of the ${scope} budget` },
  ] as const),
  ...BUDGET_SCOPES.flatMap((scope) => [
    { path: `quotaEnv.${scope}.limitTokens`, env: `QUOTA_${scope.toUpperCase()}_TOKENS`, type: { kind: 'quota' }, default: undefined, envOnly: 'cost.budgets', description: scope === 'global' ? 'token quota of the whole guard (input + output tokens)' : `token quota per ${scope} scope` },
    { path: `quotaEnv.${scope}.window`, env: `QUOTA_${scope.toUpperCase()}_WINDOW`, type: { kind: 'window' }, default: 'calendar-day', envOnly: 'cost.budgets', description: `window of the ${scope} token quota` },
  ] as const),
  { path: 'defaultTier', env: 'DEFAULT_TIER', type: { kind: 'string', pattern: /^[A-Za-z0-9_.:-]{1,64}$/, patternText: '1–64 letters, digits or _ . : -' }, default: undefined, description: 'the tier of calls whose scope names none (one of `tiers`)' },
  { path: 'cost.budgetWaitMs', env: 'BUDGET_WAIT_MS', type: ms(0, 3_600_000), default: 30_000, description: 'a call a hard budget refuses only because of what calls in flight reserved waits this long for them to settle; 0 = refuse at once' },
  { path: 'cost.budgetEnforcement', env: 'BUDGET_ENFORCEMENT', type: { kind: 'enum', values: ['hard', 'soft'] }, default: 'hard', description: 'soft = warn and let through' },
  { path: 'cost.postCallOverrun', env: 'POST_CALL_OVERRUN', type: { kind: 'enum', values: ['warn', 'throw'] }, default: 'warn', description: 'or throw (BudgetExceededError with the response attached)' },
  { path: 'cost.minOutputTokens', env: 'MIN_OUTPUT_TOKENS', type: { kind: 'integer', min: 1, max: 1_000_000 }, default: 16, description: 'clamp never goes below this; below it the call is refused' },
  { path: 'cost.unpricedModel', env: 'UNPRICED_MODEL', type: { kind: 'enum', values: ['conservative', 'reject', 'allow'] }, default: 'conservative', description: "price an unknown model as the provider's dearest known model; or reject / allow" },
  { path: 'cost.pricesFile', env: 'PRICES_FILE', type: { kind: 'string' }, default: undefined, description: 'JSON of price overrides' },
  { path: 'cost.exactInputTokens', env: 'EXACT_INPUT_TOKENS', type: bool, default: false, description: "count input with the provider's token counter before the call (networked)" },
  { path: 'realtime.maxSessionUsd', env: 'REALTIME_MAX_SESSION_USD', type: { kind: 'number', min: 0, max: 1e6, exclusiveMin: true, unit: 'usd' }, default: 5, description: 'a Realtime session is stopped (response cancelled, socket closed) before it costs more' },
  { path: 'realtime.maxDurationMs', env: 'REALTIME_MAX_DURATION_MS', type: ms(1), default: 1_800_000, description: 'a Realtime session is stopped after this long' },
  { path: 'realtime.maxSessions', env: 'REALTIME_MAX_SESSIONS', type: { kind: 'integer', min: 1, max: 1_000_000 }, default: 100, description: 'Realtime sessions open at once per guard; one more is refused with RateLimitExceededError' },
  { path: 'redis', env: 'REDIS_URL', type: { kind: 'string', pattern: /^rediss?:\/\/./, patternText: 'a redis:// or rediss:// URL' }, default: undefined, description: 'shared rate limits, budgets and 429 pauses across processes (needs the ioredis package)' },
  { path: 'redisConnectTimeoutMs', env: 'REDIS_CONNECT_TIMEOUT_MS', type: ms(0, 600_000), default: 3000, description: 'a call made before Redis has first answered waits this long for it; only a failed or timed-out connection counts as an outage' },
  { path: 'redisFailure', env: 'REDIS_FAILURE', type: { kind: 'enum', values: ['local', 'reject'] }, default: 'local', description: 'when Redis is down: carry on with in-process limits and budgets (replayed to Redis when it is back), or refuse calls' },
  {
    path: 'fallbackModels',
    env: 'FALLBACK_MODELS',
    type: { kind: 'string', pattern: /^(?!.*\/\/)[\w.:/@-]+(\s*,\s*[\w.:/@-]+)*$/, patternText: 'model ids separated by commas, e.g. "claude-sonnet-4-6,claude-haiku-4-5"' },
    default: undefined,
    envOnly: 'fallback',
    description: 'models to fail over to on the same client, in order',
  },
  { path: 'routing', env: 'ROUTING', type: { kind: 'enum', values: ['primary', 'cost', 'latency'] }, default: 'primary', description: 'with `fallback` targets: try them in order, cheapest first, or fastest first' },
  { path: 'cooldownMs', env: 'COOLDOWN_MS', type: ms(0), default: 30_000, description: 'with `fallback` targets: how long one that failed is tried last' },
  { path: 'logLevel', env: 'LOG_LEVEL', type: { kind: 'enum', values: ['debug', 'info', 'warn', 'error', 'silent'] }, default: 'warn', description: 'console logger level (ignored with a custom `logger`)' },
] as const satisfies readonly Setting[];

export const SETTINGS_BY_PATH: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.path, s as Setting]));

/** Options that are objects or lists, validated by their own code, never read from one env var. */
export const STRUCTURED_OPTIONS = ['provider', 'logger', 'cost.budgets', 'cost.prices', 'limits.perScope', 'clientOptions', 'fallback', 'tiers'] as const;

/** Describes what a setting accepts, for errors and the README. */
export function allowedText(type: SettingType): string {
  switch (type.kind) {
    case 'boolean':
      return 'true or false';
    case 'integer':
      return `an integer from ${type.min} to ${type.max}${type.unit === 'ms' ? ' (milliseconds)' : ''}`;
    case 'number':
      return `a number ${type.exclusiveMin ? 'greater than' : 'from'} ${type.min}${type.exclusiveMin ? ' and at most' : ' to'} ${type.max}${type.unit === 'usd' ? ' (US dollars)' : ''}`;
    case 'enum':
      return `one of ${type.values.map((v) => `"${v}"`).join(', ')}`;
    case 'string':
      return type.patternText ?? 'a non-empty string';
    case 'budget':
      return 'a number of US dollars greater than 0, or "none"';
    case 'window':
      return 'a duration such as "30s", "1m", "1h", "1d", "30d", a number of milliseconds (at least 1000), "none", or "calendar-day", "calendar-week", "calendar-month"';
    case 'quota':
      return 'a number of tokens greater than 0, or "none"';
  }
}
