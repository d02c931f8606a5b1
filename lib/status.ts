/**
 * `guard.status()`: a JSON-serialisable snapshot of one guard — its config (no secrets), the
 * limiter, the breaker, the budgets and the totals.
 */
import type { ConfigSources } from './config/resolve';
import type { ResolvedConfig } from './config/options';
import type { BudgetState } from './money/ledger';
import type { Dimension } from './limiter/bucket';
import { redactUrl } from './internal/redact';
import { ledgerKey, ruleLimit, ruleUnit, shownKey } from './money/budget-lines';
import { calendarPeriod } from './money/calendar';

export interface GuardTotals {
  /** Calls made through the guard (each may have several attempts). */
  calls: number;
  /** HTTP attempts that reached the network. */
  attempts: number;
  retries: number;
  provider429s: number;
  costUsd: number;
}

/** One rate limit as the provider's headers gave it (adaptive mode). */
export interface LearnedLimit {
  limitPerMinute: number;
  remaining: number;
  /** Milliseconds until it is full again, when the provider says. */
  resetMs: number | undefined;
}

export interface GuardStatus {
  name: string;
  provider: string;
  enabled: boolean;
  config: Record<string, unknown>;
  /** Where each setting came from: 'default', 'option' or the env var's name. */
  sources: ConfigSources;
  limiter: {
    running: number;
    queued: number;
    paused: boolean;
    pausedUntil?: string;
    /** How the request rate is set: configured, probing (nothing learned yet), learned from headers, or unlimited. */
    mode: 'configured' | 'probing' | 'learned' | 'unlimited';
    /** What the provider's headers said at their last read, by limit (requests, tokens, inputTokens, outputTokens). */
    learned?: Partial<Record<Dimension, LearnedLimit>>;
    /** Live per-scope limiter keys, by scope kind. */
    scopes?: Record<string, number>;
  };
  breaker: { state: 'closed' | 'open' | 'half-open'; retryAfterMs?: number; breakers?: Record<string, string> };
  /** Budgets (USD) and token quotas; a quota's row has unit 'tokens', its *Tokens fields, and NaN (null in JSON) in the USD ones. */
  budgets: Array<{
    scope: string;
    key: string;
    unit: 'usd' | 'tokens';
    limitUsd: number;
    spentUsd: number;
    reservedUsd: number;
    limitTokens?: number;
    spentTokens?: number;
    reservedTokens?: number;
    window: string;
    enforcement: 'hard' | 'soft';
    nextReleaseAt?: string;
    /** A calendar window: when it starts over. */
    resetsAt?: string;
  }>;
  totals: GuardTotals;
  /** Realtime sessions open now (guard.realtime), and the cap on them. */
  realtime: { open: number; maxSessions: number };
  /** Distributed mode: the Redis connection, and charges made while it was down that it has not seen yet. */
  shared?: { redis: 'connecting' | 'up' | 'down'; where: string; prefix: string; unsyncedCharges: number };
}

/** JSON-safe copy of the config: an ioredis client is shown as '[client]', URLs lose passwords, targets are labels. */
export function publicConfig(config: ResolvedConfig, targetLabel: (target: ResolvedConfig['fallback'][number]) => string): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify({ ...config, redis: undefined, fallback: config.fallback.map(targetLabel) })) as Record<string, unknown>;
  if (typeof config.redis === 'string') copy.redis = redactUrl(config.redis);
  else if (config.redis) copy.redis = '[client]';
  return copy;
}

/** Budget and quota rows: the global ones, then the scope keys with most spent (up to 100 from the ledger). */
export function budgetRows(config: ResolvedConfig, states: BudgetState[]): GuardStatus['budgets'] {
  const out: GuardStatus['budgets'] = [];
  const rules = [...config.cost.budgets, ...Object.values(config.tiers).flatMap((t) => t.budgets ?? [])];
  const seen = new Set<string>();
  for (const rule of rules) {
    const global = ledgerKey(rule, 'global');
    const matching =
      rule.scope === 'global' ?
        [states.find((s) => s.key === global) ?? { key: global, spent: 0, reserved: 0, nextReleaseAt: undefined }]
      : states.filter((s) => { const shown = shownKey(s.key); return shown.unit === ruleUnit(rule) && shown.key.startsWith(`${rule.scope}:`); });
    for (const state of matching) {
      if (seen.has(state.key)) continue;
      seen.add(state.key);
      const tokens = ruleUnit(rule) === 'tokens';
      out.push({
        scope: rule.scope,
        key: shownKey(state.key).key,
        unit: ruleUnit(rule),
        limitUsd: tokens ? NaN : (state.limit ?? ruleLimit(rule)),
        spentUsd: tokens ? NaN : state.spent,
        reservedUsd: tokens ? NaN : state.reserved,
        ...(tokens ? { limitTokens: state.limit ?? ruleLimit(rule), spentTokens: state.spent, reservedTokens: state.reserved } : {}),
        window: rule.windowText,
        enforcement: rule.enforcement,
        ...(state.nextReleaseAt !== undefined ? { nextReleaseAt: new Date(state.nextReleaseAt).toISOString() } : {}),
        ...(rule.calendar ? { resetsAt: new Date(calendarPeriod(rule.calendar, Date.now()).end).toISOString() } : {}),
      });
    }
  }
  return out;
}
