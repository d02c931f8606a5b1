import { AsyncLocalStorage } from 'node:async_hooks';
import { GuardConfigError, describeValue } from './errors';
import { SCOPE_FIELDS, type GuardScope } from './scope-kinds';

export type { GuardScope } from './scope-kinds';

const EMPTY: Readonly<GuardScope> = Object.freeze({});

// One store per process, shared by the ESM and CJS builds if both get loaded.
const STORE_KEY = Symbol.for('guarded-llm.scope');
function store(): AsyncLocalStorage<Readonly<GuardScope>> {
  const holder = globalThis as unknown as Record<symbol, AsyncLocalStorage<Readonly<GuardScope>> | undefined>;
  return (holder[STORE_KEY] ??= new AsyncLocalStorage());
}

/** Checks a scope given by the user; values are bounded strings so they can key budgets. */
export function validateScope(scope: unknown, where = 'scope'): Readonly<GuardScope> {
  if (typeof scope !== 'object' || scope === null || Array.isArray(scope)) {
    throw new GuardConfigError(where, describeValue(scope), `an object with any of ${SCOPE_FIELDS.join(', ')}`, 'argument');
  }
  const out: GuardScope = {};
  for (const [key, value] of Object.entries(scope)) {
    if (!(SCOPE_FIELDS as readonly string[]).includes(key)) {
      throw new GuardConfigError(`${where}.${key}`, 'an unknown scope key', `one of ${SCOPE_FIELDS.join(', ')}`, 'argument');
    }
    if (value === undefined) continue;
    if (key === 'priority' && value !== 'high' && value !== 'normal' && value !== 'low') {
      throw new GuardConfigError(`${where}.priority`, describeValue(value), '"high", "normal" or "low"', 'argument');
    }
    if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
      throw new GuardConfigError(`${where}.${key}`, describeValue(value), 'a non-empty string of at most 256 characters', 'argument');
    }
    (out as Record<string, string>)[key] = value;
  }
  return Object.freeze(out);
}

/** The scope of the current async context (empty when none was set). */
export function currentScope(): Readonly<GuardScope> {
  return store().getStore() ?? EMPTY;
}

/** Runs `fn` with `scope` merged over the current one, for every guarded call made inside it. */
export function runWithScope<R>(scope: GuardScope, fn: () => R): R {
  const merged = mergeScopes(currentScope(), validateScope(scope));
  return store().run(merged, fn);
}

/** Runs `fn` with an already validated scope (the Proxy's hot path). */
export function runInScope<R>(scope: Readonly<GuardScope>, fn: () => R): R {
  return store().run(mergeScopes(currentScope(), scope), fn);
}

export function mergeScopes(outer: Readonly<GuardScope>, inner: Readonly<GuardScope>): Readonly<GuardScope> {
  if (outer === EMPTY || Object.keys(outer).length === 0) return inner;
  return Object.freeze({ ...outer, ...inner });
}
