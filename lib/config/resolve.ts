import parseDuration from 'parse-duration';
import { GuardConfigError, describeValue } from '../errors';
import { isLogger } from '../logger';
import { SETTINGS, STRUCTURED_OPTIONS, allowedText, type Setting, type SettingType } from './settings';
import type { BudgetScope, FallbackTarget, GuardOptions, ResolvedBudgetRule, ResolvedConfig } from './options';

export const ENV_PREFIX = 'LLM_GUARD_';

/** Where each resolved value came from: 'default', 'option', or the env var's name. */
export type ConfigSources = Record<string, string>;

export interface Resolved {
  config: ResolvedConfig;
  sources: ConfigSources;
}

type Bad = { bad: true };
const BAD: Bad = { bad: true };

/** Parses and checks one value; `fromEnv` values are strings and get lenient parsing. */
export function coerce(type: SettingType, value: unknown, fromEnv: boolean): unknown {
  switch (type.kind) {
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      if (!fromEnv || typeof value !== 'string') return BAD;
      const v = value.trim().toLowerCase();
      return v === 'true' || v === '1' || v === 'yes' || v === 'on' ? true : v === 'false' || v === '0' || v === 'no' || v === 'off' ? false : BAD;
    }
    case 'integer':
    case 'number': {
      let n: number;
      if (typeof value === 'number') n = value;
      else if (fromEnv && typeof value === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(value)) n = Number(value);
      else return BAD;
      if (!Number.isFinite(n) || (type.kind === 'integer' && !Number.isInteger(n))) return BAD;
      const tooLow = type.kind === 'number' && type.exclusiveMin ? n <= type.min : n < type.min;
      return tooLow || n > type.max ? BAD : n;
    }
    case 'enum': {
      if (typeof value !== 'string') return BAD;
      const v = fromEnv ? value.trim().toLowerCase() : value;
      return type.values.includes(v) ? v : BAD;
    }
    case 'string': {
      if (typeof value !== 'string' || value.trim() === '') return BAD;
      const v = value.trim();
      return type.pattern && !type.pattern.test(v) ? BAD : v;
    }
    case 'budget': {
      if (typeof value === 'string' && value.trim().toLowerCase() === 'none') return null;
      const n = typeof value === 'number' ? value : fromEnv && typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      return Number.isFinite(n) && n > 0 ? n : BAD;
    }
    case 'window':
      return parseWindow(value) ?? BAD;
  }
}

/** A budget window in ms: a duration string, a number of ms (≥ 1 s), or 'none' (Infinity). */
export function parseWindow(value: unknown): number | undefined {
  if (value === 'none' || value === Infinity) return Infinity;
  let ms: number | null;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string' && value.trim() !== '') {
    const text = value.trim().toLowerCase();
    ms = text === 'none' ? Infinity : /^\d+$/.test(text) ? Number(text) : parseDuration(text);
  } else return undefined;
  return ms !== null && Number.isFinite(ms) && ms >= 1000 ? ms : ms === Infinity ? Infinity : undefined;
}

function getPath(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const key of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = obj;
  for (const key of keys.slice(0, -1)) cur = (cur[key] ??= {}) as Record<string, unknown>;
  cur[keys[keys.length - 1]!] = value;
}

// Option groups and leaves the user may set, for catching typos like `limits.maxConcurent`.
const KNOWN_LEAVES = new Set<string>([...SETTINGS.filter((s) => !('envOnly' in s)).map((s) => s.path), ...STRUCTURED_OPTIONS]);
const KNOWN_GROUPS = new Set<string>(['limits', 'retry', 'breaker', 'cost']);

function checkKnownKeys(options: Record<string, unknown>, prefix = ''): void {
  for (const key of Object.keys(options)) {
    const path = prefix + key;
    const value = options[key];
    if (KNOWN_LEAVES.has(path) || value === undefined) continue;
    if (KNOWN_GROUPS.has(path)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new GuardConfigError(path, describeValue(value), 'an object');
      }
      checkKnownKeys(value as Record<string, unknown>, path + '.');
      continue;
    }
    const siblings = [...KNOWN_LEAVES, ...KNOWN_GROUPS]
      .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('.'))
      .map((p) => p.slice(prefix.length));
    throw new GuardConfigError(path, 'an unknown option', `one of ${siblings.join(', ')}`);
  }
}

/** `retry: 3` → `{ retries: 3 }`; `breaker: false` → `{ enabled: false }`. */
function normalise(options: GuardOptions): Record<string, unknown> {
  const out: Record<string, unknown> = { ...options };
  if (typeof options.retry === 'number') out.retry = { retries: options.retry };
  if (options.breaker === false) out.breaker = { enabled: false };
  return out;
}

function envName(setting: Setting, provider: string | undefined): string[] {
  const names = [`${ENV_PREFIX}${setting.env}`];
  if (provider) names.unshift(`${ENV_PREFIX}${provider.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_${setting.env}`);
  return names;
}

/**
 * Resolves every setting: explicit option > LLM_GUARD_<PROVIDER>_<NAME> > LLM_GUARD_<NAME> > default.
 * Any bad value throws GuardConfigError naming the option or env var, the value and what is allowed.
 */
export function resolveConfig(options: GuardOptions | undefined, env: NodeJS.ProcessEnv, provider?: string): Resolved {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new GuardConfigError('options', describeValue(options), 'an object (GuardOptions)', 'argument');
  }
  const given = normalise(options ?? {});
  checkKnownKeys(given);
  const flat: Record<string, unknown> = {};
  const sources: ConfigSources = {};

  for (const setting of SETTINGS as readonly Setting[]) {
    let fromOption = setting.envOnly ? undefined : getPath(given, setting.path);
    // An ioredis client instead of a URL is checked below.
    if (setting.path === 'redis' && typeof fromOption === 'object' && fromOption !== null) fromOption = undefined;
    let value: unknown;
    if (fromOption !== undefined) {
      value = coerce(setting.type, fromOption, false);
      if (value === BAD) throw new GuardConfigError(setting.path, describeValue(fromOption), allowedText(setting.type));
      sources[setting.path] = 'option';
    } else {
      const name = envName(setting, provider).find((n) => env[n] !== undefined && env[n]!.trim() !== '');
      if (name) {
        value = coerce(setting.type, env[name], true);
        if (value === BAD) throw new GuardConfigError(name, JSON.stringify(env[name]), allowedText(setting.type), 'env var');
        sources[setting.path] = name;
      } else {
        value = setting.type.kind === 'window' ? parseWindow(setting.default) : setting.default;
        sources[setting.path] = 'default';
      }
    }
    flat[setting.path] = value;
  }

  const tree: Record<string, unknown> = {};
  for (const [path, value] of Object.entries(flat)) if (!path.startsWith('budgetEnv.')) setPath(tree, path, value);
  const config = tree as unknown as ResolvedConfig;

  if (config.retry.minDelayMs > config.retry.maxDelayMs) {
    throw new GuardConfigError(
      'retry.maxDelayMs',
      `${config.retry.maxDelayMs} (below retry.minDelayMs = ${config.retry.minDelayMs})`,
      'a value at least retry.minDelayMs',
    );
  }

  const cost = (given.cost ?? {}) as Record<string, unknown>;
  if (cost.budgets !== undefined) {
    config.cost.budgets = validateBudgetRules(cost.budgets, config.cost.budgetEnforcement);
    sources['cost.budgets'] = 'option';
  } else {
    config.cost.budgets = budgetsFromEnv(flat, sources, config.cost.budgetEnforcement);
  }
  config.cost.prices = validatePrices(cost.prices);
  config.limits.perScope = validatePerScope(getPath(given, 'limits.perScope'));

  if (given.redis !== undefined && typeof given.redis === 'object') {
    const client = given.redis as Record<string, unknown>;
    if (client === null || typeof client.duplicate !== 'function') {
      throw new GuardConfigError('redis', describeValue(given.redis), 'a redis:// URL or an ioredis client');
    }
    config.redis = client;
  }
  if (given.fallback !== undefined) {
    config.fallback = validateFallback(given.fallback);
    sources.fallback = 'option';
  } else {
    const models = (flat.fallbackModels as string | undefined)?.split(',').map((m) => m.trim());
    config.fallback = models ? models.map((model) => ({ model })) : [];
    sources.fallback = sources.fallbackModels ?? 'default';
  }
  delete (config as { fallbackModels?: unknown }).fallbackModels;
  if (given.logger !== undefined && !isLogger(given.logger)) {
    throw new GuardConfigError('logger', describeValue(given.logger), 'an object with debug, info, warn and error methods (pino-compatible)');
  }
  return { config, sources };
}

/** Each target: `{ model }` with a model id, a guarded client, or `{ client, model? }`. */
function validateFallback(value: unknown): FallbackTarget[] {
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

const BUDGET_SCOPES: readonly BudgetScope[] = ['global', 'user', 'tenant', 'session', 'workflow'];

/** A window for people: '1h', '30d', '90s', 'none'. */
export function windowText(ms: number): string {
  if (ms === Infinity) return 'none';
  const units: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's']];
  for (const [size, unit] of units) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function budgetsFromEnv(flat: Record<string, unknown>, sources: ConfigSources, enforcement: 'hard' | 'soft'): ResolvedBudgetRule[] {
  const rules: ResolvedBudgetRule[] = [];
  for (const scope of BUDGET_SCOPES) {
    const limitUsd = flat[`budgetEnv.${scope}.limitUsd`];
    if (typeof limitUsd !== 'number') continue;
    const window = flat[`budgetEnv.${scope}.window`] as number;
    rules.push({ scope, limitUsd, window, windowText: windowText(window), enforcement, warnAt: undefined });
    sources[`cost.budgets.${scope}`] = sources[`budgetEnv.${scope}.limitUsd`]!;
  }
  return rules;
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

function validatePerScope(value: unknown): ResolvedConfig['limits']['perScope'] {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GuardConfigError('limits.perScope', describeValue(value), 'an object { user?, tenant?, session?, workflow? }');
  }
  const out: ResolvedConfig['limits']['perScope'] = {};
  for (const [scope, limits] of Object.entries(value)) {
    if (!['user', 'tenant', 'session', 'workflow'].includes(scope)) {
      throw new GuardConfigError(`limits.perScope.${scope}`, 'an unknown scope', 'one of user, tenant, session, workflow');
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

/** LLM_GUARD_* variables that name no setting: likely typos, reported once as a warning. */
export function unknownEnvVars(env: NodeJS.ProcessEnv, provider: string | undefined): string[] {
  const known = new Set<string>();
  for (const s of SETTINGS as readonly Setting[]) for (const n of envName(s, provider)) known.add(n);
  return Object.keys(env).filter((name) => {
    if (!name.startsWith(ENV_PREFIX) || known.has(name)) return false;
    // Another provider's override (LLM_GUARD_OPENAI_X seen by an Anthropic guard) is not a typo.
    const rest = name.slice(ENV_PREFIX.length);
    const isOtherProvider = (SETTINGS as readonly Setting[]).some((s) => rest.endsWith(`_${s.env}`) && rest !== s.env);
    return !isOtherProvider;
  });
}
