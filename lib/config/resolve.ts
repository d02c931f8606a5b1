import { GuardConfigError, describeValue } from '../errors';
import { isLogger } from '../logger';
import { parseBudgetWindow, type BudgetWindowValue } from '../internal/windows';
import { BAD, coerce } from './coerce';
import { BUDGET_SCOPES } from '../scope-kinds';
import { SETTINGS, STRUCTURED_OPTIONS, allowedText, type Setting } from './settings';
import type { GuardOptions, ResolvedBudgetRule, ResolvedConfig } from './options';
import { budgetRule, validateBudgetRules, validateFallback, validatePerScope, validatePrices, validateTiers } from './validate';

export const ENV_PREFIX = 'LLM_GUARD_';

/** Where each resolved value came from: 'default', 'option', or the env var's name. */
export type ConfigSources = Record<string, string>;

export interface Resolved {
  config: ResolvedConfig;
  sources: ConfigSources;
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
const KNOWN_GROUPS = new Set<string>(['limits', 'retry', 'breaker', 'cost', 'realtime']);

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
        value = setting.type.kind === 'window' ? parseBudgetWindow(setting.default) : setting.default;
        sources[setting.path] = 'default';
      }
    }
    flat[setting.path] = value;
  }

  // Env-only inputs stay out of the tree (a deleted key would turn the config, read on every call, into a slow dictionary).
  const tree: Record<string, unknown> = {};
  for (const [path, value] of Object.entries(flat)) if (!path.startsWith('budgetEnv.') && !path.startsWith('quotaEnv.') && path !== 'fallbackModels') setPath(tree, path, value);
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
  config.tiers = validateTiers(given.tiers, config.defaultTier, config.cost.budgetEnforcement);

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
  if (given.logger !== undefined && !isLogger(given.logger)) {
    throw new GuardConfigError('logger', describeValue(given.logger), 'an object with debug, info, warn and error methods (pino-compatible)');
  }
  return { config, sources };
}

/** LLM_GUARD_BUDGET_<SCOPE>_USD / _WINDOW and LLM_GUARD_QUOTA_<SCOPE>_TOKENS / _WINDOW as rules. */
function budgetsFromEnv(flat: Record<string, unknown>, sources: ConfigSources, enforcement: 'hard' | 'soft'): ResolvedBudgetRule[] {
  const rules: ResolvedBudgetRule[] = [];
  for (const [group, unit, field] of [['budgetEnv', 'usd', 'limitUsd'], ['quotaEnv', 'tokens', 'limitTokens']] as const) {
    for (const scope of BUDGET_SCOPES) {
      const limit = flat[`${group}.${scope}.${field}`];
      if (typeof limit !== 'number') continue;
      rules.push(budgetRule(scope, unit, limit, flat[`${group}.${scope}.window`] as BudgetWindowValue, enforcement, undefined));
      sources[`cost.budgets.${scope}${unit === 'tokens' ? '.tokens' : ''}`] = sources[`${group}.${scope}.${field}`]!;
    }
  }
  return rules;
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
