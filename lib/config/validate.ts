/**
 * Validation of the structured options — budget rules, price overrides, per-scope limits,
 * fallback targets — that are objects or lists rather than one value per env var.
 */
import { GuardConfigError, describeValue } from '../errors';
import { parseWindow, windowText } from '../internal/windows';
import { BUDGET_SCOPES, SCOPE_KINDS, type BudgetScope } from '../scope-kinds';
import { BAD, coerce } from './coerce';
import { allowedText, type SettingType } from './settings';
import type { FallbackTarget, ResolvedBudgetRule, ResolvedConfig } from './options';

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

/** Checks a `cost.budgets` list; one rule per scope, so which budget refused is never ambiguous. */
export function validateBudgetRules(value: unknown, defaultEnforcement: 'hard' | 'soft'): ResolvedBudgetRule[] {
  if (!Array.isArray(value)) throw new GuardConfigError('cost.budgets', describeValue(value), 'an array of budget rules');
  const seen = new Set<string>();
  return value.map((rule: unknown, i) => {
    const at = `cost.budgets[${i}]`;
    if (typeof rule !== 'object' || rule === null) throw new GuardConfigError(at, describeValue(rule), 'an object { scope, limitUsd, window?, enforcement?, warnAt? }');
    const r = rule as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!['scope', 'limitUsd', 'window', 'enforcement', 'warnAt'].includes(key)) {
        throw new GuardConfigError(`${at}.${key}`, 'an unknown key', 'one of scope, limitUsd, window, enforcement, warnAt');
      }
    }
    if (!BUDGET_SCOPES.includes(r.scope as BudgetScope)) {
      throw new GuardConfigError(`${at}.scope`, describeValue(r.scope), `one of ${BUDGET_SCOPES.map((s) => `"${s}"`).join(', ')}`);
    }
    if (seen.has(r.scope as string)) throw new GuardConfigError(`${at}.scope`, describeValue(r.scope), 'a scope not already used by another rule');
    seen.add(r.scope as string);
    if (typeof r.limitUsd !== 'number' || !Number.isFinite(r.limitUsd) || r.limitUsd <= 0) {
      throw new GuardConfigError(`${at}.limitUsd`, describeValue(r.limitUsd), 'a number of US dollars greater than 0');
    }
    const window = r.window === undefined ? 3_600_000 : parseWindow(r.window);
    if (window === undefined) throw new GuardConfigError(`${at}.window`, describeValue(r.window), allowedText({ kind: 'window' }));
    if (r.enforcement !== undefined && r.enforcement !== 'hard' && r.enforcement !== 'soft') {
      throw new GuardConfigError(`${at}.enforcement`, describeValue(r.enforcement), '"hard" or "soft"');
    }
    if (r.warnAt !== undefined && (typeof r.warnAt !== 'number' || !(r.warnAt > 0 && r.warnAt <= 1))) {
      throw new GuardConfigError(`${at}.warnAt`, describeValue(r.warnAt), 'a fraction greater than 0 and at most 1');
    }
    return {
      scope: r.scope as BudgetScope,
      limitUsd: r.limitUsd,
      window,
      windowText: windowText(window),
      enforcement: (r.enforcement as 'hard' | 'soft' | undefined) ?? defaultEnforcement,
      warnAt: r.warnAt as number | undefined,
    };
  });
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

export function validatePerScope(value: unknown): ResolvedConfig['limits']['perScope'] {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GuardConfigError('limits.perScope', describeValue(value), `an object { ${SCOPE_KINDS.map((k) => `${k}?`).join(', ')} }`);
  }
  const out: ResolvedConfig['limits']['perScope'] = {};
  for (const [scope, limits] of Object.entries(value)) {
    if (!(SCOPE_KINDS as readonly string[]).includes(scope)) {
      throw new GuardConfigError(`limits.perScope.${scope}`, 'an unknown scope', `one of ${SCOPE_KINDS.join(', ')}`);
    }
    if (typeof limits !== 'object' || limits === null) {
      throw new GuardConfigError(`limits.perScope.${scope}`, describeValue(limits), 'an object { maxConcurrent?, requestsPerMinute? }');
    }
    for (const [key, v] of Object.entries(limits)) {
      const type = SCOPE_LIMIT_FIELDS[key];
      if (!type) throw new GuardConfigError(`limits.perScope.${scope}.${key}`, 'an unknown key', `one of ${Object.keys(SCOPE_LIMIT_FIELDS).join(', ')}`);
      if (coerce(type, v, false) === BAD) throw new GuardConfigError(`limits.perScope.${scope}.${key}`, describeValue(v), allowedText(type));
    }
    out[scope as 'user'] = { ...limits };
  }
  return out;
}
