/**
 * Validation of the structured options — budget rules, price overrides, per-scope limits,
 * fallback targets — that are objects or lists rather than one value per env var.
 */
import { GuardConfigError, describeValue } from '../errors';
import { budgetWindowText, parseBudgetWindow, type BudgetWindowValue } from '../internal/windows';
import { BUDGET_SCOPES, SCOPE_KINDS, type BudgetScope } from '../scope-kinds';
import { BAD, coerce } from './coerce';
import { allowedText, type SettingType } from './settings';
import type { FallbackTarget, ResolvedBudgetRule, ResolvedConfig, ResolvedTier } from './options';

/** Each target: `{ model }` with a model id, a guarded client, or `{ client, model? }`. */
export function validateFallback(value: unknown): FallbackTarget[] {
  if (value === undefined) return [];
  const allowed = 'a list of { model: "<model id>" }, guarded clients, or { client: <guarded client>, model?: "<model id>" }';
  if (!Array.isArray(value)) throw new GuardConfigError('fallback', describeValue(value), allowed);
  const isGuarded = (v: unknown) => typeof v === 'object' && v !== null && typeof (v as { guard?: unknown }).guard === 'object';
  return value.map((entry: unknown, i) => {
    const e = entry as Record<string, unknown>;
    const modelOk = e?.model === undefined || (typeof e.model === 'string' && e.model.trim() !== '');
    if (isGuarded(entry)) return entry as FallbackTarget;
    if (typeof entry === 'object' && entry !== null && modelOk && (isGuarded(e.client) || (e.client === undefined && typeof e.model === 'string'))) return entry as FallbackTarget;
    throw new GuardConfigError(`fallback[${i}]`, describeValue(entry), allowed);
  });
}

const RULE_KEYS = ['scope', 'limitUsd', 'limitTokens', 'window', 'enforcement', 'warnAt'];

/**
 * Checks a `cost.budgets` list (or a tier's): each rule a budget (`limitUsd`) or a token quota
 * (`limitTokens`), one of each per scope, so which one refused is never ambiguous.
 */
export function validateBudgetRules(value: unknown, defaultEnforcement: 'hard' | 'soft', where = 'cost.budgets', scopes: readonly BudgetScope[] = BUDGET_SCOPES): ResolvedBudgetRule[] {
  if (!Array.isArray(value)) throw new GuardConfigError(where, describeValue(value), 'an array of budget rules');
  const seen = new Set<string>();
  return value.map((rule: unknown, i) => {
    const at = `${where}[${i}]`;
    if (typeof rule !== 'object' || rule === null) throw new GuardConfigError(at, describeValue(rule), 'an object { scope, limitUsd or limitTokens, window?, enforcement?, warnAt? }');
    const r = rule as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!RULE_KEYS.includes(key)) throw new GuardConfigError(`${at}.${key}`, 'an unknown key', `one of ${RULE_KEYS.join(', ')}`);
    }
    if (!scopes.includes(r.scope as BudgetScope)) {
      throw new GuardConfigError(`${at}.scope`, describeValue(r.scope), `one of ${scopes.map((s) => `"${s}"`).join(', ')}`);
    }
    if ((r.limitUsd === undefined) === (r.limitTokens === undefined)) {
      throw new GuardConfigError(at, r.limitUsd === undefined ? 'neither limitUsd nor limitTokens' : 'both limitUsd and limitTokens', 'exactly one: limitUsd (a budget in US dollars) or limitTokens (a token quota)');
    }
    const unit = r.limitUsd !== undefined ? 'usd' : 'tokens';
    const field = unit === 'usd' ? 'limitUsd' : 'limitTokens';
    const limit = r[field];
    if (typeof limit !== 'number' || !Number.isFinite(limit) || limit <= 0) {
      throw new GuardConfigError(`${at}.${field}`, describeValue(limit), unit === 'usd' ? 'a number of US dollars greater than 0' : 'a number of tokens greater than 0');
    }
    const id = `${r.scope as string}/${unit}`;
    if (seen.has(id)) throw new GuardConfigError(`${at}.scope`, describeValue(r.scope), `a scope not already used by another ${unit === 'usd' ? 'budget' : 'quota'}`);
    seen.add(id);
    const window = r.window === undefined ? (unit === 'usd' ? { ms: 3_600_000 } : { ms: 86_400_000, calendar: 'day' as const }) : parseBudgetWindow(r.window);
    if (window === undefined) throw new GuardConfigError(`${at}.window`, describeValue(r.window), allowedText({ kind: 'window' }));
    if (r.enforcement !== undefined && r.enforcement !== 'hard' && r.enforcement !== 'soft') {
      throw new GuardConfigError(`${at}.enforcement`, describeValue(r.enforcement), '"hard" or "soft"');
    }
    if (r.warnAt !== undefined && (typeof r.warnAt !== 'number' || !(r.warnAt > 0 && r.warnAt <= 1))) {
      throw new GuardConfigError(`${at}.warnAt`, describeValue(r.warnAt), 'a fraction greater than 0 and at most 1');
    }
    return budgetRule(r.scope as BudgetScope, unit, limit, window, (r.enforcement as 'hard' | 'soft' | undefined) ?? defaultEnforcement, r.warnAt as number | undefined);
  });
}

/** A resolved rule from its parts. */
export function budgetRule(scope: BudgetScope, unit: 'usd' | 'tokens', limit: number, window: BudgetWindowValue, enforcement: 'hard' | 'soft', warnAt: number | undefined): ResolvedBudgetRule {
  return {
    scope,
    ...(unit === 'usd' ? { limitUsd: limit } : { limitTokens: limit }),
    window: window.ms,
    ...(window.calendar ? { calendar: window.calendar } : {}),
    windowText: budgetWindowText(window),
    enforcement,
    warnAt,
  };
}

/** Checks `tiers` (and that `defaultTier`, when set, names one). */
export function validateTiers(value: unknown, defaultTier: string | undefined, defaultEnforcement: 'hard' | 'soft'): Record<string, ResolvedTier> {
  const out: Record<string, ResolvedTier> = {};
  if (value !== undefined) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GuardConfigError('tiers', describeValue(value), 'an object of tier name → { perScope?, budgets? }');
    for (const [name, tier] of Object.entries(value)) {
      if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) throw new GuardConfigError(`tiers.${name}`, 'a tier name', '1–64 letters, digits or _ . : -');
      if (typeof tier !== 'object' || tier === null || Array.isArray(tier)) throw new GuardConfigError(`tiers.${name}`, describeValue(tier), 'an object { perScope?, budgets? }');
      const t = tier as Record<string, unknown>;
      for (const key of Object.keys(t)) if (key !== 'perScope' && key !== 'budgets') throw new GuardConfigError(`tiers.${name}.${key}`, 'an unknown key', 'one of perScope, budgets');
      out[name] = {
        name,
        perScope: t.perScope === undefined ? undefined : validatePerScope(t.perScope, `tiers.${name}.perScope`),
        // The global budget is the guard's own: a tier sets its scopes' budgets only.
        budgets: t.budgets === undefined ? undefined : validateBudgetRules(t.budgets, defaultEnforcement, `tiers.${name}.budgets`, SCOPE_KINDS),
      };
    }
  }
  if (defaultTier !== undefined && !out[defaultTier]) {
    throw new GuardConfigError('defaultTier', JSON.stringify(defaultTier), Object.keys(out).length ? `one of the tiers: ${Object.keys(out).join(', ')}` : 'a tier defined in `tiers` (none is)');
  }
  return out;
}

const PRICE_FIELDS = ['inputPerMTok', 'outputPerMTok', 'cacheReadPerMTok', 'cacheWritePerMTok', 'cacheWrite1hPerMTok', 'maxOutputTokens'];

export function validatePrices(value: unknown, where = 'cost.prices'): ResolvedConfig['cost']['prices'] {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GuardConfigError(where, describeValue(value), 'an object mapping model ids to { inputPerMTok, outputPerMTok, … }');
  }
  const out: ResolvedConfig['cost']['prices'] = {};
  for (const [model, price] of Object.entries(value)) {
    const p = price as Record<string, unknown>;
    if (typeof p !== 'object' || p === null) throw new GuardConfigError(`${where}.${model}`, describeValue(price), 'an object { inputPerMTok, outputPerMTok, … }');
    for (const key of Object.keys(p)) {
      if (!PRICE_FIELDS.includes(key)) throw new GuardConfigError(`${where}.${model}.${key}`, 'an unknown key', `one of ${PRICE_FIELDS.join(', ')}`);
      const n = p[key];
      if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
        throw new GuardConfigError(`${where}.${model}.${key}`, describeValue(n), 'a number from 0 (USD per million tokens)');
      }
    }
    for (const required of ['inputPerMTok', 'outputPerMTok']) {
      if (p[required] === undefined) throw new GuardConfigError(`${where}.${model}.${required}`, 'nothing', 'a number from 0 (USD per million tokens)');
    }
    out[model] = p as unknown as ResolvedConfig['cost']['prices'][string];
  }
  return out;
}

const SCOPE_LIMIT_FIELDS: Record<string, SettingType> = {
  maxConcurrent: { kind: 'integer', min: 1, max: 100_000 },
  requestsPerMinute: { kind: 'number', min: 0, max: 1e12, exclusiveMin: true },
};

export function validatePerScope(value: unknown, where = 'limits.perScope'): ResolvedConfig['limits']['perScope'] {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GuardConfigError(where, describeValue(value), `an object { ${SCOPE_KINDS.map((k) => `${k}?`).join(', ')} }`);
  }
  const out: ResolvedConfig['limits']['perScope'] = {};
  for (const [scope, limits] of Object.entries(value)) {
    if (!(SCOPE_KINDS as readonly string[]).includes(scope)) {
      throw new GuardConfigError(`${where}.${scope}`, 'an unknown scope', `one of ${SCOPE_KINDS.join(', ')}`);
    }
    if (typeof limits !== 'object' || limits === null) {
      throw new GuardConfigError(`${where}.${scope}`, describeValue(limits), 'an object { maxConcurrent?, requestsPerMinute? }');
    }
    for (const [key, v] of Object.entries(limits)) {
      const type = SCOPE_LIMIT_FIELDS[key];
      if (!type) throw new GuardConfigError(`${where}.${scope}.${key}`, 'an unknown key', `one of ${Object.keys(SCOPE_LIMIT_FIELDS).join(', ')}`);
      if (coerce(type, v, false) === BAD) throw new GuardConfigError(`${where}.${scope}.${key}`, describeValue(v), allowedText(type));
    }
    out[scope as 'user'] = { ...limits };
  }
  return out;
}
