export { createGuardedClient, type Guarded, type GuardController } from './create-guarded-client';
export { createGuardedFetch, type GuardedFetch } from './create-guarded-fetch';
export { runWithScope, type GuardScope } from './scope';
export {
  GuardError,
  RateLimitExceededError,
  BudgetExceededError,
  CircuitOpenError,
  GuardConfigError,
  UnpricedModelError,
  SharedStateUnavailableError,
  RealtimeDurationExceededError,
  isGuardError,
  type GuardErrorCode,
  type BudgetStage,
  type RateLimitReason,
  type RateLimitWindow,
} from './errors';
export { guardErrorToHttp, type GuardHttpError } from './http';
export { createAdminHandler, type AdminHandler, type AdminOptions } from './admin';
export type { MetricsRegistry } from './telemetry/metrics';
export type { GuardEventMap, GuardEventName, GuardListener, CallEventBase } from './events';
export type { GuardStatus, GuardTotals, LearnedLimit } from './status';
export type {
  GuardOptions,
  BudgetRule,
  BudgetScope,
  BudgetWindow,
  LimitsOptions,
  RetryOptions,
  BreakerOptions,
  CostOptions,
  ModelPrice,
  ScopeLimits,
  TierOptions,
} from './config/options';
export type { Logger } from './logger';
export type {
  ProviderAdapter,
  ParsedRequest,
  Usage,
  RateLimitSnapshot,
  LimitWindow,
  ErrorClassification,
  StreamUsageReader,
  Endpoint,
} from './providers/adapter';
export { anthropicAdapter } from './providers/anthropic';
export { openaiAdapter } from './providers/openai';
export { SETTINGS } from './config/settings';
